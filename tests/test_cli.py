"""The real CLI, in subprocesses: bad input gets one clear line and a non-zero exit."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_OVERRIDES

BASE = ["encoder.ndf=8", "encoder.n_1x1=0", "encoder.head_dim=32", "method.head_dim=32", "trainer.batch_size=2",
        "trainer.num_workers=0", "trainer.progress=false"] + TINY_OVERRIDES
FAST = BASE + ["eval.protocols=[knn]", "eval.splits=[1]", "eval.clips_per_video=1"]
RHO_FAST = ["method=rho_simclr", "method.hidden_dim=64", "method.out_dim=32"] + [a for a in FAST if not a.startswith("method.")]


def cli(args, tmp_path, env=None, **kw):
    e = {**os.environ, "VDIM_BENCH_CACHE": str(tmp_path / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=tmp_path, env=e, capture_output=True,
                          text=True, timeout=600, **kw)


def one_line_error(p):
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.strip().split("\n") if ln.strip() and "warn" not in ln.lower()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.mark.parametrize("args,expect", [
    (["run", "method=nope"], "unknown method 'nope'; valid choices: dpc, maxgl, random, rho_byol"),
    (["run", "encoder=resnet"], "unknown encoder 'resnet'; valid choices: r2d3d_18, r2d3d_34, r2plus1d_r18"),
    (["run", "dataset=ucf101", "dataset.root=/does/not/exist"], "dataset root not found: /does/not/exist"),
    (["run", "dataset=ucf101"], "dataset 'ucf101' needs dataset.root="),
    (["frobnicate"], "unknown subcommand 'frobnicate'"),
    (["run", "eval.dataset=ucf101"], "eval.dataset=ucf101 needs eval.dataset_root="),
    (["run", "eval.dataset=nope"], "unknown eval.dataset 'nope'; valid choices: hmdb51, kinetics400"),
    (["run", "eval.protocols=[probe]"], "unknown eval protocol 'probe'; valid choices: linear, finetune, knn"),
    (["run", "trainer.sync_bn=true", "trainer.device=cpu"], "trainer.sync_bn=true needs CUDA"),
    (["run", "trainer.augment_on=gpu"], "unknown trainer.augment_on 'gpu'; valid choices: device, workers"),
    (["run", "trainer.allocator=jemalloc"], "unknown trainer.allocator 'jemalloc'; valid choices: retain, system"),
    (["perf", "levers=[threads]"], "unknown perf lever 'threads'; valid choices: allocator, channels_last, compile"),
    (["run", "trainer.steps=-1"], "bad trainer.steps -1: must be >= 1 (method=random evaluates an untrained encoder)"),
    (["run", "trainer.batch_size=0"], "bad trainer.batch_size 0: must be >= 1"),
    (["run", "trainer.lr=0"], "bad trainer.lr 0.0: must be > 0"),
    (["run", "eval.splits=[4]"], "unknown split '4'; valid choices: 1, 2, 3"),
    (["run", "eval.clips_per_video=0"], "bad eval.clips_per_video 0: must be >= 1"),
    (["run", "trainer.stpes=3"], "unknown key trainer.stpes; did you mean trainer.steps?"),
    (["run", "+trainer.stpes=3"], "unknown key trainer.stpes; did you mean trainer.steps?"),
    (["run", "method=rho_moco", "method.queue_sze=3"], "unknown key method.queue_sze; did you mean method.queue_size?"),
    (["run", "-m", "method=vdim,rho_moco", "method.queue_size=3"], "unknown key method.queue_size; valid keys under method"),
    (["info", "encoder.sise=3"], "unknown key encoder.sise; did you mean encoder.size?"),
    (["perf", "secions=[data]"], "unknown key secions; did you mean sections?"),
    (["run", "results_dir=/proc/vdim-bench-runs"], "bad results_dir /proc/vdim-bench-runs: cannot write there"),
    (["run", "trainer.batch_size=1"], "bad trainer.batch_size 1: method vdim needs >= 2 clips per batch"),
])
def test_bad_input_messages(args, expect, tmp_path):
    assert expect in one_line_error(cli(args, tmp_path))


def test_results_dir_under_a_file_is_refused_before_any_folder_is_made(tmp_path):
    (tmp_path / "a_file").write_text("")
    line = one_line_error(cli(["run", f"results_dir={tmp_path / 'a_file' / 'runs'}"], tmp_path))
    assert line == f"error: bad results_dir {tmp_path / 'a_file' / 'runs'}: {tmp_path / 'a_file'} is a file, not a folder"
    assert not (tmp_path / "results").exists()


def test_bad_key_makes_no_run_folder(tmp_path):
    one_line_error(cli(["run", "trainer.stpes=3", f"results_dir={tmp_path / 'runs'}"], tmp_path))
    assert not (tmp_path / "runs").exists()


def test_missing_split_list_of_a_later_split_is_found_before_pretraining(tmp_path, tiny_dataset):
    """``testlist02.txt`` missing: the run stops before its first step (no checkpoint, no pretraining
    log line), names the file, records the error in run.log and marks its folder FAILED."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    (root / "ucfTrainTestlist" / "testlist02.txt").unlink()
    runs = tmp_path / "runs"
    p = cli(["run", f"dataset.root={root}", f"results_dir={runs}", "trainer.steps=50", *BASE,
             "eval.protocols=[knn]", "eval.splits=[1,2]"], tmp_path)
    assert "testlist02.txt" in one_line_error(p)
    (folder,) = runs.iterdir()
    assert not (folder / "checkpoints").exists()
    assert (folder / "FAILED").read_text().startswith("UserError: ") and "testlist02.txt" in (folder / "run.log").read_text()


