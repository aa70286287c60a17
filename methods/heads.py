"""Projection and prediction heads.

* :class:`MLPHead`: SlowFast contrastive_ssl's MLP (Feichtenhofer et al. 2021):
  "Linear -> [BN] -> ReLU -> ... -> Linear, no BN after the last layer", followed by L2
  normalisation where the method asks for it.
* :class:`LocalMLP`: VDIM's phi_j (AMDIM's MLP with residual, 1x1x1 convs), defined beside
  the encoder that also uses it for phi_8.
"""
from __future__ import annotations

from torch import nn

from encoders.vdim import LocalMLP  # noqa: F401  (re-exported: phi_j of VDIM sec. 3.3)


class MLPHead(nn.Sequential):
    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int = 3, bn: bool = True):
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [out_dim]
        mods = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(dims) - 2
            mods.append(nn.Linear(a, b, bias=last or not bn))
            if not last:
                if bn:
                    mods.append(nn.BatchNorm1d(b))
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)
