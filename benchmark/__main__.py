"""``python -m benchmark <subcommand> [hydra overrides]`` (also installed as ``vdim-bench``).

Hydra has no subcommands, so this dispatcher takes the first argument as the subcommand
and hands the rest of ``sys.argv`` to that subcommand's ``@hydra.main``: overrides, ``-m``,
``--cfg job``, launchers and output folders all keep working. ``compare`` needs no Hydra.
"""
from __future__ import annotations

import importlib
import os
import sys

SUBCOMMANDS = {
    "run": ("benchmark.run", "pretrain a method, evaluate it, write results/runs/<run-id>/result.json"),
    "compare": ("benchmark.compare", "tabulate every run's result.json against the papers' tables"),
    "info": ("benchmark.info", "encoder/method summary: parameters, GFLOPs per clip, feature-map shapes"),
    "data": ("benchmark.data.cli", "write a dataset to disk: `data synthetic --out DIR`"),
    "perf": ("benchmark.perf", "performance suite: data pipeline, train step, efficiency, eval, scaling"),
    "perf-report": ("benchmark.perf.page", "the performance page (docs/performance.md) from perf.json files"),
}
INFO_FLAGS = {"-h", "--help", "--hydra-help", "-i", "--info", "--shell-completion", "-sc"}
HYDRA_CONFIGS = {"run": "run", "info": "info", "perf": "perf"}  # subcommand -> its root config
CONFIG_GROUPS = ("method", "encoder", "dataset", "eval", "trainer", "launcher", "experiment")


def usage() -> str:
    lines = ["usage: python -m benchmark <subcommand> [overrides] [--debug]  |  python -m benchmark --version", "",
             "subcommands:"]
    lines += [f"  {name:<12} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines += ["", "Each subcommand has --help. Hydra overrides: key=value, group=option, -m for sweeps.",
              "--debug (or HYDRA_FULL_ERROR=1) shows full tracebacks."]
    return "\n".join(lines)


def check_group_choices(args: list[str]) -> str | None:
    """Name an unknown config-group option and the valid ones, in one line, before Hydra does in ten."""
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~").split("@")[0]
        if key.startswith("override "):
            key = key[len("override "):]
        if key not in CONFIG_GROUPS or value in ("", "null"):
            continue
        from benchmark.cli_common import group_choices
        choices = group_choices(key)
        for v in value.split(","):
            if v and v not in choices:
                return f"unknown {key} '{v}'; valid choices: {', '.join(choices)}"
    return None


def with_method_encoder(args: list[str]) -> list[str]:
    """``method=<name>`` alone (one method, no ``encoder=`` and no ``experiment=``) runs on that
    method's ``default_encoder`` where it declares one (:class:`methods.base.Method`), as
    ``method=dpc`` runs on DPC's 2D-3D ResNet-18. A sweep over several methods keeps the run's
    default encoder: name the encoder there."""
    keys = {a.split("=", 1)[0].lstrip("+~"): a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    name = keys.get("method")
    if not name or "," in name or "encoder" in keys or "experiment" in keys:
        return args
    from methods import METHODS
    default = getattr(METHODS.get(name), "default_encoder", None)
    if not default:
        return args
    at = next(i for i, a in enumerate(args) if a.lstrip("+~").startswith("method="))
    return [*args[:at + 1], f"encoder={default}", *args[at + 1:]]  # beside it: Hydra takes overrides before its flags


def check_before_work(sub: str, args: list[str]) -> str | None:
    """Every override names a key of the config, and a run's ``results_dir`` can be written,
    before Hydra makes a run folder or any work starts; the problem in one line, else None."""
    from benchmark.cli_common import CONFIG_DIR, debug_enabled
    from benchmark.errors import UserError
    from benchmark.overrides import check_overrides, check_writable_folder
    try:
        for cfg in check_overrides(HYDRA_CONFIGS[sub], CONFIG_DIR, args):
            if sub == "run":
                check_writable_folder(cfg.results_dir, "results_dir")
    except UserError as e:
        if debug_enabled():
            raise
        return str(e)
    return None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ["HYDRA_FULL_ERROR"] = "1"
    if argv[:1] == ["--version"]:
        from benchmark import __version__
        print(f"vdim-bench {__version__}")
        sys.exit(0)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    sub, rest = argv[0], argv[1:]
    if sub not in SUBCOMMANDS:
        print(f"error: unknown subcommand '{sub}'; valid choices: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        sys.exit(2)
    if sub in HYDRA_CONFIGS:
        from benchmark.errors import UserError
        try:
            import benchmark.compose  # noqa: F401  (loads VDIM_BENCH_PLUGINS; a missing one fails in one line)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    problem = check_group_choices(rest)
    if sub in HYDRA_CONFIGS and not problem:
        rest = with_method_encoder(rest)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    if sub in HYDRA_CONFIGS and not set(rest) & INFO_FLAGS:
        problem = check_before_work(sub, rest)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)
    module = importlib.import_module(SUBCOMMANDS[sub][0])
    sys.argv = [f"benchmark {sub}"] + rest
    module.main()


if __name__ == "__main__":
    main()
