"""Every ``python -m benchmark ...`` command in README.md parses: the subcommand exists, Hydra
composes the config with its overrides (each job of a sweep), and the other subcommands accept
its flags. Placeholders (``method=M``, ``seed=K``, shell variables) take a valid value first."""
import re
import shlex

import pytest

from conftest import ROOT

PLACEHOLDERS = {"M": "vdim", "K": "0", "$m": "vdim", "$s": "0", "...": "vdim", "DIR": "/tmp/x"}


def readme_commands():
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"python -m benchmark ([^`|\n]*)", text)
    out = []
    for line in dict.fromkeys(f.split("#")[0].split(";")[0].strip() for f in found):
        if "[" in line and ("[--" in line or "[overrides]" in line):  # usage notation, not a command
            continue
        out.append(line)
    return out


def substituted(args):
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq:
            value = ",".join(PLACEHOLDERS.get(v, v) for v in value.split(","))
            out.append(f"{key}={value}")
        else:
            out.append(PLACEHOLDERS.get(a, a))
    return out


def test_readme_has_commands_for_every_subcommand():
    subs = {c.split()[0] for c in readme_commands() if c} - {"--version"}
    assert {"run", "compare", "info", "perf", "perf-report", "data"} <= subs


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    from benchmark.__main__ import HYDRA_CONFIGS, SUBCOMMANDS, check_group_choices, with_method_encoder
    from benchmark.cli_common import CONFIG_DIR
    from benchmark.overrides import check_overrides
    args = substituted(shlex.split(command))
    sub, rest = (args[0], args[1:]) if args else ("run", [])
    if sub == "--version":
        return
    assert sub in SUBCOMMANDS, command
    if sub in HYDRA_CONFIGS:
        assert check_group_choices(rest) is None, command
        rest = [a for a in with_method_encoder(rest) if a != "-m"]
        if "--cfg" in rest:
            rest = rest[:rest.index("--cfg")]
        assert check_overrides(HYDRA_CONFIGS[sub], CONFIG_DIR, rest), command
    elif sub in ("compare", "perf-report"):  # argparse subcommands
        import importlib
        importlib.import_module(SUBCOMMANDS[sub][0]).argument_parser().parse_args(rest)
    else:  # data: Hydra's "data" config once its positional words are translated
        from benchmark.data.cli import translate_argv
        assert check_overrides("data", CONFIG_DIR, translate_argv(rest)), command
