"""Command-line overrides checked before Hydra runs anything: every ``key=value`` (also
``+key=value``) must name a key of the composed config, and ``results_dir`` must be a folder the
run can write. Hydra would otherwise print several lines and exit 1 for a misspelt key, accept
``+trainer.stpes=3`` silently, or fail with a traceback while making the run folder."""
from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path
from typing import Iterable, List

from benchmark.errors import UserError

# Hydra's flags that take a value (the value is not an override)
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
                    "--config-dir", "-cd", "--experimental-rerun"}
MAX_SWEEP_JOBS_CHECKED = 64
_MISSING = object()


def override_args(argv: Iterable[str]) -> List[str]:
    """The overrides among Hydra's arguments (flags and their values left out)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in FLAGS_WITH_VALUE:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def is_group(key: str, config_dir: str) -> bool:
    """``method``, ``method@x`` or ``hydra/launcher``: a config group rather than a key."""
    name = key.split("@")[0]
    return name.startswith("hydra") or (Path(config_dir) / name).is_dir()


def dotted_keys(node, prefix: str = "") -> List[str]:
    from omegaconf import DictConfig
    keys = []
    for k in node.keys() if isinstance(node, DictConfig) else ():
        full = f"{prefix}{k}"
        keys.append(full)
        keys += dotted_keys(node._get_node(k), full + ".")
    return keys


def parent_of(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def unknown_key_message(cfg, key: str) -> str:
    """One line: the key, and the nearest key beside it (else anywhere), else the valid keys beside it."""
    keys = dotted_keys(cfg)
    parent = parent_of(key)
    names = sorted(k.rsplit(".", 1)[-1] for k in keys if parent_of(k) == parent)
    near = difflib.get_close_matches(key.rsplit(".", 1)[-1], names, n=1, cutoff=0.6)
    if near:
        return f"unknown key {key}; did you mean {parent + '.' if parent else ''}{near[0]}?"
    near = difflib.get_close_matches(key, [k for k in keys if not key.startswith(k + ".")], n=1, cutoff=0.8)
    if near:
        return f"unknown key {key}; did you mean {near[0]}?"
    return f"unknown key {key}; valid keys{f' under {parent}' if parent else ''}: {', '.join(names)}"


def first_lines(e: Exception) -> str:
    """Hydra's message without its traceback-like tail: its first two lines, on one."""
    return "; ".join(line.strip() for line in str(e).splitlines()[:2] if line.strip())


def sweep_jobs(parsed) -> List[List[str]]:
    """The jobs a ``-m`` sweep of the ``parsed`` overrides expands to (Hydra's basic sweeper),
    each a list of overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    return jobs[:MAX_SWEEP_JOBS_CHECKED]


def check_overrides(config_name: str, config_dir: str, argv: List[str]):
    """Raise :class:`UserError` naming the first override that is not a key of the config (and
    the nearest key). Returns the composed config of each job (with every override applied)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    overrides = override_args(argv)
    parser = OverridesParser.create()
    try:
        all_parsed = parser.parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"bad override: {first_lines(e)}")
    configs = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        for job in sweep_jobs(all_parsed):
            parsed = parser.parse_overrides(job)
            groups = [o.input_line for o in parsed if is_group(o.key_or_group, config_dir)
                      and not o.key_or_group.startswith("hydra")]
            base = compose(config_name, overrides=groups)
            for o in parsed:
                if is_group(o.key_or_group, config_dir) or o.is_delete():
                    continue
                if OmegaConf.select(base, o.key_or_group, default=_MISSING,
                                    throw_on_resolution_failure=False) is _MISSING:
                    raise UserError(unknown_key_message(base, o.key_or_group))
            try:
                configs.append(compose(config_name, overrides=[o.input_line for o in parsed
                                                               if not o.key_or_group.startswith("hydra")]))
            except HydraException as e:
                raise UserError(f"bad override: {first_lines(e)}")
    GlobalHydra.instance().clear()
    return configs


def check_writable_folder(path: str, key: str) -> None:
    """``path`` is (or can be made) a folder this process can write files in."""
    folder = Path(path)
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"bad {key} {path}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"bad {key} {path}: cannot write there ({e.strerror})")
