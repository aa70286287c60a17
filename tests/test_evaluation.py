import numpy as np
import pytest
import torch

from evaluation.aggregate import average_per_video, split_summary
from evaluation.features import cached_features
from evaluation.knn_retrieval import knn_retrieval


def test_per_video_averaging_hand_built():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.35, 0.65]])
    vid = torch.tensor([0, 0, 1, 1, 1])
    avg = average_per_video(probs, vid)
    assert torch.allclose(avg, torch.tensor([[0.55, 0.45], [0.35, 0.65]]))


def test_split_mean_std():
    s = split_summary({1: 70.0, 2: 80.0, 3: 90.0})
    assert s["mean"] == pytest.approx(80.0) and s["std"] == pytest.approx((200 / 3) ** 0.5)
    assert split_summary({1: 50.0, 2: None})["mean"] == 50.0


def test_linear_probe_depends_on_its_seed_not_on_the_global_rng():
    """A run whose features come from the cache reaches the probe with another global RNG state
    than one that extracted them; the probe must not notice (it did: 29.2 against 27.8)."""
    from evaluation.linear_probe import linear_probe, train_linear
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, 16, generator=g), torch.randint(0, 4, (40,), generator=g)
    train, test = torch.arange(30), torch.arange(30, 40)
    torch.manual_seed(1)
    a = linear_probe(x, y, train, test, 4, epochs=3, seed=5)
    wa = train_linear(x[:, 0], y, 4, epochs=0, lr=0.1, batch_size=8, seed=5).weight
    torch.manual_seed(2)
    b = linear_probe(x, y, train, test, 4, epochs=3, seed=5)
    wb = train_linear(x[:, 0], y, 4, epochs=0, lr=0.1, batch_size=8, seed=5).weight
    assert a == b and torch.equal(wa, wb)
    assert not torch.equal(wa, train_linear(x[:, 0], y, 4, epochs=0, lr=0.1, batch_size=8, seed=6).weight)
    torch.manual_seed(3)
    untouched = torch.rand(1)
    torch.manual_seed(3)
    linear_probe(x, y, train, test, 4, epochs=3, seed=5)
    assert torch.equal(torch.rand(1), untouched)  # nor does the probe move the caller's stream


def test_retrieval_on_constructed_neighbours():
    train = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [0, -1.0]])
    ty = torch.tensor([0, 1, 2, 3])
    test = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.7, -0.6]])
    qy = torch.tensor([0, 2, 3])  # 2nd query's nearest is class 1, class 2 is 3rd/4th; 3rd: class 0 then 3
    r = knn_retrieval(train, ty, test, qy, recall_at=(1, 2, 4), k=1)
    assert r["R@1"] == pytest.approx(100 / 3)
    assert r["R@2"] == pytest.approx(200 / 3)
    assert r["R@4"] == pytest.approx(100.0)
    assert r["top1"] == pytest.approx(100 / 3)


def test_feature_cache_reused_and_invalidated_by_new_weights(tmp_path):
    calls = []

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            calls.append(1)
            return {"global": x.mean(dim=(2, 3, 4)) * self.w}

    from benchmark.data.splits import VideoRecord
    from pathlib import Path
    from benchmark.data.synthetic import write_synthetic
    root = write_synthetic(tmp_path / "d", {"version": 4, "classes": 2, "groups": 10, "clips_per_group": 1,
                                            "min_frames": 12, "max_frames": 14, "size": 32, "fps": 8, "seed": 0},
                           progress=False)
    records = [VideoRecord(str(p), 0) for p in sorted(Path(root, "UCF-101").glob("*/*.avi"))[:3]]
    import numpy as np
    index_fn = lambda n, rng: [np.arange(4)]  # noqa: E731
    view_fn = lambda fr, k: fr.permute(3, 0, 1, 2).float()  # noqa: E731
    kw = dict(index_fn=index_fn, view_fn=view_fn, device=torch.device("cpu"), batch_size=2, num_workers=0,
              skipped_log=None, precision_ctx=torch.no_grad(), progress=False)
    enc = Enc()
    a = cached_features(tmp_path / "c", {"k": 1}, enc, records, **kw)
    n = len(calls)
    b = cached_features(tmp_path / "c", {"k": 1}, enc, records, **kw)
    assert len(calls) == n and torch.equal(a["features"], b["features"])  # reused
    with torch.no_grad():
        enc.w.mul_(2)
    c = cached_features(tmp_path / "c", {"k": 1}, enc, records, **kw)
    assert len(calls) > n and torch.allclose(c["features"], 2 * a["features"])  # invalidated


