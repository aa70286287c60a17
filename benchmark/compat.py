"""Compatibility alias that lets pytorchvideo 0.1.5 import with current torchvision.

pytorchvideo 0.1.5 (the latest release) imports ``torchvision.transforms.functional_tensor``,
which torchvision moved to ``torchvision.transforms._functional_tensor``. This module
registers the old name once; every PyTorchVideo import in the project goes through
:func:`import_pytorchvideo` or imports this module first.
"""
from __future__ import annotations

import importlib
import sys


def install_functional_tensor_alias() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = importlib.import_module("torchvision.transforms._functional_tensor")


install_functional_tensor_alias()
