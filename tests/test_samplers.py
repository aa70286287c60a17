import numpy as np
import pytest

from benchmark.data import samplers
from benchmark.errors import UserError


def test_disjoint_views_split_window_one_third_two_thirds():
    # offset = F with factors (1, 2): view 1 gets the first 1/3 of the window, view 2 the rest
    assert samplers.vdim_window_length(32, 32, [1, 2]) == 96
    v1, v2 = samplers.vdim_view_indices(1000, 32, 32, [1, 2], np.random.default_rng(0))
    start = v1[0]
    assert np.array_equal(v1, start + np.arange(32))
    assert np.array_equal(v2, start + 32 + 2 * np.arange(32))
    assert len(v1) == len(v2) == 32


def test_overlapping_views_offset_zero():
    v1, v2 = samplers.vdim_view_indices(500, 16, 0, [1, 2], np.random.default_rng(1))
    assert v1[0] == v2[0] and v2[-1] - v2[0] == 30 and len(v1) == len(v2) == 16


def test_window_drawn_with_stride_one_covers_all_starts():
    starts = {samplers.vdim_view_indices(40, 8, 0, [1, 1], np.random.default_rng(s))[0][0] for s in range(400)}
    assert starts == set(range(0, 40 - 8 + 1))


def test_short_video_pads_with_last_frame():
    v1, v2 = samplers.vdim_view_indices(20, 16, 16, [1, 2], np.random.default_rng(0))
    assert v1[0] == 0 and v2.max() == 19 and (v2 == 19).sum() > 1


@pytest.mark.parametrize("frames,offset,ds", [(0, 0, [1, 2]), (16, -1, [1, 2]), (16, 0, [0, 2]), (16, 0, [1])])
def test_impossible_views_raise(frames, offset, ds):
    with pytest.raises(UserError):
        samplers.vdim_window_length(frames, offset, ds)


def test_kview_offsets():
    views = samplers.kview_indices(1000, 32, 4)
    assert [v[0] for v in views] == [0, 32, 64, 96]


def test_rho_clips_independent_uniform_starts_and_stride():
    rng = np.random.default_rng(0)
    clips = samplers.rho_clip_indices(300, 4, 8, 8, rng)
    assert len(clips) == 4 and all(np.all(np.diff(c) == 8) for c in clips)
    starts = [samplers.rho_clip_indices(100, 2, 8, 2, np.random.default_rng(s))[1][0] for s in range(300)]
    assert min(starts) == 0 and max(starts) == 100 - 15


def test_rho_max_distance():
    for s in range(50):
        a, b = samplers.rho_clip_indices(500, 2, 8, 1, np.random.default_rng(s), max_distance=10)
        assert abs(int(a[0]) - int(b[0])) <= 10


def test_rho_clips_unsorted_by_default_are_the_starts_as_drawn():
    """The default draws each start uniformly and keeps the order drawn (so existing runs repeat)."""
    rng = np.random.default_rng(7)
    want = [int(rng.integers(0, 500 - 8 + 1)) for _ in range(4)]
    got = samplers.rho_clip_indices(500, 4, 8, 1, np.random.default_rng(7))
    assert [int(c[0]) for c in got] == want


def test_rho_clips_sorted_in_time_and_gaps_bounded_as_slowfast():
    for s in range(50):
        clips = samplers.rho_clip_indices(300, 4, 8, 2, np.random.default_rng(s), sort=True, min_gap=0, max_gap=40)
        starts = [int(c[0]) for c in clips]
        assert starts == sorted(starts)
        gaps = [b - (a + 15 - 1) for a, b in zip(starts, starts[1:])]  # span 15: 8 frames at stride 2
        assert all(0 <= g <= 40 for g in gaps), (s, starts)  # satisfiable here, so always met
    # an impossible bound keeps the draw that falls least outside it
    clips = samplers.rho_clip_indices(40, 3, 8, 1, np.random.default_rng(0), sort=True, min_gap=30)
    assert len(clips) == 3


