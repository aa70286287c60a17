"""The host memory allocator, ``trainer.allocator`` (``retain`` | ``system``).

glibc's malloc hands large freed blocks back to the kernel: a block above its mmap threshold
(which grows with the blocks freed, to at most 32 MiB) is unmapped when freed, and the top of
the heap is trimmed once more than twice that is free. A training step allocates and frees the
same large activations every step, so each step faults its pages in again, and the kernel zeroes
every page it hands out. On this project's 2-core CPU a fault costs about 2.4 us; the bf16 step
of rho-BYOL, whose momentum target runs both clips as one batch, faulted in about 31k pages a
step, the Table 1 encoder's step at 32 x 128 x 128 about 21-55k, and ``retain`` made the latter
1.07-1.15x faster in three runs (``python -m benchmark perf``, the ``allocator`` lever; docs/speed.md).

``retain`` keeps freed memory in the process for the next step, which is what PyTorch's CPU
performance tuning guide gets by preloading jemalloc or tcmalloc (``torch.backends.xeon.run_cpu``
``--enable-jemalloc``), through glibc's own ``mallopt``: no block is mmapped (``M_MMAP_MAX`` 0),
the heap is not trimmed until 2 GiB at its top are free (``M_TRIM_THRESHOLD``), and it grows in
steps of 1 GiB of address space (``M_TOP_PAD``; a page takes memory when first touched). The
process's resident memory stays at its high-water mark. Results do not change: where a tensor
lives does not change what is computed (the 3-step losses and weights are bit-identical).
``system`` leaves malloc as it is. Where malloc is not glibc's (macOS, musl) or another allocator
is preloaded, ``retain`` changes nothing and :func:`use_allocator` says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import resource

from benchmark.errors import unknown_choice

ALLOCATORS = ("retain", "system")
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # glibc's malloc.h
RETAIN = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 1 << 30))
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")


def check_allocator(choice: str) -> None:
    if choice not in ALLOCATORS:
        raise unknown_choice("trainer.allocator", choice, ALLOCATORS)


def glibc():
    """glibc's C library, or None where malloc is another one (not Linux, musl, a preloaded allocator)."""
    if platform.libc_ver()[0] != "glibc" or any(a in os.environ.get("LD_PRELOAD", "") for a in PRELOADED):
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def set_malloc_options(options) -> bool:
    """``mallopt`` each ``(option, value)``; False where malloc is not glibc's or refuses one."""
    libc = glibc()
    return libc is not None and all(libc.mallopt(option, value) == 1 for option, value in options)


def use_allocator(choice: str) -> str:
    """Applies ``trainer.allocator`` to this process (and the data workers it forks later);
    returns what it did, for the log."""
    check_allocator(choice)
    if choice == "system":
        return "system (malloc unchanged)"
    if set_malloc_options(RETAIN):
        return "retain (glibc malloc keeps freed memory)"
    return "retain not applied: malloc is not glibc's, or another allocator is preloaded"


def minor_page_faults() -> int:
    """Pages this process has faulted in so far without reading from disk (zeroed or shared)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
