"""The scaling section: time and memory of the VDIM loss as batch and locations grow."""
from __future__ import annotations

import torch

from benchmark.perf.timing import timed


def section_scaling(cfg, rows, device):
    """Time and memory of the VDIM loss (forward + backward) as the batch and the number of
    locations of both maps grow. Memory: CUDA's measured peak; on CPU (no allocator peak
    counter) the size of the largest score block the chunked loss holds, beside the full
    ``(B N) x (B N)`` score matrix an unchunked loss would hold."""
    from methods.losses import VDIM_CHUNK as chunk, vdim_nce
    for b in cfg.scaling_batches:
        for n in cfg.scaling_locations:
            a = torch.randn(b, 128, n, device=device, requires_grad=True)
            c = torch.randn(b, 128, n, device=device, requires_grad=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sec = timed(lambda: vdim_nce(a, c, chunk=chunk).backward(), max(1, cfg.repeats // 2))
            rows_per_chunk = min(b * n, max(1, chunk // n))
            row = {"section": "scaling", "what": f"vdim_nce B={b} locations={n}x{n}", "seconds": sec,
                   "score_block_mb": rows_per_chunk * b * n * 4 / 2 ** 20, "full_matrix_mb": (b * n) ** 2 * 4 / 2 ** 20}
            if device.type == "cuda":
                row["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
            rows.append(row)