def test_rho_presets_sort_their_clips_as_the_reference():
    from conftest import compose_run
    for m in ("simclr", "moco", "byol", "swav"):
        clips = compose_run([f"experiment=rho_{m}_k400", "dataset.root=/x"]).method.clips
        assert clips.sort is True and clips.min_gap is None and clips.max_gap is None
        sampler = samplers.RhoClips.of(clips)
        starts = [int(c[0]) for c in sampler(300, np.random.default_rng(1))]
        assert starts == sorted(starts)


def test_clips_at_a_target_frame_rate_span_the_same_time_at_any_source_rate():
    """SlowFast's DATA.TARGET_FPS: a clip's frames are tau frames of the 30 fps video apart, so in
    seconds tau / 30 apart whatever the source's rate (within one source frame: its frames are
    1 / fps apart)."""
    from benchmark.data.samplers import AtFrameRate, RhoClips
    sampler = AtFrameRate(RhoClips(rho=2, frames=8, stride=8), 30.0)
    for fps, n in ((25.0, 300), (30.0, 360), (60.0, 720), (12.0, 144)):
        rng = np.random.default_rng(0)
        for clip in sampler.at(n, fps, rng):
            seconds = np.diff(clip) / fps
            assert np.all(np.abs(seconds - 8 / 30) <= 1 / fps + 1e-9), (fps, clip)
            assert clip.min() >= 0 and clip.max() <= n - 1


def test_a_target_rate_equal_to_the_videos_changes_nothing():
    from benchmark.data.samplers import AtFrameRate, RhoClips
    plain = RhoClips(rho=2, frames=8, stride=4)
    got = AtFrameRate(plain, 25.0).at(200, 25.0, np.random.default_rng(5))
    want = plain(200, np.random.default_rng(5))
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_resampled_starts_cover_the_whole_video():
    """The sampler draws on the resampled length, so starts reach the end of a 25 fps video as
    they do at 30: the last start at 30 fps maps to within a frame of the source's end."""
    from benchmark.data.samplers import resampled_length, source_frames
    n, fps = 250, 25.0  # 10 s
    virtual = resampled_length(n, fps, 30.0)
    assert virtual == 300
    assert source_frames(np.array([virtual - 1]), n, fps, 30.0)[0] == n - 1


def test_a_target_rate_not_above_zero_fails_naming_the_key():
    from benchmark.data.samplers import RhoClips, at_frame_rate
    with pytest.raises(UserError, match=r"bad eval.target_fps 0: must be > 0"):
        at_frame_rate(RhoClips(rho=1, frames=4, stride=1), 0, "eval.target_fps")
    assert isinstance(at_frame_rate(RhoClips(rho=1, frames=4, stride=1), None), RhoClips)


def test_load_views_hands_a_real_videos_frame_rate_to_the_resampling(tiny_dataset):
    """On an encoded .avi (8 fps in the tiny set), the sampler sees the length at the target
    rate, and its frame i is the source's frame floor(i * 8 / target)."""
    from benchmark.data.datasets import load_views
    from benchmark.data.decode import probe
    from benchmark.data.samplers import AtFrameRate

    class Spy:
        clips = 1

        def __call__(self, num_frames, rng):
            self.seen = num_frames
            return [np.array([0, 1, 2, 3])]

    path = str(next(tiny_dataset.rglob("*.avi")))
    n, fps = probe(path)
    spy = Spy()
    seen_frames = []
    load_views(path, AtFrameRate(spy, 2 * fps), lambda frames, k: seen_frames.append(frames.shape[0]) or frames,
               np.random.default_rng(0))
    assert spy.seen == 2 * n and seen_frames == [4]
    assert list(samplers.source_frames(np.array([0, 1, 2, 3]), n, fps, 2 * fps)) == [0, 0, 1, 1]
