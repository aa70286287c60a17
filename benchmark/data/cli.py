"""``python -m benchmark data synthetic --out DIR``: write the synthetic dataset to DIR."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra

from benchmark.cli_common import CONFIG_DIR, user_errors_exit
from benchmark.errors import UserError


def translate_argv(argv):
    """``synthetic --out DIR`` -> ``dataset=synthetic out=DIR`` (Hydra has no positionals)."""
    out = []
    it = iter(argv)
    for a in it:
        if a == "synthetic":
            out.append("dataset=synthetic")
        elif a == "--out":
            out.append(f"out={next(it, '')}")
        elif a.startswith("--out="):
            out.append("out=" + a.split("=", 1)[1])
        else:
            out.append(a)
    return out


@hydra.main(config_path=CONFIG_DIR, config_name="data", version_base="1.3")
@user_errors_exit
def _main(cfg) -> None:
    from benchmark.data.synthetic import spec_of, write_synthetic
    if cfg.dataset.name != "synthetic":
        raise UserError(f"only the synthetic dataset can be written here, not '{cfg.dataset.name}'; valid choices: synthetic")
    if not cfg.out:
        raise UserError("missing --out DIR (where to write the synthetic dataset)")
    root = write_synthetic(Path(cfg.out), spec_of(cfg.dataset))
    n = sum(1 for _ in (root / "UCF-101").glob("*/*.avi"))
    print(f"wrote {n} videos in the UCF-101 and HMDB-51 layouts to {root}")


def main() -> None:
    sys.argv = sys.argv[:1] + translate_argv(sys.argv[1:])
    _main()
