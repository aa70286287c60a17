from pathlib import Path

from benchmark.data.decode import decode_frames, probe
from benchmark.data.splits import groups_of, hmdb51_split, ucf101_split


def test_layout_splits_and_decodability(tiny_dataset):
    root = Path(tiny_dataset)
    lists = root / "ucfTrainTestlist"
    assert (lists / "classInd.txt").exists()
    for s in (1, 2, 3):
        train, classes = ucf101_split(root / "UCF-101", lists, s, "train")
        test, _ = ucf101_split(root / "UCF-101", lists, s, "test")
        assert len(classes) == 4 and train and test
        assert set(groups_of(train)).isdisjoint(groups_of(test))  # groups never cross within a split
        htrain, hclasses = hmdb51_split(root / "hmdb51", root / "hmdb51" / "testTrainMulti_7030_splits", s, "train")
        assert len(hclasses) == 4 and htrain
    lengths = []
    for p in sorted((root / "UCF-101").glob("*/*.avi")):
        n, fps = probe(str(p))
        lengths.append(n)
        frames = decode_frames(str(p), [0, n - 1, n + 5])
        assert frames.shape == (3, 32, 32, 3)
        assert (frames[1] == frames[2]).all()  # past the end repeats the last frame
    assert min(lengths) < 32 <= max(lengths)


def test_motion_not_appearance_decides_class(tiny_dataset):
    # consecutive frames of every video differ (something moves)
    for p in sorted((Path(tiny_dataset) / "UCF-101").glob("*/*.avi"))[:8]:
        f = decode_frames(str(p), [0, 4]).float()
        assert (f[0] - f[1]).abs().mean() > 0.5


def test_actor_brightness_opposes_the_background():
    """Format 6: the actor's luma is on the other side of the background's, with a margin, in every video."""
    import numpy as np

    from benchmark.data.synthetic import _background, _sprite

    rng = np.random.default_rng(0)
    luma = np.array([0.299, 0.587, 0.114])
    for i in range(40):
        dark = i % 2 == 0
        bg = np.asarray(_background(rng, 48, dark)).astype(float) @ luma
        sprite = np.asarray(_sprite(rng, 24, i % 8, dark)).astype(float)
        actor = sprite[..., :3][sprite[..., 3] == 255] @ luma
        if dark:
            assert np.percentile(bg, 99) < np.percentile(actor, 1) - 30, i
        else:
            assert np.percentile(bg, 1) > np.percentile(actor, 99) + 30, i


def test_probe_remembers_a_video_until_the_file_changes(tmp_path):
    """A run samples each video many times, so its frame count is remembered; a video rewritten
    at the same path (new modification time and size) is probed again, and a missing one fails."""
    import os

    import numpy as np
    import pytest

    from benchmark.data.decode import VideoDecodeError, _probe
    from benchmark.data.synthetic import write_video

    path = tmp_path / "v.avi"
    write_video(path, np.zeros((12, 32, 32, 3), np.uint8), 25)
    before = _probe.cache_info().hits
    assert probe(str(path))[0] == 12 and probe(str(path))[0] == 12
    assert _probe.cache_info().hits == before + 1
    write_video(path, np.full((20, 32, 32, 3), 200, np.uint8), 25)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new version even within the clock's resolution
    assert probe(str(path))[0] == 20
    path.unlink()
    with pytest.raises(VideoDecodeError):
        probe(str(path))