def _finetune_setup(tiny_dataset):
    from benchmark.data.splits import load_split
    from encoders import build_encoder
    tr, classes = load_split("ucf101", tiny_dataset, "UCF-101", "ucfTrainTestlist", 1, "train")
    te, _ = load_split("ucf101", tiny_dataset, "UCF-101", "ucfTrainTestlist", 1, "test")
    torch.manual_seed(0)
    enc = build_encoder("vdim_small", ndf=8, n_1x1=0, head_dim=32)
    return enc, tr[:8], te[:4], len(classes)


def _ft_cfg(preset, steps):
    from omegaconf import OmegaConf

    from conftest import compose_run
    ft = compose_run([f"eval.finetune.preset={preset}", "encoder.size=64"]).eval.finetune
    return OmegaConf.merge(ft, {"steps": steps, "batch_size": 2, "views": 2, "checkpoint_every": 2, "hidden_dim": 16,
                                "blocks": 2, "backbone_lr_scale": 0.1 if preset == "dpc" else 1.0})


@pytest.mark.parametrize("preset", ["vdim", "rho", "dpc"])
def test_finetune_trains_end_to_end_and_checkpoints_per_split(tmp_path, tiny_dataset, preset):
    from evaluation import EvalRuntime
    from evaluation.finetune import finetune_split
    enc, tr, te, n_cls = _finetune_setup(tiny_dataset)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    out = finetune_split(enc, _ft_cfg(preset, 3), tr, te, n_cls, 16, 64, 2, EvalRuntime(), tmp_path / "split1", 0)
    acc, videos = out["top1"], out["per_video"]
    assert (acc * len(te) / 100) == pytest.approx(round(acc * len(te) / 100))  # a share of the test videos
    assert videos["labels"] == [r.label for r in te] and len(videos["videos"]) == len(set(videos["videos"])) == len(te)
    right = sum(p == y for p, y in zip(videos["predicted"], videos["labels"]))
    assert 100.0 * right / len(te) == pytest.approx(acc)  # the saved predictions are the ones scored
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())  # the pretrained encoder is untouched
    state = torch.load(tmp_path / "split1" / "last.pt", weights_only=True)
    assert state["step"] == 3
    head = [k for k in state["model"] if k.startswith("head.") and k.endswith("weight")]
    if preset == "vdim":  # K=2 views concatenated -> hidden layer -> classes (sec. 4.1)
        assert state["model"][head[0]].shape == (16, 2 * enc.global_dim) and len(head) == 2
    elif preset == "rho":  # one clip, dropout + linear (rho study)
        assert state["model"][head[0]].shape == (n_cls, enc.global_dim) and len(head) == 1
    else:  # DPC's LC: ConvGRU over the blocks' last local map, BatchNorm1d, dropout + linear
        d = state["model"]["bn.weight"].shape[0]
        assert state["model"][head[0]].shape == (n_cls, d) and len(head) == 1
        assert state["model"]["aggregator.cell.update_gate.weight"].shape == (d, 2 * d, 1, 1)
        lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]  # encoder and GRU at a tenth (--train_what ft)
        assert lrs[0] == pytest.approx(0.1 * lrs[1])
    tuned = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    assert any(not torch.equal(tuned[k], before[k]) for k in before if before[k].is_floating_point())  # end to end


