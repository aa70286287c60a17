"""``python -m benchmark compare``: every run's result.json side by side with the papers' tables.

Paper rows (``results/paper/*.csv``) are matched to runs with the same method key,
pretraining data, evaluation data and protocol. Several seeds of one setting are
aggregated (mean over seeds of the split means; std over all split values). Table 2's
"avg ablate" rows are computed from a ``vdim_ablation`` sweep the way the paper computes
them: the mean over the ablation runs that share colour jitter (and, for the second
row, downsampling and temporal difference). Runs on data no paper reports (the
synthetic set) get a table of their own, beside ``random`` and ``supervised``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd
from tabulate import tabulate

PAPER_DIR = Path(__file__).resolve().parent.parent / "results" / "paper"
FORMATS = ("markdown", "csv", "latex", "json")


def load_paper_rows(paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype={"method": str}) for p in sorted(Path(paper_dir).glob("*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df["method"] = df["method"].fillna("")
    return df


def method_key(result: Dict) -> str:
    """``rho_moco`` for rho = 2, ``rho_moco@4`` for rho = 4: the key paper rows use."""
    rho = (result.get("config", {}).get("method", {}).get("clips") or {}).get("rho")
    name = result["method"]
    return f"{name}@{rho}" if name.startswith("rho_") and rho and rho != 2 else name


VOLATILE = {"": ("seed", "run_id", "results_dir"), "trainer": ("progress", "num_workers", "threads", "resume", "device",
                                                                "log_every", "checkpoint_every"),
            "eval": ("cache_dir", "feature_batch_size")}


def setting_of(result: Dict) -> str:
    """What makes runs the same setting: the resolved config without the seed and the keys
    that do not change the numbers (paths, workers, logging), plus the data version."""
    cfg = json.loads(json.dumps(result.get("config", {})))
    for section, keys in VOLATILE.items():
        node = cfg if not section else cfg.get(section, {})
        for k in keys:
            node.pop(k, None)
    cfg["data_version"] = result.get("pretrain", {}).get("data_version")
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def load_runs(results_dir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(Path(results_dir).glob("**/result.json")):
        if (path.parent / "FAILED").exists():  # benchmark.run.FAILED_MARKER: a run that did not finish
            continue
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: unreadable {path}: {e}", file=sys.stderr)
            continue
        m = r.get("config", {}).get("method", {})
        for e in r.get("evals", []):
            rows.append({
                "run_id": r["run_id"], "setting": setting_of(r), "method": method_key(r), "encoder": r["encoder"], "seed": r.get("config", {}).get("seed"),
                "experiment": r.get("experiment"), "pretrain_data": r["pretrain"]["dataset"],
                "eval_data": e["dataset"], "protocol": e["protocol"], "mean": e["mean"],
                "splits": e["splits"], "params_m": r.get("params_m"), "gflops": r.get("gflops_per_clip"),
                "steps": r["pretrain"]["steps"], "resolution": f"{r.get('input', {}).get('frames')}x{r.get('input', {}).get('size')}",
                "test_protocol": e.get("test_protocol", ""), "color": (m.get("augment") or {}).get("color"),
                "downsample": max((m.get("views") or {}).get("downsample") or [1]),
                "temporal_difference": m.get("temporal_difference"),
            })
    return pd.DataFrame(rows)


def aggregate(runs: pd.DataFrame, keys=("method", "encoder", "pretrain_data", "eval_data", "protocol", "setting")) -> pd.DataFrame:
    """One row per setting (runs that differ only in the seed): mean over seeds, std over
    every split value, per-split means."""
    out = []
    for key, g in runs.groupby(list(keys), dropna=False):
        values = [v for s in g["splits"] for v in s.values() if v is not None]
        per_split: Dict[str, List[float]] = {}
        for s in g["splits"]:
            for k, v in s.items():
                if v is not None:
                    per_split.setdefault(k, []).append(v)
        mean = float(g["mean"].mean())
        std = math.sqrt(sum((v - sum(values) / len(values)) ** 2 for v in values) / len(values)) if values else float("nan")
        out.append({**dict(zip(keys, key)), "measured": mean, "std": std, "seeds": g["seed"].nunique(),
                    "per_split": " / ".join(f"{sum(v) / len(v):.1f}" for _, v in sorted(per_split.items())),
                    "params_m": g["params_m"].iloc[0], "steps": int(g["steps"].iloc[0]),
                    "resolution": g["resolution"].iloc[0], "test_protocol": g["test_protocol"].iloc[0]})
    return pd.DataFrame(out)


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


def build_tables(runs: pd.DataFrame, paper: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    runs_all = pd.concat([runs, ablation_rows(runs)], ignore_index=True) if not runs.empty else runs
    measured = aggregate(runs_all) if not runs_all.empty else pd.DataFrame()
    tables: Dict[str, pd.DataFrame] = {}
    matched = set()
    for (p, t), rows in paper.groupby(["paper", "table"], sort=False):
        out = []
        for _, row in rows.iterrows():
            hit = pd.DataFrame()
            if row["method"] and not measured.empty:
                hit = measured[(measured["method"] == row["method"]) & (measured["pretrain_data"] == row["pretrain_data"])
                               & (measured["eval_data"] == row["eval_data"]) & (measured["protocol"] == row["protocol"])]
            base = {"model": row["model"], "pretrain": row["pretrain_data"], "eval": row["eval_data"],
                    "protocol": row["protocol"], "reported": row["value"],
                    "params reported (M)": row["params_m"], "source": row["source"]}
            if hit.empty:
                out.append({**base, "measured": "reference only" if not row["method"] else "not run"})
            for _, h in hit.iterrows():
                matched.add((h["method"], h["pretrain_data"], h["eval_data"], h["protocol"]))
                out.append({**base, "encoder": h["encoder"], "measured": f"{h['measured']:.1f} ± {h['std']:.1f}",
                            "splits": h["per_split"], "diff": round(h["measured"] - row["value"], 1),
                            "params measured (M)": h["params_m"], "seeds": h["seeds"],
                            "test": f"{h['test_protocol']}, {h['steps']} steps, {h['resolution']}"})
        tables[f"{p} {t}"] = pd.DataFrame(out)
    if not measured.empty:
        rest = measured[[(m, a, b, c) not in matched for m, a, b, c in
                         zip(measured["method"], measured["pretrain_data"], measured["eval_data"], measured["protocol"])]]
        for data, g in rest.groupby("eval_data"):
            g = g.sort_values(["protocol", "measured"], ascending=[True, False])
            tables[f"measured on {data} (no paper reports this data)"] = pd.DataFrame({
                "method": g["method"], "encoder": g["encoder"], "protocol": g["protocol"],
                "measured": [f"{m:.1f} ± {s:.1f}" for m, s in zip(g["measured"], g["std"])],
                "splits": g["per_split"], "seeds": g["seeds"], "params (M)": g["params_m"],
                "test": [f"{a}, {b} steps, {c}" for a, b, c in zip(g["test_protocol"], g["steps"], g["resolution"])]})
    return tables


def render(tables: Dict[str, pd.DataFrame], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({k: v.to_dict(orient="records") for k, v in tables.items()}, indent=1, default=str)
    parts = []
    for name, df in tables.items():
        if fmt == "csv":
            parts.append(df.assign(table=name).to_csv(index=False))
        elif fmt == "latex":
            parts.append(f"% {name}\n" + tabulate(df.fillna(""), headers="keys", tablefmt="latex", showindex=False))
        else:
            parts.append(f"### {name}\n\n" + tabulate(df.fillna(""), headers="keys", tablefmt="github", showindex=False))
    return "\n\n".join(parts) + "\n"


def plot(tables: Dict[str, pd.DataFrame], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels, reported, measured = [], [], []
    for name, df in tables.items():
        for _, r in df.iterrows():
            m = r.get("measured")
            if isinstance(m, str) and "±" in m:
                labels.append(f"{r.get('model', r.get('method'))} ({r.get('protocol')})"[:40])
                reported.append(r.get("reported", float("nan")))
                measured.append(float(m.split("±")[0]))
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.8), 4))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], measured, 0.4, label="measured")
    ax.bar([x + 0.2 for x in xs], [r if r == r else 0 for r in reported], 0.4, label="reported")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmark compare", description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results/runs", help="folder searched for result.json (default results/runs)")
    ap.add_argument("--format", default="markdown", choices=FORMATS)
    ap.add_argument("--out", help="write the tables to this file instead of stdout")
    ap.add_argument("--plot", help="write a bar chart of measured vs reported values (PNG)")
    ap.add_argument("--paper-dir", default=str(PAPER_DIR), help=argparse.SUPPRESS)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if not Path(args.results).exists():
        print(f"error: results folder not found: {args.results}", file=sys.stderr)
        sys.exit(2)
    tables = build_tables(load_runs(Path(args.results)), load_paper_rows(Path(args.paper_dir)))
    text = render(tables, args.format)
    if args.out:
        from benchmark.checkpoint import atomic_write_bytes
        atomic_write_bytes(Path(args.out), lambda f: f.write(text.encode()))
    else:
        print(text)
    if args.plot:
        plot(tables, Path(args.plot))


if __name__ == "__main__":
    main()