def test_missing_split_file_and_bad_clip_length(tmp_path):
    root = tmp_path / "ucf"
    (root / "UCF-101").mkdir(parents=True)
    (root / "ucfTrainTestlist").mkdir()
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 A\n")
    line = one_line_error(cli(["run", "dataset=ucf101", f"dataset.root={root}"], tmp_path))
    assert "trainlist01.txt" in line
    line = one_line_error(cli(["run", "method.views.downsample=[1,0]", *FAST], tmp_path))
    assert "bad downsampling" in line
    line = one_line_error(cli(["run", "method.views.frames=8", *FAST], tmp_path))
    assert "bad clip length" in line


def test_help_lists_subcommands(tmp_path):
    p = cli(["--help"], tmp_path)
    assert p.returncode == 0 and all(s in p.stdout for s in ("run", "compare", "info", "data", "perf"))
    assert cli(["run", "--help"], tmp_path).returncode == 0
    assert cli(["compare", "--help"], tmp_path).returncode == 0


def test_cfg_job_shows_defaults(tmp_path):
    p = cli(["run", "--cfg", "job"], tmp_path)
    assert p.returncode == 0 and "precision: bf16" in p.stdout and "protocols:" in p.stdout


def test_corrupt_video_is_skipped_and_counted(tmp_path, tiny_dataset):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    bad = sorted((root / "UCF-101").glob("*/*.avi"))[0]
    bad.write_bytes(b"not a video at all")
    p = cli(["run", f"dataset.root={root}", "trainer.steps=3", f"results_dir={tmp_path / 'runs'}", *FAST], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["skipped_videos"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_killed_run_resumes_to_the_same_final_loss(tmp_path, tiny_dataset, augment_on):
    """Also with trainer.augment_on=device, whose draws are seeded by the step, not by a running RNG.
    The thread count is fixed: trainer.adaptive_threads would follow the machine's load, and another
    thread count sums in another order (benchmark/cpu_share.py); this test is about the checkpoint."""
    common = [f"dataset.root={tiny_dataset}", "trainer.steps=8", "trainer.checkpoint_every=2", "trainer.log_every=1",
              "eval.protocols=[knn]", f"trainer.augment_on={augment_on}", "trainer.adaptive_threads=false", *FAST]
    straight = cli(["run", f"results_dir={tmp_path / 'a'}", *common], tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    want = json.loads(next((tmp_path / "a").glob("*/result.json")).read_text())["pretrain"]["final_loss"]
    env = {**os.environ, "VDIM_BENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "run", f"results_dir={tmp_path / 'b'}", *common],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "b").glob("*/checkpoints/last.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((tmp_path / "b").glob("*/result.json")), "run finished before it could be killed"
    time.sleep(1.1)  # a new run id (time-stamped to the second)
    resumed = cli(["run", f"results_dir={tmp_path / 'b'}", "trainer.resume=auto", *common], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = json.loads(next((tmp_path / "b").glob("*/result.json")).read_text())["pretrain"]["final_loss"]
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_end_to_end_run_then_compare(tmp_path, tiny_dataset):
    runs = tmp_path / "runs"
    for method in ("vdim", "random"):
        p = cli(["run", f"method={method}", f"dataset.root={tiny_dataset}", "trainer.steps=4",
                 f"results_dir={runs}", *[a for a in BASE if method == "vdim" or not a.startswith("method.")], "eval.protocols=[linear,knn]", "eval.linear.epochs=5",
                 "eval.clips_per_video=2"], tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "top-1 mean" in p.stdout
        written = Path(p.stdout.strip().splitlines()[-1].removeprefix("result: "))
        assert written.name == "result.json" and written.parent.parent == runs
        umask = os.umask(0)
        os.umask(umask)
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask  # as any other file the run writes
    results = [json.loads(r.read_text()) for r in runs.glob("*/result.json")]
    assert {r["method"] for r in results} == {"vdim", "random"}
    for r in results:
        ev = {e["protocol"]: e for e in r["evals"]}
        assert set(ev["linear"]["splits"]) == {"1", "2", "3"}
        assert 0 <= ev["linear"]["mean"] <= 100 and ev["knn"]["R@1"]["mean"] is not None
        assert r["params_m"] > 0 and r["gflops_per_clip"] > 0
        logged = {key: float(v) for phase, _, key, v in
                  (line.split(",") for line in (runs / r["run_id"] / "metrics.csv").read_text().splitlines()[1:])
                  if phase == "eval"}  # evaluation beside the pretraining scalars
        assert logged["linear/synthetic/mean"] == pytest.approx(ev["linear"]["mean"])
        assert logged["knn/synthetic/split3"] == pytest.approx(ev["knn"]["splits"]["3"])
        assert logged["knn/synthetic/R@1/split1"] == pytest.approx(ev["knn"]["R@1"]["splits"]["1"])
        assert all("per_video" not in e for e in r["evals"])  # predictions have their own file
        predictions = json.loads((runs / r["run_id"] / "predictions.json").read_text())
        for protocol in ("linear", "knn"):  # the saved predictions are the ones scored
            for split, p in predictions[protocol]["splits"].items():
                right = sum(a == b for a, b in zip(p["predicted"], p["labels"]))
                assert 100.0 * right / len(p["labels"]) == pytest.approx(ev[protocol]["splits"][split])
    out = tmp_path / "cmp.md"
    p = cli(["compare", "--results", str(runs), "--out", str(out), "--plot", str(tmp_path / "cmp.png")], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"tables: {out}" in p.stderr and f"plot: {tmp_path / 'cmp.png'}" in p.stderr
    text = out.read_text()
    measured = text.split("### ")[1]
    assert measured.startswith("measured here") and "vdim (linear, 4 steps)" in measured and "random (linear, 0 steps)" in measured
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    against = cli(["compare", "--results", str(runs), "--against", "random", "--format", "json"], tmp_path)
    vdim = next(r for r in json.loads(against.stdout) if r["method"] == "vdim" and r["protocol"] == "linear")
    assert vdim["paired_seeds"] == 1 and vdim["paired_videos"] > 0 and vdim["diff_ci95_low"] <= vdim["diff"]
    j = cli(["compare", "--results", str(runs), "--format", "json"], tmp_path)
    records = [r for r in json.loads(j.stdout) if r["status"] == "measured"]
    assert {(r["method"], r["protocol"]) for r in records} == {(m, p) for m in ("vdim", "random") for p in ("linear", "knn")}
    for r in records:  # the run's own numbers, read back as numbers
        run = next(x for x in results if x["method"] == r["method"])
        ev = next(e for e in run["evals"] if e["protocol"] == r["protocol"])
        assert r["mean"] == pytest.approx(ev["mean"]) and r["n"] == 1 and r["split_1"] == pytest.approx(ev["splits"]["1"])


@pytest.mark.slow
def test_perf_suite_writes_wellformed_report(tmp_path, tiny_dataset):
    p = cli(["perf", "sections=[data,train,efficiency,eval,scaling]", "levers=[channels_last,allocator]", "batch_size=2", "repeats=1", "workers=[0]",
             "eval_videos=6", "eval_epochs_measured=2", "paper_resolution=false", "scaling_batches=[2,4]", "scaling_locations=[1,8]", f"dataset.root={tiny_dataset}", *TINY_OVERRIDES,
             "encoder.ndf=8", "encoder.n_1x1=0", "encoder.head_dim=32", f"results_dir={tmp_path / 'perf'}"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(next((tmp_path / "perf").glob("*/perf.json")).read_text())
    sections = {r["section"] for r in report["rows"]}
    assert sections == {"data", "train", "efficiency", "eval", "scaling", "summary"} and report["device"]
    data = {r["what"]: r for r in report["rows"] if r["section"] == "data"}
    assert {"ours vdim views", "ours rho_simclr views", "ours vdim views, augmented on the device",
            "ours rho_simclr views, augmented on the device"} <= set(data)
    once = next(r for w, r in data.items() if w.startswith("ours vdim views, decode once"))
    assert once["clips_per_s"] > 0 and once["ratio"] > 0
    on_device = next(r for w, r in data.items() if w.startswith("ours rho_simclr clips, colour/grey/blur/normalise on cpu"))
    assert on_device["clips_per_s"] > 0 and on_device["ratio"] > 0
    step = next(r["clips_per_s"] for r in report["rows"] if r["what"] == "ours vdim" and r["precision"] == "bf16")
    summary = next(r for r in report["rows"] if r["section"] == "summary")
    assert summary["ratio"] == pytest.approx(data["ours vdim views"]["clips_per_s"] / step)
    assert all(r["seconds"] > 0 for r in report["rows"] if r["section"] in ("eval", "scaling"))
    assert len([r for r in report["rows"] if "speedup_of_cache" in r]) == 2
    ratios = [r for r in report["rows"] if r["what"].startswith("ours rho_") and "/ PyTorchVideo" in r["what"]]
    assert {r["what"].split(" / ")[1] for r in ratios} == {"PyTorchVideo SimCLR (reference)", "PyTorchVideo BYOL (reference)"}
    assert all(r["ratio"] > 0 and r["met"] == (r["ratio"] >= r["target"]) for r in ratios)
    assert len(ratios) == 4 and all(0 < r["round_min"] <= r["round_max"] for r in ratios)
    assert all(r["clips_per_s"] > 0 for r in report["rows"] if "clips_per_s" in r)
    assert all(0 < r["fraction_of_peak"] for r in report["rows"] if r["section"] == "efficiency")
    efficiency = {(r["what"], r["precision"]): r for r in report["rows"] if r["section"] == "efficiency" and "fraction_of_peak" in r}
    steps = [(w, p) for w, p in efficiency if ": its convolutions" not in w]
    assert len(steps) == 2 and all(efficiency[(f"{w}: its convolutions alone, forward and backward", p)]["share_of_step"] > 0
                                   for w, p in steps)
    for w, p in steps:  # the batch norms' traffic lowers the convolutions' ceiling
        floor = efficiency[(f"{w}: its convolutions and its batch norms' least memory traffic", p)]
        alone = efficiency[(f"{w}: its convolutions alone, forward and backward", p)]
        assert floor["copy_gb_s"] > 0 and floor["batch_norm_traffic_gb"] > 0
        assert floor["fraction_of_peak"] < alone["fraction_of_peak"]
    levers = [r for r in report["rows"] if r["what"].startswith("ours vdim, channels_last_3d")]
    plain = {r["precision"]: r["clips_per_s"] for r in report["rows"] if r["what"] == "ours vdim"}
    assert {r["precision"] for r in levers} == {"fp32", "bf16"}
    assert all(r["ratio"] == pytest.approx(r["clips_per_s"] / plain[r["precision"]]) for r in levers)
    assert not any("torch.compile" in r["what"] for r in report["rows"])  # only the levers asked for
    assert report["allocator"].startswith("retain")
    flipped = {r["what"]: r for r in report["rows"] if r["what"].endswith(", allocator system")}
    assert set(flipped) == {f"{w}, allocator system" for w in ("ours vdim", "ours rho_simclr", "ours rho_byol",
                                                               "PyTorchVideo SimCLR (reference)", "PyTorchVideo BYOL (reference)")}
    assert all(r["precision"] == "bf16" and r["clips_per_s"] > 0 and r["ratio"] > 0 and r["page_faults_per_step"] >= 0
               and r["page_faults_per_step_default"] >= 0 for r in flipped.values())


@pytest.mark.slow
def test_compiled_encoder_trains_and_checkpoints_like_eager(tmp_path, tiny_dataset):
    """trainer.compile=true: torch.compile of the encoder in place; checkpoint keys stay the eager ones,
    so a compiled run's checkpoint loads into an eager encoder."""
    import torch

    p = cli(["run", f"dataset.root={tiny_dataset}", f"results_dir={tmp_path / 'r'}", "trainer.steps=2",
             "trainer.compile=true", "trainer.precision=fp32", *FAST], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    assert result["pretrain"]["steps"] == 2 and math.isfinite(result["pretrain"]["final_loss"])
    assert result["version"] == pyproject_version()
    state = torch.load(next((tmp_path / "r").glob("*/checkpoints/last.pt")), weights_only=False)["model"]
    assert not any("_orig_mod" in k for k in state) and any(k.startswith("encoder.") for k in state)


@pytest.mark.slow
def test_torchrun_two_processes_pretrain_and_evaluate(tmp_path, tiny_dataset):
    """The documented multi-process command, end to end on CPU with gloo: DDP, sharded data, one result."""
    torchrun = Path(sys.executable).parent / "torchrun"
    args = ["run", f"dataset.root={tiny_dataset}", f"results_dir={tmp_path / 'r'}", "trainer.steps=3",
            "trainer.checkpoint_every=2", "trainer.threads=1", "eval.linear.epochs=2", *RHO_FAST]
    e = {**os.environ, "VDIM_BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "benchmark", *args], cwd=tmp_path,
                          env=e, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list((tmp_path / "r").glob("*/result.json"))
    assert len(results) == 1, results  # both ranks use rank 0's run folder
    result = json.loads(results[0].read_text())
    assert result["pretrain"]["world_size"] == 2 and result["pretrain"]["steps"] == 3
    assert result["pretrain"]["clips_seen"] == 3 * 2 * 2 * 2  # steps x processes x batch x clips per video
    assert math.isfinite(result["pretrain"]["final_loss"])


@pytest.mark.slow
def test_evaluate_on_another_dataset_than_pretraining(tmp_path, tiny_dataset):
    """Pretrain on the UCF-101 layout; then re-evaluate that checkpoint, without pretraining
    again, on the HMDB-51 layout's split files (Table 3's shape; the rho presets' UCF-101 step)."""
    p = cli(["run", f"dataset.root={tiny_dataset}", "trainer.steps=2", f"results_dir={tmp_path / 'a'}", *FAST], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    first = json.loads(next((tmp_path / "a").glob("*/result.json")).read_text())
    ckpt = next((tmp_path / "a").glob("*/checkpoints/last.pt"))
    p = cli(["run", f"dataset.root={tiny_dataset}", "trainer.steps=2", f"results_dir={tmp_path / 'b'}",
             f"trainer.resume={ckpt}", "eval.dataset=hmdb51", f"eval.dataset_root={tiny_dataset / 'hmdb51'}", *FAST],
            tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    second = json.loads(next((tmp_path / "b").glob("*/result.json")).read_text())
    assert second["pretrain"]["dataset"] == "synthetic" and second["pretrain"]["clips_seen"] == 0  # nothing retrained
    assert second["pretrain"]["final_loss"] == first["pretrain"]["final_loss"]
    assert [(e["protocol"], e["dataset"]) for e in second["evals"]] == [("knn", "hmdb51")]
    assert (ckpt.parent / "DONE").read_text() == "pretraining finished\n"


@pytest.mark.slow
def test_submitit_launcher_with_two_tasks_forms_one_process_group(tmp_path, tiny_dataset):
    """`launcher=slurm` goes through hydra-submitit-launcher; its local executor runs the same
    job code with 2 tasks here, so the tasks must find each other as torchrun's would."""
    args = ["run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.timeout_min=10", f"dataset.root={tiny_dataset}", f"results_dir={tmp_path / 'r'}",
            "trainer.steps=2", "trainer.threads=1", *RHO_FAST]
    p = cli(args, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    results = list((tmp_path / "r").glob("*_sweep/*/result.json"))
    assert len(results) == 1, results
    pre = json.loads(results[0].read_text())["pretrain"]
    assert pre["world_size"] == 2 and pre["clips_seen"] == 2 * 2 * 2 * 2


def test_bottleneck_summary_reads_the_stream_the_trainer_uses():
    """The summary divides the data rate of the trainer's ``augment_on`` path by the VDIM bf16 step."""
    from benchmark.perf import bottleneck_rows
    rows = [{"section": "data", "what": "ours vdim views", "clips_per_s": 100.0},
            {"section": "data", "what": "ours vdim views, augmented on the device", "clips_per_s": 300.0},
            {"section": "train", "what": "ours vdim", "precision": "bf16", "clips_per_s": 200.0}]
    assert bottleneck_rows(rows, "workers")[0]["ratio"] == 0.5 and not bottleneck_rows(rows, "workers")[0]["met"]
    assert bottleneck_rows(rows, "device")[0]["ratio"] == 1.5 and bottleneck_rows(rows, "device")[0]["met"]


def test_compile_lever_is_priced_and_compared_with_the_references_in_the_trainers_precision():
    """torch.compile's rows: on the VDIM step in both precisions, and on the two steps compared with
    PyTorchVideo's in the trainer's; its one-time cost and the step it has paid by follow from the
    first call and the two rates (16 clips: 1.0 s eager, 0.5 s compiled, first call 10 s)."""
    import torch
    from omegaconf import OmegaConf

    from benchmark.perf.train import compile_payoff, inductor_cache_state, lever_steps, reference_ratios
    cfg = OmegaConf.create({"levers": ["compile"], "trainer": {"channels_last": True, "compile": False, "precision": "bf16"}})
    cpu = torch.device("cpu")
    assert set(lever_steps(cfg, cpu, "fp32")) == {"ours vdim, torch.compile on"}
    assert set(lever_steps(cfg, cpu, "bf16")) == {f"ours {m}, torch.compile on" for m in ("vdim", "rho_simclr", "rho_byol")}
    assert compile_payoff(10.0, 16, rate=32.0, eager_rate=16.0) == {"compile_s": 9.5, "pays_after_steps": 19.0}
    assert compile_payoff(10.0, 16, rate=16.0, eager_rate=20.0) == {"compile_s": 9.0}  # never pays
    assert [inductor_cache_state((3, 1), after) for after in ((3, 3), (5, 1), (3, 1))] == ["cold", "warm", "in process"]
    rows = [{"section": "train", "what": w, "precision": "bf16", "clips_per_s": r} for w, r in
            (("ours rho_simclr", 12.0), ("ours rho_simclr, torch.compile on", 18.0), ("PyTorchVideo SimCLR (reference)", 10.0))]
    rounds = {(r["what"], "bf16"): [r["clips_per_s"]] for r in rows}
    ratios = {r["what"]: (r["ratio"], r["met"]) for r in reference_ratios(rows, rounds)}
    assert ratios == {"ours rho_simclr / PyTorchVideo SimCLR (reference)": (1.2, False),
                      "ours rho_simclr, torch.compile on / PyTorchVideo SimCLR (reference)": (1.8, True)}


def test_method_alone_runs_on_its_declared_encoder():
    from benchmark.__main__ import with_method_encoder
    assert with_method_encoder(["method=dpc", "seed=1", "--cfg", "job"]) == ["method=dpc", "encoder=r2d3d_18", "seed=1",
                                                                           "--cfg", "job"]
    for args in (["method=dpc", "encoder=r2d3d_34"], ["method=dpc", "experiment=dpc_ucf101"],
                 ["-m", "method=dpc,vdim"], ["method=vdim"], ["seed=1"]):
        assert with_method_encoder(args) == args


def pyproject_version():
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_flag_prints_the_project_version(tmp_path):
    p = cli(["--version"], tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == f"vdim-bench {pyproject_version()}"
