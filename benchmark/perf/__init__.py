"""``python -m benchmark perf``: the performance suite, measured in one process, one run.

Sections (``sections=[...]``): ``data`` (clips/s of decode + views + augmentation, ours
vs PyTorchVideo's ``Ucf101`` with stock transforms on the same files), ``train`` (clips/s
of forward + backward + step per method, fp32 and bf16, vs PyTorchVideo's reference
``SimCLR`` and ``BYOL`` on the same backbone, all steps timed in turns so that each meets the
same machine state), ``efficiency`` (achieved FLOP/s as a share of the measured matmul peak,
beside two ceilings: the convolutions alone, and with the batch norms' least memory traffic),
``eval`` (linear probe on cached features vs recomputing them every epoch), ``scaling`` (time
of the VDIM loss as batch and locations grow), ``sharing`` (the default run's step alone and
beside a second default run on the same CPU), ``dpc`` (DPC's step against the official code's, computed
as that code does, :mod:`benchmark.perf.dpc`). "Ours" is the step as the trainer runs it
(``trainer.channels_last``, ``trainer.compile``); the references run as PyTorchVideo does.
Levers are rows beside what they change: decoding once per sample and colour jitter as one
affine map per clip (data), channels-last, ``torch.compile``, the thread count and the host
memory allocator, each flipped from the trainer's setting (``levers=[...]``, train;
``torch.compile`` and the allocator also on the two steps compared with PyTorchVideo's,
``torch.compile`` with its one-time cost), bf16 autocast (every train row).
Writes ``perf.json`` and ``perf.md`` under ``results_dir/<time>_<device>/``. One module per section
(``data``, ``train``, ``efficiency``, ``eval``, ``scaling``, ``sharing``, ``dpc``); how they time: :mod:`benchmark.perf.timing`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import hydra
import torch
from tabulate import tabulate

from benchmark.cli_common import CONFIG_DIR, user_errors_exit
from benchmark.perf.data import data_row, section_data
from benchmark.perf.dpc import section_dpc
from benchmark.perf.efficiency import section_efficiency
from benchmark.perf.eval import section_eval
from benchmark.perf.scaling import section_scaling
from benchmark.perf.sharing import section_sharing
from benchmark.perf.train import section_train


def bottleneck_rows(rows, augment_on: str):
    """Is the data pipeline the bottleneck of the default run? Its best clips/s with the trainer's
    ``augment_on`` over the VDIM training step's clips/s in bf16 (above 1: the step waits for
    nothing; with ``device``, the step also shares its device with the augmentation)."""
    data = [r["clips_per_s"] for r in rows if r["section"] == "data" and r["what"] == data_row("vdim", augment_on)]
    step = [r["clips_per_s"] for r in rows if r["section"] == "train" and r["what"] == "ours vdim" and r["precision"] == "bf16" and "clips_per_s" in r]
    if not (data and step):
        return []
    return [{"section": "summary", "what": "data clips/s over VDIM bf16 step clips/s (>1: data is not the bottleneck)",
             "ratio": max(data) / step[0], "met": max(data) / step[0] > 1}]


LEVERS = ("channels_last", "compile", "one_thread", "allocator")
SECTIONS = {"data": section_data, "train": section_train, "efficiency": section_efficiency, "eval": section_eval,
            "scaling": section_scaling, "sharing": section_sharing, "dpc": section_dpc}


def markdown_tables(rows) -> str:
    """One table per section, with only the columns that section fills."""
    parts = []
    for section in dict.fromkeys(r["section"] for r in rows):
        sel = [{k: v for k, v in r.items() if k != "section"} for r in rows if r["section"] == section]
        cols = list(dict.fromkeys(k for r in sel for k in r))
        parts.append(f"### {section}\n\n" + tabulate([[r.get(c, "") for c in cols] for r in sel], headers=cols,
                                                       tablefmt="github", floatfmt=".3g") + "\n")
    return "\n".join(parts)


def perf_command() -> str:
    """The command line that reproduces this run, as the performance page prints it."""
    from hydra.core.hydra_config import HydraConfig
    return " ".join(["python -m benchmark perf", *HydraConfig.get().overrides.task])


@hydra.main(config_path=CONFIG_DIR, config_name="perf", version_base="1.3")
@user_errors_exit
def main(cfg) -> None:
    from benchmark.allocator import use_allocator
    from benchmark.distributed import resolve_device
    from benchmark.errors import unknown_choice
    for kind, chosen, valid in (("perf section", cfg.sections, SECTIONS), ("perf lever", cfg.levers, LEVERS)):
        for name in chosen:
            if name not in valid:
                raise unknown_choice(kind, name, list(valid))
    allocator = use_allocator(cfg.trainer.allocator)
    device = resolve_device(cfg.trainer.device)
    rows = []
    for name in cfg.sections:
        print(f"perf: {name} ...", flush=True)
        SECTIONS[name](cfg, rows, device)
    rows += bottleneck_rows(rows, cfg.trainer.augment_on)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out = Path(cfg.results_dir) / f"{stamp}_{device.type}"
    out.mkdir(parents=True, exist_ok=True)
    from benchmark.host import describe_host
    report = {"date": stamp, "device": dev, "torch": torch.__version__, "allocator": allocator,
              "host": describe_host(device), "command": perf_command(), "rows": rows}
    from benchmark.checkpoint import atomic_write_bytes, atomic_write_json
    atomic_write_json(out / "perf.json", report)
    md = f"# perf {stamp} on {dev}, torch {torch.__version__}, allocator {allocator}\n\n" + markdown_tables(rows)
    atomic_write_bytes(out / "perf.md", lambda f: f.write(md.encode()))
    print(md)
    print(f"wrote {out / 'perf.json'}")
