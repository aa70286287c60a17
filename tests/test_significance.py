"""``compare --against``: paired bootstrap over test videos and seeds, on constructed per-video
predictions whose answer is known."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from benchmark.significance import paired_bootstrap

VIDEOS = [f"c{i % 8}/v{i}.avi" for i in range(72)]


def correct_on(right_share_or_mask, seeds=(0, 1, 2), splits=("1", "2", "3")):
    """seed -> split -> video -> 1/0: ``mask[i]`` (or the first share of the videos) right."""
    mask = right_share_or_mask
    if not isinstance(mask, (list, np.ndarray)):
        mask = [int(i < round(mask * len(VIDEOS))) for i in range(len(VIDEOS))]
    return {s: {k: dict(zip(VIDEOS, map(int, mask))) for k in splits} for s in seeds}


def test_identical_predictions_differ_by_nothing_and_are_not_significant():
    same = correct_on(0.5)
    got = paired_bootstrap(same, same, draws=2000)
    assert got["diff"] == 0 and got["diff_ci95_low"] == 0 and got["diff_ci95_high"] == 0
    assert not got["significant"] and got["paired_seeds"] == 3 and got["paired_videos"] == 3 * 3 * 72


def test_a_method_right_on_every_video_its_reference_misses_half_of_is_significant():
    got = paired_bootstrap(correct_on(1.0), correct_on(0.5), draws=2000)
    assert got["diff"] == pytest.approx(50.0)
    assert 40 < got["diff_ci95_low"] < 50 < got["diff_ci95_high"] < 60 and got["significant"]


def test_one_video_of_one_split_of_one_seed_is_not_significant():
    ref = correct_on(0.5)
    better = json.loads(json.dumps(ref))  # a deep copy, keys as strings
    better = {int(s): v for s, v in better.items()}
    better[0]["1"][VIDEOS[-1]] = 1  # one video the reference gets wrong
    got = paired_bootstrap(better, ref, draws=2000)
    assert got["diff"] == pytest.approx(100 / 72 / 3 / 3)  # one video of 72, one split of 3, one seed of 3
    assert got["diff_ci95_low"] <= 0 <= got["diff_ci95_high"] and not got["significant"]


def test_interval_matches_the_normal_approximation_of_a_paired_difference():
    """One seed, one split, 400 videos: the bootstrap's 95% half-width against 1.96 standard errors
    of the mean paired difference (the textbook formula), within the bootstrap's own noise."""
    rng = np.random.default_rng(3)
    n = 400
    a_right = rng.random(n) < 0.6
    r_right = np.where(rng.random(n) < 0.7, a_right, rng.random(n) < 0.5)  # correlated, as paired methods are
    videos = [f"v{i}" for i in range(n)]
    a = {0: {"1": dict(zip(videos, a_right.astype(int)))}}
    r = {0: {"1": dict(zip(videos, r_right.astype(int)))}}
    got = paired_bootstrap(a, r, draws=10000)
    d = a_right.astype(float) - r_right.astype(float)
    half = 1.96 * d.std(ddof=1) / math.sqrt(n) * 100
    assert got["diff"] == pytest.approx(d.mean() * 100)
    assert (got["diff_ci95_high"] - got["diff_ci95_low"]) / 2 == pytest.approx(half, rel=0.1)


def _run(folder, method, seed, right):
    folder.mkdir(parents=True)
    labels = [int(v.split("/")[0][1:]) for v in VIDEOS]
    predicted = [y if ok else (y + 1) % 8 for y, ok in zip(labels, right)]
    top1 = 100.0 * sum(right) / len(right)
    (folder / "result.json").write_text(json.dumps({
        "run_id": folder.name, "method": method, "encoder": "vdim_small", "input": {"frames": 16, "size": 64},
        "pretrain": {"dataset": "synthetic", "steps": 400},
        "evals": [{"protocol": "linear", "dataset": "synthetic", "metric": "top1", "splits": {"1": top1},
                   "mean": top1, "test_protocol": "4 clips x 1 crops"}],
        "config": {"seed": seed, "method": {"name": method}}}))
    (folder / "predictions.json").write_text(json.dumps({"linear": {"dataset": "synthetic", "splits": {
        "1": {"videos": VIDEOS, "labels": labels, "predicted": predicted}}}}))


def test_compare_against_reports_the_difference_and_marks_what_is_not_significant(tmp_path):
    runs = tmp_path / "runs"
    half = [i < 36 for i in range(72)]
    for seed in (0, 1):
        _run(runs / f"random{seed}", "random", seed, half)
        _run(runs / f"vdim{seed}", "vdim", seed, [True] * 72)
        _run(runs / f"byol{seed}", "rho_byol", seed, half[:-1] + [seed == 0])  # one more video right at seed 0
    cmd = [sys.executable, "-m", "benchmark", "compare", "--results", str(runs), "--against", "random"]
    p = subprocess.run(cmd + ["--format", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {r["method"]: r for r in json.loads(p.stdout) if r["status"] == "measured"}
    assert rows["vdim"]["diff"] == pytest.approx(50.0) and rows["vdim"]["significant"] is True
    assert rows["rho_byol"]["diff"] == pytest.approx(100 / 72 / 2) and rows["rho_byol"]["significant"] is False
    md = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    line = {m: next(x for x in md.splitlines() if x.startswith(f"| {m} ")) for m in rows}
    assert "+50.0 [" in line["vdim"] and "not significant" not in line["vdim"]
    assert "not significant" in line["rho_byol"] and "reference" in line["random"]
    bad = subprocess.run(cmd[:-1] + ["dpc"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: --against dpc: no run of that method in {runs}; methods there: random, rho_byol, vdim"]
