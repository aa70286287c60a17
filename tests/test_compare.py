"""`compare` on constructed result.json files: seeds of one setting aggregate, other settings
stay apart, runs land on the paper row they reproduce, and Table 2's "avg ablate" rows are
the mean over the ablation sweep's runs."""
import json

import pytest

from benchmark.compare import build_tables, load_paper_rows, load_runs


def _result(run_id, method="vdim", seed=0, lr=2e-4, pre="ucf101", data="ucf101", protocol="finetune",
            splits=None, experiment=None, color="jitter", downsample=(1, 2), td=False):
    splits = splits or {"1": 70.0}
    vals = [v for v in splits.values() if v is not None]
    return {
        "run_id": run_id, "method": method, "encoder": "vdim", "params_m": 17.314, "gflops_per_clip": 12.7,
        "input": {"frames": 32, "size": 128}, "experiment": experiment,
        "pretrain": {"dataset": pre, "steps": 50000},
        "evals": [{"protocol": protocol, "dataset": data, "metric": "top1", "splits": splits,
                   "mean": sum(vals) / len(vals), "std": 0.0, "test_protocol": "10 clips x 1 crops"}],
        "config": {"seed": seed, "run_id": run_id, "trainer": {"lr": lr, "num_workers": seed},
                   "method": {"name": method, "augment": {"color": color}, "views": {"downsample": list(downsample)},
                              "temporal_difference": td}},
    }


def _write(tmp_path, results):
    for r in results:
        d = tmp_path / r["run_id"]
        d.mkdir()
        (d / "result.json").write_text(json.dumps(r))
    return build_tables(load_runs(tmp_path), load_paper_rows())


def test_seeds_aggregate_and_settings_stay_apart(tmp_path):
    tables = _write(tmp_path, [
        _result("a", seed=0, data="synthetic", pre="synthetic", protocol="linear", splits={"1": 30.0, "2": 40.0, "3": 50.0}),
        _result("b", seed=1, data="synthetic", pre="synthetic", protocol="linear", splits={"1": 50.0, "2": 60.0, "3": 70.0}),
        _result("c", seed=0, lr=1e-3, data="synthetic", pre="synthetic", protocol="linear", splits={"1": 10.0}),
    ])
    table = tables["measured on synthetic (no paper reports this data)"]
    assert len(table) == 2
    two = table[table["seeds"] == 2].iloc[0]
    assert two["measured"].startswith("50.0 ± ")  # mean of the seed means 40 and 60
    assert float(two["measured"].split("± ")[1]) == pytest.approx(12.9, abs=0.05)  # std over the 6 split values
    assert two["splits"] == "40.0 / 50.0 / 60.0"
    assert table[table["seeds"] == 1].iloc[0]["measured"] == "10.0 ± 0.0"


def test_run_lands_on_its_paper_row_with_the_difference(tmp_path):
    tables = _write(tmp_path, [_result("a", splits={"1": 70.0})])
    t2 = tables["vdim Table 2"]
    row = t2[t2["model"] == "VDIM (ablation best)"].iloc[0]
    assert row["reported"] == 74.1 and row["diff"] == pytest.approx(70.0 - 74.1)
    assert t2[t2["model"] == "DPC"].iloc[0]["measured"] == "reference only"


def test_avg_ablate_rows_average_the_sweep(tmp_path):
    sweep = [_result(f"s{i}", experiment="vdim_ablation", lr=1e-4 * (i + 1), splits={"1": v}, color=c, downsample=d, td=td)
             for i, (v, c, d, td) in enumerate([(60.0, "jitter", (1, 1), False), (64.0, "jitter", (1, 2), True),
                                               (68.0, "jitter", (1, 3), True), (90.0, "lab_dropout", (1, 2), True)])]
    t2 = _write(tmp_path, sweep)["vdim Table 2"]
    jitter = t2[t2["model"] == "VDIM (avg ablate colour jitter)"].iloc[0]
    assert jitter["measured"].startswith("64.0 ± ")  # (60 + 64 + 68) / 3: Lab-dropout runs excluded
    down_diff = t2[t2["model"] == "VDIM (avg ablate colour jitter + down + diff)"].iloc[0]
    assert down_diff["measured"].startswith("66.0 ± ")  # (64 + 68) / 2: downsampled and temporal difference
