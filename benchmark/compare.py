"""``python -m benchmark compare``: every run's result.json side by side with the papers' tables.

Runs that differ only in ``seed`` are one setting: n, the mean over the seeds of each run's
split mean, the standard deviation over those seeds' means and its 95% Student's t interval
(:func:`seed_statistics`); the spread over splits is a column of its own (``split_std``).
A setting is matched to the paper rows (``results/paper/*.csv``) with the same method key,
pretraining data, evaluation data and protocol, and ``delta`` is its mean minus the paper's
value. Table 2's "avg ablate" rows are computed from a ``vdim_ablation`` sweep the way the
paper computes them: the mean over the ablation runs that share colour jitter (and, for the
second row, downsampling and temporal difference).

Output: one tidy table (:func:`tidy_table`): measured settings first, grouped by method and
protocol, then the paper rows no run reproduces. ``--format csv|json`` writes it as it is,
numbers as numbers; markdown and LaTeX show the measured table, then each paper table with
its measured cells.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from tabulate import tabulate

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
FORMATS = ("markdown", "csv", "latex", "json")


def load_paper_rows(paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"method": str}) for p in sorted(Path(paper_dir).glob("*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df["method"] = df["method"].fillna("")
    return df


# VDIM sec. 4.2: "the best model uses color jitter + random grayscale, no random rotation, and
# temporal differences for the consequent features from a subsequence with 0 offset and a
# downsampling factor of 2", as configs/experiment/vdim_ucf101_table2.yaml encodes it (the
# temporal difference on consequent block 6: block 8's map has one time step)
VDIM_ABLATION_BEST = {"temporal_difference": True, "consequent": ["block6"], "views.offset": 0,
                      "views.downsample": [1, 2], "augment.color": "jitter", "augment.rotation_degrees": 0.0}


def method_key(result: Dict) -> str:
    """The key paper rows use: ``rho_moco`` for rho = 2, ``rho_moco@4`` for rho = 4;
    ``vdim_ablation_best`` for a VDIM run of :data:`VDIM_ABLATION_BEST`'s setting."""
    method = result.get("config", {}).get("method", {})
    rho = (method.get("clips") or {}).get("rho")
    name = result["method"]
    if name == "vdim" and all(_dotted(method, k) == v for k, v in VDIM_ABLATION_BEST.items()):
        return "vdim_ablation_best"
    return f"{name}@{rho}" if name.startswith("rho_") and rho and rho != 2 else name


def _dotted(node: Dict, key: str):
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return list(node) if isinstance(node, (list, tuple)) else node


VOLATILE = {"": ("seed", "run_id", "results_dir"),
            "trainer": ("progress", "num_workers", "threads", "adaptive_threads", "resume", "device", "log_every",
                        "checkpoint_every"),
            "eval": ("cache_dir", "feature_batch_size")}


PROTOCOL_SECTIONS = ("linear", "finetune", "knn")  # eval.<protocol>: that protocol's own settings


def without_nulls(node):
    """The config without its null keys: a key a later version adds with a null default (off)
    leaves the setting of older runs unchanged."""
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    return node


# keys a later version added, at the value that runs as the versions before it did: dropped at that
# value, so older runs that lack them stay the same setting (as null keys, :func:`without_nulls`).
# trainer.bf16_conv_check: where a CPU's convolutions all agree the check changes nothing; the
# ones it fixes are listed in the run's pretrain.fp32_weight_gradients
NEUTRAL = {"trainer.nesterov": False, "trainer.lars_trust": "norm_of_sum", "trainer.bf16_conv_check": True,
           "encoder.block_bn": True,
           "method.target_batches": "together", "method.queue_scope": "global",
           "method.frozen_until_queue_full": False, "method.shuffle_bn": False}
AUGMENT_NEUTRAL = {"crop": "resized", "order": "crop_first", "flip_per": "view"}  # every augment section's


