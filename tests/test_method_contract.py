"""The method contract (methods/base.py): a method is one class that declares what the harness
needs, and nothing outside methods/ knows a method by its name.

The method below lives in this test module only. Imported as a plugin (``VDIM_BENCH_PLUGINS``), it
registers its class and stores its config; no other file is edited, yet ``method=test_agreement``
pretrains through ``python -m benchmark run`` and is evaluated like a built-in method.
"""
import dataclasses
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from benchmark.config import AugmentConfig, RhoClipConfig
from benchmark.data.samplers import RhoClips
from methods.base import Method, MethodConfig, register_method
from methods.losses import nt_xent

HERE = Path(__file__).resolve().parent


@dataclass
class AgreementConfig(MethodConfig):
    clips: RhoClipConfig = dataclasses.field(default_factory=RhoClipConfig)
    temperature: float = MISSING


@register_method
class ClipAgreement(Method):
    """Two clips of a video agree in a linear projection of the global feature (NT-Xent)."""
    name = "test_agreement"
    Config = AgreementConfig

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        return RhoClips.of(cfg.clips)

    def __init__(self, encoder, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        self.projection = torch.nn.Linear(encoder.global_dim, 16)

    def forward(self, views, labels=None):
        z = [self.projection(self.encoder(v)["global"]).float() for v in views]
        return {"loss": nt_xent(z[0], z[1], self.cfg.temperature)}


ConfigStore.instance().store(group="method", name="test_agreement", node=AgreementConfig(
    name="test_agreement", temperature=0.2,
    clips=RhoClipConfig(rho=2, frames="${encoder.frames}", stride="${dataset.frame_stride}", max_distance=None),
    augment=AugmentConfig(crop_size="${encoder.size}", crop_area=[0.3, 1.0], crop_ratio=[0.75, 1.3333], color="none",
                          jitter_p=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, jitter_impl="affine",
                          grayscale_p=0.0, blur_p=0.0, blur_sigma=[0.1, 2.0], flip_p=0.5, rotation_degrees=0.0)))


def plugin_cli(args, tmp_path):
    from test_cli import cli
    env = {"VDIM_BENCH_PLUGINS": "test_method_contract",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return cli(args, tmp_path, env=env)


@pytest.mark.slow
def test_a_method_defined_in_this_module_pretrains_and_is_evaluated_through_the_cli(tmp_path, tiny_dataset):
    from test_cli import FAST
    rest = [a for a in FAST if not a.startswith("method.")]
    p = plugin_cli(["run", "method=test_agreement", f"dataset.root={tiny_dataset}", "trainer.steps=2",
                    f"results_dir={tmp_path / 'r'}", *rest], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    assert result["method"] == "test_agreement" and result["pretrain"]["steps"] == 2
    assert result["pretrain"]["clips_seen"] == 2 * 2 * 2  # steps x batch x the sampler's clips
    assert math.isfinite(result["pretrain"]["final_loss"])
    assert [e["protocol"] for e in result["evals"]] == ["knn"] and 0 <= result["evals"][0]["mean"] <= 100
    # a misspelt key of its config is refused before any work, as for a built-in method
    p = plugin_cli(["run", "method=test_agreement", "method.temprature=0.5", f"results_dir={tmp_path / 's'}"], tmp_path)
    assert p.returncode == 2 and "did you mean method.temperature?" in p.stderr.strip().splitlines()[-1]


def test_the_plugin_config_shows_only_its_own_keys(tmp_path):
    p = plugin_cli(["run", "method=test_agreement", "--cfg", "job", "--package", "method"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    shown = OmegaConf.create(p.stdout.split("\n", 1)[1] if p.stdout.startswith("# @package") else p.stdout)
    assert set(shown.keys()) == {f.name for f in dataclasses.fields(AgreementConfig)}


@pytest.mark.parametrize("name", ["vdim", "rho_simclr", "rho_moco", "rho_byol", "rho_swav", "dpc", "supervised", "random"])
def test_each_method_config_holds_its_schema_keys_and_every_value_comes_from_yaml(name):
    from conftest import compose_run
    from methods import METHODS
    method = compose_run([f"method={name}"]).method
    schema = METHODS[name].Config
    assert set(method.keys()) == {f.name for f in dataclasses.fields(schema)}
    assert OmegaConf.missing_keys(method) == set(), "a key with no value in configs/method"


def test_rho_methods_have_only_the_keys_they_read():
    from methods import METHODS
    keys = {n: {f.name for f in dataclasses.fields(METHODS[n].Config)} for n in ("rho_simclr", "rho_moco", "rho_byol",
                                                                                "rho_swav")}
    assert not keys["rho_simclr"] & {"queue_size", "momentum", "prototypes", "sinkhorn_eps", "predictor_hidden_dim"}
    assert "temperature" not in keys["rho_byol"] and "pairing" not in keys["rho_swav"]
    assert {"queue_size", "momentum"} <= keys["rho_moco"] and {"prototypes", "sinkhorn_eps"} <= keys["rho_swav"]


def test_no_method_name_outside_methods():
    """Run orchestration, trainer, data pipeline and evaluation never test a method's name."""
    import re

    from evaluation.finetune import PRESETS
    from methods import METHODS
    root = HERE.parent
    # "vdim" also names an encoder and a preset; a fine-tune preset (vdim, rho, dpc: a paper's
    # fine-tuning protocol) is chosen by eval.finetune.preset, never by the pretrained method
    names = [n for n in METHODS if n not in ("test_agreement", "vdim", *PRESETS)]
    for folder in ("benchmark", "evaluation", "encoders"):
        for path in (root / folder).rglob("*.py"):
            if "perf" in path.parts:
                continue  # the performance suite times named methods on purpose
            text = path.read_text()
            where = path.relative_to(root)
            for n in names:
                assert f'"{n}"' not in text and f"'{n}'" not in text, f"{where} names method {n}"
            assert not re.search(r"method\.(name|sampler)\s*(==|!=|in\b)", text), f"{where} tests a method's name"


def test_a_plugin_that_cannot_be_imported_is_named_in_one_line(tmp_path):
    from test_cli import cli
    p = cli(["run", "trainer.steps=1"], tmp_path, env={"VDIM_BENCH_PLUGINS": "no_such_plugin_module"})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: VDIM_BENCH_PLUGINS: cannot import plugin 'no_such_plugin_module' (No module named 'no_such_plugin_module')"]
