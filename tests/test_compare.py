"""`compare` on constructed result.json files: seeds of one setting aggregate into n, mean, std and a
95% interval, other settings stay apart, runs land on the paper row they reproduce, measured rows
come first, CSV and JSON read back as one tidy numeric table, and Table 2's "avg ablate" rows are
the mean over the ablation sweep's runs."""
import io
import json
import math
import statistics
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.compare import (aggregate, load_paper_rows, load_runs, reference_setting, render, t_quantile_975,
                               tidy_table)


def _result(run_id, method="vdim", seed=0, lr=2e-4, pre="ucf101", data="ucf101", protocol="finetune",
            splits=None, experiment=None, color="jitter", downsample=(1, 2), td=False, steps=50000):
    splits = splits or {"1": 70.0}
    vals = [v for v in splits.values() if v is not None]
    return {
        "run_id": run_id, "method": method, "encoder": "vdim", "params_m": 17.314, "gflops_per_clip": 12.7,
        "input": {"frames": 32, "size": 128}, "experiment": experiment,
        "pretrain": {"dataset": pre, "steps": steps},
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
    return tidy_table(load_runs(tmp_path), load_paper_rows())


SYN = dict(data="synthetic", pre="synthetic", protocol="linear")


def test_t_quantiles_match_the_tables():
    # t_{0.975} from any statistics table: df 2, 4, 10, 30, 60, 120
    for df, t in [(2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042), (60, 2.000), (120, 1.980)]:
        assert t_quantile_975(df) == pytest.approx(t, abs=6e-4)


def test_seeds_aggregate_with_an_interval_and_settings_stay_apart(tmp_path):
    tidy = _write(tmp_path, [
        _result("a", seed=0, splits={"1": 30.0, "2": 40.0, "3": 50.0}, **SYN),
        _result("b", seed=1, splits={"1": 50.0, "2": 60.0, "3": 70.0}, **SYN),
        _result("c", seed=2, splits={"1": 35.0, "2": 45.0, "3": 40.0}, **SYN),
        _result("d", seed=0, lr=1e-3, splits={"1": 10.0}, **SYN),
    ])
    measured = tidy[tidy["status"] == "measured"]
    assert len(measured) == 2
    three = measured[measured["n"] == 3].iloc[0]
    seed_means = [40.0, 60.0, 40.0]
    sd = statistics.stdev(seed_means)  # 11.547
    assert three["mean"] == pytest.approx(statistics.mean(seed_means))
    assert three["std"] == pytest.approx(sd)
    assert three["ci95_low"] == pytest.approx(statistics.mean(seed_means) - 4.303 * sd / math.sqrt(3), abs=1e-2)
    assert three["ci95_high"] == pytest.approx(statistics.mean(seed_means) + 4.303 * sd / math.sqrt(3), abs=1e-2)
    # the splits' spread, apart from the seeds': population std of (30, 40, 50), (50, 60, 70), (35, 45, 40)
    assert three["split_std"] == pytest.approx((8.165 + 8.165 + 4.082) / 3, abs=1e-3)
    assert (three["split_1"], three["split_2"], three["split_3"]) == pytest.approx((115 / 3, 145 / 3, 160 / 3))
    assert three["seeds"] == "0,1,2"
    one = measured[measured["n"] == 1].iloc[0]
    assert one["mean"] == 10.0 and math.isnan(one["std"]) and math.isnan(one["ci95_low"])


def test_measured_rows_come_first_and_labels_tell_runs_apart(tmp_path):
    tidy = _write(tmp_path, [_result("a", steps=400, **SYN), _result("b", steps=800, lr=1e-3, **SYN),
                             _result("c", method="random", steps=0, **SYN)])
    status = list(tidy["status"])
    assert status[:3] == ["measured"] * 3 and "measured" not in status[3:]
    assert {"not run", "reference only"} <= set(status[3:])
    labels = list(tidy["label"][:3])
    assert len(set(labels)) == 3 and "vdim (linear, 400 steps)" in labels and "vdim (linear, 800 steps)" in labels


INTEL = {"cpu": "Intel(R) Xeon(R) Processor", "vector_units": ["AMX", "AVX-512 BF16"], "cores": 2, "gpu": None}
AMD = {"cpu": "AMD EPYC", "vector_units": ["AVX-512 BF16", "AVX-512"], "cores": 2, "gpu": None}


def test_the_same_seeds_on_two_cpus_are_two_settings_and_pair_within_their_cpu(tmp_path):
    """Kernels round differently on another CPU, so seed 0 there is not another seed: two rows of
    n = 2, not one of n = 4 with each seed twice, and --against pairs each with its own CPU's."""
    runs = []
    for host, base in ((INTEL, 50.0), (AMD, 30.0)):
        for seed in (0, 1):
            for method, value in (("vdim", base + seed), ("random", 20.0 + seed)):
                runs.append({**_result(f"{method}{seed}{host['cpu'][:3]}", method=method, seed=seed,
                                       splits={"1": value}, **SYN), "host": host})
    tidy = _write(tmp_path, runs)
    vdim = tidy[(tidy["status"] == "measured") & (tidy["method"] == "vdim")].set_index("machine")
    assert sorted(vdim.index) == ["AMD EPYC, AVX-512 BF16", "Intel Xeon, AMX"]
    assert list(vdim["n"]) == [2, 2] and vdim.loc["Intel Xeon, AMX", "mean"] == pytest.approx(50.5)
    assert vdim.loc["AMD EPYC, AVX-512 BF16", "label"] == "vdim (linear, 50000 steps, AMD EPYC, AVX-512 BF16)"
    measured = aggregate(load_runs(tmp_path))
    for _, row in measured[measured["method"] == "vdim"].iterrows():
        assert reference_setting(measured, row, "random")["machine"] == row["machine"]


def _best(result):
    """``result`` at sec. 4.2's best setting (benchmark.compare.VDIM_ABLATION_BEST)."""
    result["config"]["method"].update({"temporal_difference": True, "consequent": ["block6"]})
    result["config"]["method"]["views"]["offset"] = 0
    result["config"]["method"]["augment"]["rotation_degrees"] = 0.0
    return result


def test_only_the_best_setting_lands_on_the_ablation_best_row():
    from benchmark.compare import method_key
    from conftest import compose_run
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(compose_run(["experiment=vdim_ucf101_table2", "dataset.root=/x"]), resolve=True)
    assert method_key({"method": "vdim", "config": cfg}) == "vdim_ablation_best"  # the preset is that setting
    cfg["method"]["temporal_difference"] = False
    assert method_key({"method": "vdim", "config": cfg}) == "vdim"
    cfg = OmegaConf.to_container(compose_run(["experiment=vdim_k600_table3", "dataset.root=/x"]), resolve=True)
    assert method_key({"method": "vdim", "config": cfg}) == "vdim"  # Table 3: no temporal difference


def test_run_lands_on_its_paper_row_with_the_difference(tmp_path):
    tidy = _write(tmp_path, [_best(_result("a", splits={"1": 70.0}))])
    row = tidy[(tidy["status"] == "measured") & (tidy["model"] == "VDIM (ablation best)")].iloc[0]
    assert row["paper_value"] == 74.1 and row["delta"] == pytest.approx(70.0 - 74.1)
    dpc = tidy[(tidy["model"] == "DPC") & (tidy["table"] == "Table 2")].iloc[0]
    assert dpc["status"] == "reference only" and math.isnan(dpc["mean"])


def test_csv_and_json_read_back_as_one_numeric_table(tmp_path):
    tidy = _write(tmp_path, [_result("a", seed=0, splits={"1": 30.0, "2": 40.0, "3": 50.0}, **SYN),
                             _result("b", seed=1, splits={"1": 50.0, "2": 60.0, "3": 70.0}, **SYN),
                             _result("c", splits={"1": 70.0})])
    back = pd.read_csv(io.StringIO(render(tidy, "csv")))
    assert len(back) == len(tidy) and list(back.columns) == [c for c in tidy.columns if c != "runs"]
    for col in ("mean", "std", "n", "ci95_low", "paper_value", "delta", "steps", "split_1"):
        assert pd.api.types.is_numeric_dtype(back[col]), col
    syn = back[(back["status"] == "measured") & (back["eval_data"] == "synthetic")].iloc[0]
    assert syn["mean"] == pytest.approx(50.0) and syn["n"] == 2 and syn["std"] == pytest.approx(math.sqrt(200))
    records = json.loads(render(tidy, "json"))
    assert isinstance(records, list) and len(records) == len(tidy)
    syn = next(r for r in records if r["status"] == "measured" and r["eval_data"] == "synthetic")
    assert isinstance(syn["mean"], float) and syn["n"] == 2
    assert sorted(r["seed"] for r in syn["runs"]) == [0, 1] and syn["runs"][0]["splits"]["1"] in (30.0, 50.0)
    assert all(r["mean"] is None for r in records if r["status"] != "measured")  # null, not NaN


def test_avg_ablate_rows_average_the_sweep(tmp_path):
    sweep = [_result(f"s{i}", experiment="vdim_ablation", lr=1e-4 * (i + 1), splits={"1": v}, color=c, downsample=d, td=td)
             for i, (v, c, d, td) in enumerate([(60.0, "jitter", (1, 1), False), (64.0, "jitter", (1, 2), True),
                                               (68.0, "jitter", (1, 3), True), (90.0, "lab_dropout", (1, 2), True)])]
    tidy = _write(tmp_path, sweep)
    measured = tidy[tidy["status"] == "measured"]
    jitter = measured[measured["model"] == "VDIM (avg ablate colour jitter)"].iloc[0]
    assert jitter["mean"] == pytest.approx(64.0) and jitter["n"] == 3  # (60 + 64 + 68) / 3: Lab-dropout runs excluded
    down_diff = measured[measured["model"] == "VDIM (avg ablate colour jitter + down + diff)"].iloc[0]
    assert down_diff["mean"] == pytest.approx(66.0)  # (64 + 68) / 2: downsampled and temporal difference


def test_plot_alone_writes_the_png_and_says_where(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    _write(runs, [_result("a", seed=0, **SYN), _result("b", seed=1, splits={"1": 50.0}, **SYN)])
    png = tmp_path / "cmp.png"
    p = subprocess.run([sys.executable, "-m", "benchmark", "compare", "--results", str(runs), "--plot", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and f"plot: {png}" in p.stderr  # the tables are not printed again
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_method_no_paper_reports_says_so_and_a_reported_one_does_not(tmp_path):
    from benchmark.compare import readable_tables
    tidy = _write(tmp_path, [_result("a", method="maxgl", protocol="linear", splits={"1": 40.0}),
                             _result("b", method="dpc", pre="synthetic", data="synthetic", protocol="linear",
                                     splits={"1": 50.0})])
    cells = dict(zip(tidy.loc[tidy["status"] == "measured", "method"], readable_tables(tidy)["measured here"]["paper"]))
    assert cells["maxgl"] == "no paper numbers known"
    assert cells["dpc"] == ""  # DPC's papers report other settings, not this one


def test_keys_a_later_version_adds_switched_off_leave_the_setting_alone(tmp_path):
    from benchmark.compare import setting_of
    old = _result("a", **SYN)
    new = _result("b", seed=1, **SYN)
    new["config"]["eval"] = {"train_examples": None, "train_examples_per_class": None, "subset_seed": 0}
    assert setting_of(old) == setting_of(new)
    new["config"]["eval"]["train_examples_per_class"] = 3
    assert setting_of(old) != setting_of(new)


def test_settings_of_a_protocol_not_run_leave_the_setting_alone(tmp_path):
    from benchmark.compare import setting_of
    a, b = _result("a", **SYN), _result("b", seed=1, **SYN)
    for r, steps in ((a, 200), (b, 400)):
        r["config"]["eval"] = {"protocols": ["linear", "knn"], "finetune": {"steps": steps}, "linear": {"epochs": 100}}
    assert setting_of(a) == setting_of(b)
    b["config"]["eval"]["linear"]["epochs"] = 50
    assert setting_of(a) != setting_of(b)


def test_keys_added_later_at_their_neutral_value_keep_older_runs_in_the_same_setting(tmp_path):
    """A run from before trainer.nesterov, augment.crop/order/flip_per and friends existed is the
    same setting as a later one at the values that run as before; a later run that sets one of
    them otherwise is a setting of its own."""
    old = [_result(f"old{s}", seed=s, **SYN) for s in (0, 1)]
    new = _result("new2", seed=2, **SYN)
    new["config"]["trainer"].update(nesterov=False, lars_trust="norm_of_sum", bf16_conv_check=True)
    new["config"]["method"]["augment"].update(crop="resized", scale_jitter=[256, 320], order="crop_first",
                                              flip_per="view")
    other = _result("other", seed=0, **SYN)
    other["config"]["method"]["augment"].update(crop="scale_jitter", scale_jitter=[72, 80])
    tidy = _write(tmp_path, old + [new, other])
    measured = tidy[tidy["status"] == "measured"]
    assert sorted(measured["n"]) == [1, 3]