def without_neutral_keys(cfg: Dict) -> Dict:
    """``cfg`` without the :data:`NEUTRAL` keys at their neutral value, and each ``augment``
    section without :data:`AUGMENT_NEUTRAL`'s (and its ``scale_jitter``, read only by
    ``crop=scale_jitter``)."""
    for key, value in NEUTRAL.items():
        section, _, leaf = key.rpartition(".")
        node = cfg.get(section, {}) if section else cfg
        if isinstance(node, dict) and node.get(leaf, object()) == value:
            node.pop(leaf)

    def strip(node):
        if isinstance(node, dict):
            aug = node.get("augment")
            if isinstance(aug, dict):
                for k, v in AUGMENT_NEUTRAL.items():
                    if aug.get(k, object()) == v:
                        aug.pop(k)
                if "crop" not in aug:
                    aug.pop("scale_jitter", None)
            for v in node.values():
                strip(v)
    strip(cfg)
    return cfg


def setting_of(result: Dict) -> str:
    """What makes runs the same setting: the resolved config without the seed, the keys that do
    not change the numbers (paths, workers, logging, the settings of protocols not run) and null
    keys, plus the data version."""
    cfg = without_neutral_keys(without_nulls(json.loads(json.dumps(result.get("config", {})))))
    for section, keys in VOLATILE.items():
        node = cfg if not section else cfg.get(section, {})
        for k in keys:
            node.pop(k, None)
    ev = cfg.get("eval", {})
    if "train_examples" not in ev and "train_examples_per_class" not in ev:
        ev.pop("subset_seed", None)  # which subset matters only when there is one
    for protocol in PROTOCOL_SECTIONS:
        if protocol not in ev.get("protocols", [protocol]):
            ev.pop(protocol, None)  # a protocol's settings change no other protocol's numbers
    cfg = {k: v for k, v in cfg.items() if v != {}}
    cfg["data_version"] = result.get("pretrain", {}).get("data_version")
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def read_results(results_dir: Path):
    """Every finished run's result.json under ``results_dir``, in the order of their paths, with
    ``folder``, where it lies (its ``predictions.json`` beside it)."""
    for path in sorted(Path(results_dir).glob("**/result.json")):
        if (path.parent / "FAILED").exists():  # benchmark.run.FAILED_MARKER: a run that did not finish
            continue
        try:
            yield {**json.loads(path.read_text()), "folder": str(path.parent)}
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: unreadable {path}: {e}", file=sys.stderr)


def load_runs(results_dir: Path) -> pd.DataFrame:
    from benchmark.host import machine_name
    rows = []
    for r in read_results(results_dir):
        m = r.get("config", {}).get("method", {})
        for e in r.get("evals", []):
            rows.append({
                "run_id": r["run_id"], "folder": r["folder"], "setting": setting_of(r), "method": method_key(r), "encoder": r["encoder"], "seed": r.get("config", {}).get("seed"),
                "machine": machine_name(r.get("host")),
                "experiment": r.get("experiment"), "pretrain_data": r["pretrain"]["dataset"],
                "eval_data": e["dataset"], "protocol": e["protocol"], "mean": e["mean"],
                "splits": e["splits"], "params_m": r.get("params_m"), "gflops": r.get("gflops_per_clip"),
                "steps": r["pretrain"]["steps"], "resolution": f"{r.get('input', {}).get('frames')}x{r.get('input', {}).get('size')}",
                "test_protocol": e.get("test_protocol", ""), "train_subset": e.get("train_subset"),
                "color": (m.get("augment") or {}).get("color"),
                "downsample": max((m.get("views") or {}).get("downsample") or [1]),
                "temporal_difference": m.get("temporal_difference"),
            })
    return pd.DataFrame(rows)


# Student's t quantile t_{0.975, df} for df = 1..30 (any statistics table); above 30 the
# Cornish-Fisher expansion around the normal quantile is within 1e-4 of it.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def seed_statistics(means: List[float]) -> Dict[str, float]:
    """n, mean, sample standard deviation and the 95% Student's t interval of the mean over the
    seeds' split means (the std and interval are NaN for a single seed: one run says nothing of
    the spread)."""
    n = len(means)
    mean = sum(means) / n
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}
    std = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


# A setting is also its machine: float kernels round differently on another CPU or GPU, so the same
# seed there is another run of the same seed, not another seed (benchmark/host.py).
SETTING_KEYS = ("method", "encoder", "pretrain_data", "eval_data", "protocol", "setting", "machine")


