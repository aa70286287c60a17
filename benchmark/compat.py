"""What lets pytorchvideo 0.1.5 and fvcore import quietly with current torch and torchvision.

pytorchvideo 0.1.5 (the latest release) imports ``torchvision.transforms.functional_tensor``,
which torchvision moved to ``torchvision.transforms._functional_tensor``. This module
registers the old name once; every PyTorchVideo import in the project imports this module
first (``benchmark/__init__.py`` does).

pytorchvideo's transforms (``torch.jit.script_method``) and fvcore's focal loss
(``torch.jit.script``) script functions when they are imported, and torch deprecates both
calls with a ``FutureWarning`` that every command would print. The project itself never
scripts anything, so exactly those two messages are silenced; every other warning stays.
"""
from __future__ import annotations

import importlib
import sys
import warnings

TORCH_JIT_DEPRECATION = r"`torch\.jit\.script(_method)?` is deprecated"


def install_functional_tensor_alias() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = importlib.import_module("torchvision.transforms._functional_tensor")


def silence_import_time_scripting() -> None:
    warnings.filterwarnings("ignore", message=TORCH_JIT_DEPRECATION, category=FutureWarning)


silence_import_time_scripting()
install_functional_tensor_alias()