def test_finetune_tests_every_window_at_each_spatial_crop():
    """eval.spatial_crops in fine-tuning (SlowFast's 10 x 3): each window's K views repeated once per
    crop, every view of a repetition at the same crop, left to right."""
    from evaluation.finetune import test_index_fn, test_view_fn
    from omegaconf import OmegaConf
    ft = OmegaConf.create({"preset": "vdim", "views": 2, "augment": {"color": "none"}})
    index = test_index_fn(ft, 4, 2, 1, crops=3)(40, None)
    assert len(index) == 2 * 3 * 2  # windows x crops x views
    assert [a.tolist() for a in index[:6]] == [a.tolist() for a in index[:2]] * 3
    ramp = torch.arange(48, dtype=torch.uint8).view(1, 1, 48, 1).expand(4, 16, 48, 3).contiguous()  # brighter rightwards
    view = test_view_fn(16, "none", views=2, crops=3)
    means = [view(ramp, k).mean().item() for k in range(6)]
    assert means[0] == means[1] < means[2] == means[3] < means[4] == means[5]


def test_amdim_head_is_amdims_mlp_classifier():
    """AMDIM model.py MLPClassifier(n_hidden=1024, p=0.2): Dropout, Linear (no bias), BatchNorm1d,
    ReLU, Dropout, Linear."""
    from torch import nn

    from evaluation.finetune import classifier_head
    head = classifier_head(64, 5, 1024, 0.2, "amdim")
    kinds = [type(m) for m in head]
    assert kinds == [nn.Dropout, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    assert head[1].bias is None and head[1].weight.shape == (1024, 64) and head[5].weight.shape == (5, 1024)
    assert head[0].p == head[4].p == 0.2
    plain = classifier_head(64, 5, 1024, 0.2, "mlp")
    assert [type(m) for m in plain] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]


def test_finetune_in_epochs_with_a_rate_per_reference_batch_and_cosine(tmp_path, tiny_dataset):
    """The rho presets' fine-tuning (SlowFast's): epochs x ceil(videos / batch) steps, lr scaled by
    batch / lr_reference_batch, cosine to zero, Nesterov SGD."""
    from omegaconf import OmegaConf

    from evaluation import EvalRuntime
    from evaluation.finetune import finetune_split
    enc, tr, te, n_cls = _finetune_setup(tiny_dataset)
    ft = OmegaConf.merge(_ft_cfg("rho", 999), {"epochs": 1, "lr": 0.4, "lr_reference_batch": 8, "schedule": "cosine",
                                               "optimizer": "sgd", "nesterov": True})
    out = finetune_split(enc, ft, tr, te, n_cls, 16, 64, 2, EvalRuntime(), tmp_path / "split1", 0, spatial_crops=3,
                         test_size=64)
    assert out["per_video"]["labels"] == [r.label for r in te]  # 2 clips x 3 crops averaged per video
    state = torch.load(tmp_path / "split1" / "last.pt", weights_only=True)
    assert state["step"] == 4  # 1 epoch of 8 videos at batch 2, not steps=999
    groups = state["optimizer"]["param_groups"]
    assert all(g["nesterov"] for g in groups)
    assert all(g["initial_lr"] == pytest.approx(0.4 * 2 / 8) for g in groups)
    assert all(g["lr"] == pytest.approx(0.0, abs=1e-12) for g in groups)  # the cosine's end


def test_finetune_runs_slowfasts_clip_pipeline_on_real_video(tmp_path, tiny_dataset, monkeypatch):
    """configs/finetune/rho_ucf.yaml's training clips (short-side jitter, colour before the crop) at a
    target frame rate, end to end on the tiny set's 8 fps .avi files: every clip, training and
    test, is drawn on the video resampled to 4 fps."""
    from omegaconf import OmegaConf

    from benchmark.data.samplers import AtFrameRate
    from evaluation import EvalRuntime
    from evaluation.finetune import finetune_split
    enc, tr, te, n_cls = _finetune_setup(tiny_dataset)
    from conftest import ROOT
    rho_ucf = OmegaConf.load(ROOT / "configs" / "finetune" / "rho_ucf.yaml")
    ft = OmegaConf.merge(_ft_cfg("rho", 2), {"augment": rho_ucf.augment}, {"augment": {"scale_jitter": [64, 80]}})
    seen, at = [], AtFrameRate.at

    def recorded(self, n, fps, rng):
        clips = at(self, n, fps, rng)
        seen.append((fps, clips))
        return clips
    monkeypatch.setattr(AtFrameRate, "at", recorded)
    out = finetune_split(enc, ft, tr, te, n_cls, 16, 64, 2, EvalRuntime(), tmp_path / "split1", 0, target_fps=4.0)
    assert out["per_video"]["labels"] == [r.label for r in te]
    assert len(seen) == 2 * 2 + len(te) and {fps for fps, _ in seen} == {8.0}  # 2 steps x batch 2, then the tests
    steps = {int(d) for _, clips in seen for c in clips for d in np.diff(c)}
    assert steps <= {0, 2} and 2 in steps  # 4 fps frames are every other 8 fps frame (0: a short video's last repeats)