def aggregate(runs: pd.DataFrame, keys=SETTING_KEYS) -> pd.DataFrame:
    """One row per setting (runs that differ only in the seed): :func:`seed_statistics` over the
    runs' split means; ``split_std``, the population std over a run's splits averaged over its
    runs (how much the splits disagree, apart from the seeds); ``split_<k>``, each split's mean
    over the runs; and the runs' seeds, ids and per-split values."""
    out = []
    for key, g in runs.groupby(list(keys), dropna=False, sort=False):
        per_split: Dict[str, List[float]] = {}
        split_stds = []
        for splits in g["splits"]:
            values = [v for v in splits.values() if v is not None]
            mean = sum(values) / len(values)
            split_stds.append(math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)))
            for k, v in splits.items():
                if v is not None:
                    per_split.setdefault(k, []).append(v)
        out.append({**dict(zip(keys, key)), **seed_statistics([float(m) for m in g["mean"]]),
                    "split_std": sum(split_stds) / len(split_stds),
                    **{f"split_{k}": sum(v) / len(v) for k, v in sorted(per_split.items())},
                    "seeds": ",".join(str(s) for s in sorted(g["seed"].dropna().unique())),
                    "steps": int(g["steps"].iloc[0]), "resolution": g["resolution"].iloc[0],
                    "test_protocol": g["test_protocol"].iloc[0], "train_subset": g["train_subset"].iloc[0],
                    "params_m": g["params_m"].iloc[0],
                    "runs": [{"run_id": r, "seed": s, "mean": m, "splits": sp, "folder": f}
                             for r, s, m, sp, f in zip(g["run_id"], g["seed"], g["mean"], g["splits"], g["folder"])]})
    df = pd.DataFrame(out)
    df["label"] = run_labels(df)
    return df


def run_labels(measured: pd.DataFrame) -> List[str]:
    """``vdim (linear, 400 steps)`` (``..., trained on 3 per class (subset seed 0))`` under the
    sample-sensitivity protocol); the encoder, the machine, then the setting's hash, are added where
    that still names two settings alike."""
    labels = [f"{m} ({p}, {s} steps" + (f", trained on {sub})" if isinstance(sub, str) else ")")
              for m, p, s, sub in zip(measured["method"], measured["protocol"], measured["steps"], measured["train_subset"])]
    for tells_apart in (measured["encoder"], measured["machine"], measured["setting"].str[:6]):
        alike, extras = list(labels), list(tells_apart)
        differs = {label for label in alike if len({e for a, e in zip(alike, extras) if a == label}) > 1}
        labels = [f"{label[:-1]}, {extra})" if label in differs else label for label, extra in zip(alike, extras)]
    return labels


def ablation_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 2's averages over the sec. 4.2 sweep (experiment ``vdim_ablation``)."""
    if runs.empty or "experiment" not in runs:
        return pd.DataFrame()
    abl = runs[(runs["experiment"] == "vdim_ablation") & (runs["protocol"] == "finetune")]
    rows = []
    for name, sel in (("vdim_avg_ablate_jitter", abl["color"] == "jitter"),
                      ("vdim_avg_ablate_jitter_down_diff", (abl["color"] == "jitter") & (abl["downsample"] > 1)
                       & (abl["temporal_difference"] == True))):  # noqa: E712
        g = abl[sel]
        if len(g):
            rows.append(g.assign(method=name, setting=name))  # the average runs over the sweep's settings
    return pd.concat(rows) if rows else pd.DataFrame()


MATCH = ("method", "pretrain_data", "eval_data", "protocol")
PAPER_COLUMNS = ("paper", "table", "model", "paper_value", "source")
MEASURED_COLUMNS = ("label", "method", "encoder", "pretrain_data", "eval_data", "protocol", "n", "mean", "std",
                    "ci95_low", "ci95_high", "split_std")
TAIL_COLUMNS = ("machine", "seeds", "steps", "resolution", "test_protocol", "train_subset", "params_m", "setting")


AGAINST_COLUMNS = ("against", "diff", "diff_ci95_low", "diff_ci95_high", "significant", "paired_seeds", "paired_videos")


