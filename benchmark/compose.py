"""The config tree as Hydra composes it, for code that needs a group's defaults outside a run
(``methods.build_method`` by name, an evaluation dataset other than the pretraining one).

Importing it registers every schema (:mod:`benchmark.config`) and loads the plugins named in
``VDIM_BENCH_PLUGINS`` (:mod:`benchmark.plugins`), so a plugin's methods and configs are choices
like the built-in ones.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.config import register_schemas
from benchmark.plugins import load_plugins

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
load_plugins()
register_schemas()


def group_choices(group: str) -> list:
    """The options of a config group: ``configs/<group>/*.yaml`` without the ``_``-prefixed
    partials, and any option a plugin stored in Hydra's ConfigStore under that group."""
    from hydra.core.config_store import ConfigStore
    names = {p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_")}
    try:
        names |= {n.rsplit(".yaml", 1)[0] for n in ConfigStore.instance().list(group)}
    except OSError:  # ConfigStore raises it for a group nobody stored into
        pass
    return sorted(names)


def group_config(group: str, name: str):
    """``<group>/<name>`` as the run config composes it: its schema from its defaults list,
    every default filled in. Inside a running Hydra app (``run``, ``perf``) it reuses that app's
    initialised config search path, which is this same folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    if GlobalHydra.instance().is_initialized():
        return compose("run", overrides=[f"{group}={name}"])[group]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("run", overrides=[f"{group}={name}"])[group]
