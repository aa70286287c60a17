import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TINY = {"version": 4, "classes": 4, "groups": 10, "clips_per_group": 1, "min_frames": 12, "max_frames": 40,
        "size": 32, "fps": 8, "seed": 3}
TINY_OVERRIDES = ["dataset.classes=4", "dataset.clips_per_group=1", "dataset.min_frames=12", "dataset.max_frames=40",
                  "dataset.size=32", "dataset.fps=8", "dataset.seed=3"]

# every key of an AugmentConfig at the rho-methods' values (configs/method/_rho_common.yaml)
AUGMENT = dict(crop_size=32, crop_area=[0.2, 0.766], crop_ratio=[0.75, 1.3333], color="jitter", jitter_p=0.8,
               brightness=0.6, contrast=0.6, saturation=0.6, hue=0.15, jitter_impl="affine", grayscale_p=0.2,
               blur_p=0.0, blur_sigma=[0.1, 2.0], flip_p=0.5, rotation_degrees=0.0)


def train_on_fixed_batch(model, views, steps: int, lr: float = 1e-3):
    """Adam on one batch for ``steps`` steps: ``(first loss, last forward's outputs)``."""
    import torch
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = model(views)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["loss"].item()
    return first, out


def augment_config(**kw):
    from benchmark.config import AugmentConfig
    return AugmentConfig(**{**AUGMENT, **kw})


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    os.environ["VDIM_BENCH_CACHE"] = str(d)
    return d


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from benchmark.data.synthetic import write_synthetic
    return write_synthetic(tmp_path_factory.mktemp("data") / "tiny", TINY, progress=False)


def compose_run(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from benchmark.cli_common import CONFIG_DIR
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("run", overrides=overrides)
