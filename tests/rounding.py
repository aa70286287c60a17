"""Tolerances for comparing two kernels that compute the same sums in different orders.

A sum of n terms computed in floating point with unit roundoff u is within
gamma_n * sum(|terms|) of the exact sum, gamma_n = n u / (1 - n u) (Higham, Accuracy and
Stability of Numerical Algorithms, 2nd ed., eq. 3.5). Two kernels that each do so (oneDNN's
convolution and a matrix product, say, or the same kernel built for AVX2, AVX-512 or AMX) differ
by at most twice that; an output stored in a narrower dtype than it accumulates in may round
to either neighbour, one more unit in the last place of the output. Bit-identity is asserted
only where the same kernel runs on both sides.
"""
from __future__ import annotations

import torch

UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11,
                 torch.float64: 2.0 ** -53}


def gamma(n: int, dtype: torch.dtype) -> float:
    nu = n * UNIT_ROUNDOFF[dtype]
    return nu / (1 - nu)


def assert_same_sums(got: torch.Tensor, expected: torch.Tensor, magnitude: torch.Tensor, n: int,
                     accumulate: torch.dtype = torch.float32) -> None:
    """``got`` and ``expected`` are two kernels' sums of the same ``n`` terms per element, whose
    magnitudes sum to ``magnitude`` (float64): they may differ only as rounding allows."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    bound = 2 * gamma(n, accumulate) * magnitude
    if expected.dtype != accumulate:  # the final rounding to the output's dtype may go either way
        bound = bound + 2 * UNIT_ROUNDOFF[expected.dtype] * expected.double().abs()
    excess = (got.double() - expected.double()).abs() - bound
    assert excess.max() <= 0, f"differs by more than rounding allows: {excess.max().item():.3g} over the bound"


def magnitudes(fn, x: torch.Tensor, weight: torch.Tensor | None, output_grad: torch.Tensor):
    """The sums of |terms| behind ``fn(x, weight)``'s output, input gradient and weight gradient
    (for ``output_grad``): the same function on |x|, |weight| and |output_grad| in float64,
    where every term is non-negative."""
    xa = x.detach().double().abs().requires_grad_()
    wa = None if weight is None else weight.detach().double().abs().requires_grad_()
    out = fn(xa, wa)
    out.backward(output_grad.detach().double().abs())
    return out.detach(), xa.grad, None if wa is None else wa.grad