def reference_setting(measured: pd.DataFrame, row, against: str):
    """The setting of method ``against`` that ``row`` is compared with: the same protocol and
    data, on the same encoder where ``against`` ran on it (random's floor differs by encoder), and
    on the same machine where it ran there (its seeds pair with this machine's)."""
    same = measured[(measured["method"] == against) & (measured["protocol"] == row["protocol"])
                    & (measured["eval_data"] == row["eval_data"]) & (measured["pretrain_data"] == row["pretrain_data"])]
    for narrower in ("encoder", "machine"):
        on_it = same[same[narrower] == row[narrower]]
        same = on_it if len(on_it) else same
    return None if same.empty else same.iloc[0]


def against_reference(measured: pd.DataFrame, against: str) -> pd.DataFrame:
    """:data:`AGAINST_COLUMNS` for every measured setting: its paired-bootstrap difference from
    method ``against`` (:func:`benchmark.significance.paired_bootstrap`)."""
    from benchmark.significance import correctness, paired_bootstrap
    out = []
    for _, row in measured.iterrows():
        ref = reference_setting(measured, row, against)
        cell = {"against": against}
        if ref is not None and ref["setting"] != row["setting"]:
            a, r = correctness(row["runs"], row["protocol"]), correctness(ref["runs"], ref["protocol"])
            found = paired_bootstrap(a, r) if a is not None and r is not None else None
            cell.update(found or {})
        out.append(cell)
    return measured.assign(**pd.DataFrame(out, index=measured.index).reindex(columns=AGAINST_COLUMNS))


def tidy_table(runs: pd.DataFrame, paper: pd.DataFrame, against: Optional[str] = None) -> pd.DataFrame:
    """One row per measured setting and paper row it reproduces (a setting no paper row matches
    gets one row without paper columns), measured rows first, grouped by method and protocol;
    then every paper row no run reproduces, ``status`` ``not run`` (a method here could) or
    ``reference only`` (no method of the harness is that model). Numbers are numbers:
    ``mean``, ``std``, ``ci95_low|high``, ``split_std``, ``split_<k>``, ``paper_value`` and
    ``delta`` (mean - paper value); ``paper_row``, the row's place in ``results/paper``; ``runs`` (JSON only) holds each seed's run id and splits.
    With ``against``, :data:`AGAINST_COLUMNS`: each setting's difference from that method's."""
    runs_all = pd.concat([runs, ablation_rows(runs)], ignore_index=True) if not runs.empty else runs
    measured = aggregate(runs_all) if not runs_all.empty else pd.DataFrame()
    if against and not measured.empty:
        measured = against_reference(measured, against)
    paper = paper.rename(columns={"value": "paper_value"})
    rows, reproduced = [], set()
    if not measured.empty:
        measured = measured.sort_values(["method", "protocol", "eval_data", "mean"], ascending=[True, True, True, False],
                                        kind="stable")
        for _, m in measured.iterrows():
            hits = paper[(paper["method"] != "") & np.logical_and.reduce([paper[k] == m[k] for k in MATCH])]
            for i, h in (hits.iterrows() if len(hits) else [(None, None)]):
                row = {"status": "measured", **m.to_dict()}
                if h is not None:
                    reproduced.add(i)
                    row.update({k: h[k] for k in PAPER_COLUMNS}, paper_row=i, delta=m["mean"] - h["paper_value"])
                rows.append(row)
    for i, h in paper.iterrows():
        if i not in reproduced:
            rows.append({"status": "not run" if h["method"] else "reference only", "method": h["method"] or None,
                         **{k: h[k] for k in ("pretrain_data", "eval_data", "protocol", *PAPER_COLUMNS)}, "paper_row": i})
    df = pd.DataFrame(rows)
    splits = sorted(c for c in df.columns if c.startswith("split_") and c != "split_std")
    order = ["status", *MEASURED_COLUMNS, *splits, *PAPER_COLUMNS, "paper_row", "delta",
             *(AGAINST_COLUMNS if against else ()), *TAIL_COLUMNS, "runs"]
    return df.reindex(columns=order)