def test_finetune_resumes_to_the_same_weights(tmp_path, tiny_dataset, monkeypatch):
    import evaluation.finetune as ftmod
    from evaluation import EvalRuntime
    enc, tr, te, n_cls = _finetune_setup(tiny_dataset)
    args = (tr, te, n_cls, 16, 64, 1)
    ftmod.finetune_split(enc, _ft_cfg("vdim", 4), *args, EvalRuntime(), tmp_path / "straight", 0)
    real_save = ftmod.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt("killed after the first checkpoint")
    monkeypatch.setattr(ftmod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        ftmod.finetune_split(enc, _ft_cfg("vdim", 4), *args, EvalRuntime(), tmp_path / "killed", 0)
    monkeypatch.setattr(ftmod, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["step"] == 2
    ftmod.finetune_split(enc, _ft_cfg("vdim", 4), *args, EvalRuntime(resume=True), tmp_path / "killed", 0)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert b["step"] == 4
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, msg=k)


def _official_dpc_windows(n, seq_len, num_seq, ds, stride):
    """DPC's eval/dataset_3d_lc.py test clips, written as it builds them: every ds-th frame, cut into
    consecutive groups of seq_len, windows of num_seq groups at every stride-th group."""
    frames = list(range(0, n, ds))
    groups = [frames[i:i + seq_len] for i in range(0, len(frames) - seq_len + 1, seq_len)]
    return [sum(groups[i:i + num_seq], []) for i in range(0, len(groups) + 1 - num_seq, stride)]


@pytest.mark.parametrize("n,ds", [(200, 3), (121, 3), (400, 5), (41, 1)])
def test_dpc_test_windows_are_the_official_blocks(n, ds):
    from evaluation.finetune import dpc_test_windows
    got = [w.tolist() for w in dpc_test_windows(n, 5, 8, 4, ds)]
    assert got == _official_dpc_windows(n, 5, 8, ds, 4) and got


def test_dpc_test_windows_of_a_short_video_repeat_its_last_frame():
    from evaluation.finetune import dpc_test_windows
    (w,) = dpc_test_windows(30, 5, 8, 4, 1)  # 6 blocks, fewer than 8: one window
    assert w.tolist() == list(range(30)) + [29] * 10


def test_lab_dropout_test_inputs_are_the_three_dropped_channel_clips():
    """Fine-tuning under Lab dropout trains on clips with one channel zeroed; by default its test
    averages over the three such clips (eval.finetune.lab_dropout_test=average)."""
    from types import SimpleNamespace

    from evaluation.finetune import lab_test_inputs
    clips = torch.rand(2, 4, 3, 5, 8, 8) + 0.1  # [n, views, Lab, T, H, W], no zeros of its own
    ft = SimpleNamespace(augment=SimpleNamespace(color="lab_dropout"), lab_dropout_test="average")
    inputs = lab_test_inputs(clips, ft)
    assert len(inputs) == 3
    for c, x in enumerate(inputs):
        assert torch.all(x[:, :, c] == 0)
        keep = [k for k in range(3) if k != c]
        assert torch.equal(x[:, :, keep], clips[:, :, keep])
    assert lab_test_inputs(clips, SimpleNamespace(augment=ft.augment, lab_dropout_test="keep_all"))[0] is clips
    assert lab_test_inputs(clips, SimpleNamespace(augment=SimpleNamespace(color="jitter"), lab_dropout_test="average"))[0] is clips
