"""What machine a figure comes from: written into every ``result.json`` and ``perf.json``.

Float kernels differ between CPUs (oneDNN picks AMX, AVX-512 BF16 or AVX2 kernels, which sum in
another order), so a figure is only comparable with figures from the same kind of CPU; the
generated results and performance pages print this next to every table.
"""
import os
import platform
from pathlib import Path
from typing import Dict, List, Optional

import torch

# CPU flags that change which matrix kernels oneDNN runs, most capable first.
VECTOR_UNITS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_flags(cpuinfo: str) -> List[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return line.split(":", 1)[1].split()
    return []


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def vector_units(flags: List[str]) -> List[str]:
    return [name for flag, name in VECTOR_UNITS if flag in flags]


def describe_host(device: Optional[torch.device] = None) -> Dict[str, object]:
    """The CPU model, its vector units, the cores this process may use, the GPU and torch."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    gpu = None
    if device is not None and device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(cpuinfo), "vector_units": vector_units(cpu_flags(cpuinfo)), "cores": cores,
            "gpu": gpu, "torch": torch.__version__}


def host_line(host: Optional[Dict[str, object]]) -> str:
    """One line for a page: ``Intel(R) Xeon(R) Processor (AMX, AVX-512 BF16), 2 cores, torch 2.14.1``."""
    if not host:
        return "machine not recorded"
    units = ", ".join(host.get("vector_units") or [])
    cpu = f"{host.get('cpu')}" + (f" ({units})" if units else "")
    parts = [host["gpu"]] if host.get("gpu") else []
    parts += [cpu, f"{host.get('cores')} cores", f"torch {host.get('torch')}"]
    return ", ".join(parts)


def machine_name(host: Optional[Dict[str, object]]) -> str:
    """What a run's kernels ran on, short: the GPU's name, or the CPU's model and its best vector
    unit (``Intel Xeon, AMX``; ``AMD EPYC, AVX-512 BF16``). Runs on two such machines are two
    settings in ``compare``, since their kernels round differently."""
    if not host:
        return "machine not recorded"
    if host.get("gpu"):
        return str(host["gpu"])
    cpu = str(host.get("cpu") or "unknown CPU")
    for word in ("(R)", "(TM)", "(tm)", " Processor", " CPU"):
        cpu = cpu.replace(word, "")
    cpu = " ".join(cpu.split()).split(" @ ")[0]
    units = host.get("vector_units") or []
    return f"{cpu}, {units[0]}" if units else cpu