def one_decimal(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def measured_cell(r) -> str:
    """``49.5 ± 12.1 [19.4, 79.6]`` (mean ± std over seeds [95% interval]); one seed: the mean."""
    if r["n"] != r["n"]:
        return ""
    if r["n"] < 2:
        return f"{r['mean']:.1f}"
    return f"{r['mean']:.1f} ± {r['std']:.1f} [{r['ci95_low']:.1f}, {r['ci95_high']:.1f}]"


def difference_cell(r) -> str:
    """``+18.4 [9.1, 27.0]``, with ``not significant`` where the interval contains zero."""
    if r["method"] == r["against"]:
        return "reference"
    if r["diff"] != r["diff"]:
        return "no paired runs"
    verdict = "" if r["significant"] else " not significant"
    return f"{r['diff']:+.1f} [{r['diff_ci95_low']:+.1f}, {r['diff_ci95_high']:+.1f}]{verdict}"


def readable_tables(tidy: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """The tidy table for people: the measured settings first, then each paper table with its
    measured cells filled in."""
    tables = {}
    measured = tidy[tidy["status"] == "measured"]
    with_paper = set(tidy.loc[tidy["paper"].notna(), "method"].dropna())  # methods some paper row reports
    splits = [c for c in tidy.columns if c.startswith("split_") and c != "split_std"]
    if not measured.empty:
        tables["measured here"] = pd.DataFrame({
            "method": measured["label"], "encoder": measured["encoder"],
            "data": [f"{a} -> {b}" for a, b in zip(measured["pretrain_data"], measured["eval_data"])],
            "n": measured["n"].astype(int), "top-1 mean ± std [95% CI]": [measured_cell(r) for _, r in measured.iterrows()],
            "splits": [" / ".join(one_decimal(r[c]) for c in splits if r[c] == r[c]) for _, r in measured.iterrows()],
            "split std": [one_decimal(v) for v in measured["split_std"]],
            "paper": [f"{m} {v:.1f}" if isinstance(m, str) else "" if k in with_paper else "no paper numbers known"
                      for m, v, k in zip(measured["model"], measured["paper_value"], measured["method"])],
            "delta": [one_decimal(v) for v in measured["delta"]], "test": measured["test_protocol"]})
        if "against" in measured:
            ref = measured["against"].dropna().iloc[0]
            tables["measured here"].insert(5, f"vs {ref} [95% CI]", [difference_cell(r) for _, r in measured.iterrows()])
    in_paper_order = tidy[tidy["paper"].notna()].sort_values("paper_row", kind="stable")
    for (p, t), g in in_paper_order.groupby(["paper", "table"], sort=False):
        tables[f"{p} {t}"] = pd.DataFrame({
            "model": g["model"], "pretrain": g["pretrain_data"], "eval": g["eval_data"], "protocol": g["protocol"],
            "reported": g["paper_value"],
            "measured": [measured_cell(r) if r["status"] == "measured" else r["status"] for _, r in g.iterrows()],
            "source": g["source"]})
    return tables


def render(tidy: pd.DataFrame, fmt: str) -> str:
    if fmt == "json":
        records = tidy.astype(object).where(tidy.notna(), None).to_dict(orient="records")
        return json.dumps(records, indent=1, default=str) + "\n"
    if fmt == "csv":
        return tidy.drop(columns=["runs"]).to_csv(index=False)
    parts = []
    for name, df in readable_tables(tidy).items():
        if fmt == "latex":
            parts.append(f"% {name}\n" + tabulate(df.fillna(""), headers="keys", tablefmt="latex", showindex=False))
        else:
            parts.append(f"### {name}\n\n" + tabulate(df.fillna(""), headers="keys", tablefmt="github", showindex=False))
    return "\n\n".join(parts) + "\n"


def reproducing_command(result: Dict) -> str:
    """The command a run records, without where it wrote its folder."""
    words = (result.get("command") or "").split()
    return " ".join(w for w in words if not w.startswith("results_dir=")) or "not recorded"


def runs_table(results: List[Dict]) -> pd.DataFrame:
    from benchmark.host import host_line
    return pd.DataFrame([{
        "run": r["run_id"], "command": f"`{reproducing_command(r)}`", "version": r.get("version", ""),
        "pretraining s": r.get("pretrain", {}).get("seconds"), "machine": host_line(r.get("host"))}
        for r in results])


def render_page(tidy: pd.DataFrame, results: List[Dict], generator: str) -> str:
    """``docs/results.md``: the markdown tables, then every run they are computed from, each with
    the command that reproduces it and the machine it ran on."""
    head = ["# Results", "",
            f"Generated by `{generator}`; do not edit by hand. Top-1 in %, mean ± standard deviation over "
            "seeds [95% Student's t interval], each seed's value the mean over the splits; `split std`, "
            "how far the splits of one run disagree. A figure is comparable with figures from the same "
            "kind of CPU or GPU (the machine column below).", "", ""]
    runs = runs_table(results)
    tail = ["", "### runs", "", tabulate(runs, headers="keys", tablefmt="github", showindex=False) if len(runs)
            else "No runs found.", ""]
    return "\n".join(head) + render(tidy, "markdown") + "\n".join(tail)


def plot(tidy: pd.DataFrame, path: Path) -> None:
    """Measured means with their 95% intervals as error bars (none for a single seed), the paper's
    value beside each where one is matched; one bar pair per measured row, labelled by
    :func:`run_labels`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = tidy[tidy["status"] == "measured"]
    labels = [f"{lab} vs {model}" if isinstance(model, str) else lab for lab, model in zip(m["label"], m["model"])]
    means = m["mean"].to_numpy(dtype=float)
    low, high = (means - m["ci95_low"].to_numpy(dtype=float)), (m["ci95_high"].to_numpy(dtype=float) - means)
    err = np.nan_to_num(np.stack([low, high]))
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4.5))
    xs = np.arange(len(labels))
    ax.bar(xs - 0.2, means, 0.4, yerr=err, capsize=3, label="measured (95% CI over seeds)")
    ax.bar(xs + 0.2, np.nan_to_num(m["paper_value"].to_numpy(dtype=float)), 0.4, label="paper")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("top-1 (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def argument_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark compare", description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results/runs", help="folder searched for result.json (default results/runs)")
    ap.add_argument("--format", choices=FORMATS,
                    help="markdown (default), latex, or one tidy table with numeric columns: csv, json")
    ap.add_argument("--out", help="write the tables to this file instead of stdout; in markdown, a page: "
                                  "the tables, then each run with its command and machine (docs/results.md)")
    ap.add_argument("--plot", help="write a bar chart of measured (95%% CI) vs reported values (PNG); "
                                   "the tables are then printed only if --format or --out asks for them")
    ap.add_argument("--against", metavar="METHOD",
                    help="each setting's difference from METHOD's (same protocol, data and encoder), with a 95%% "
                         "interval from a paired bootstrap over test videos and seeds; 'not significant' where "
                         "it contains zero (needs the runs' predictions.json)")
    ap.add_argument("--paper-dir", default=str(PAPER_DIR), help=argparse.SUPPRESS)
    return ap


def main(argv: Optional[List[str]] = None) -> None:
    args = argument_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not Path(args.results).exists():
        print(f"error: results folder not found: {args.results}", file=sys.stderr)
        sys.exit(2)
    runs = load_runs(Path(args.results))
    if args.against and (runs.empty or args.against not in set(runs["method"])):
        known = ", ".join(sorted(set(runs["method"]))) if not runs.empty else "none"
        print(f"error: --against {args.against}: no run of that method in {args.results}; methods there: {known}",
              file=sys.stderr)
        sys.exit(2)
    tidy = tidy_table(runs, load_paper_rows(Path(args.paper_dir)), args.against)
    if args.out or args.format or not args.plot:
        fmt = args.format or "markdown"
        if args.out and fmt == "markdown":
            argv_used = sys.argv[1:] if argv is None else argv
            text = render_page(tidy, list(read_results(Path(args.results))),
                               " ".join(["python -m benchmark compare", *argv_used]))
        else:
            text = render(tidy, fmt)
        if args.out:
            from benchmark.checkpoint import atomic_write_bytes
            atomic_write_bytes(Path(args.out), lambda f: f.write(text.encode()))
            print(f"tables: {args.out}", file=sys.stderr)
        else:
            print(text, end="")
    if args.plot:
        plot(tidy, Path(args.plot))
        print(f"plot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
