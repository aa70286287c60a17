"""``trainer.adaptive_threads``: a CPU run uses only the cores other processes leave free.

torch's OpenMP pool takes every core, and its threads wait for each other at the end of every
parallel region. Two such runs on one machine ask for twice the cores there are, so a thread
often waits for a partner that the other run's thread has pushed off its core; on a 2-core
machine two default runs each took 5-6x the time per step of one alone, where sharing the cores
fairly would cost 2x (``python -m benchmark perf sections=[sharing]``). Busy-waiting less
(``OMP_WAIT_POLICY=PASSIVE``) only brings it to about 3x and slows a run that is alone.

So the trainer looks, every ``trainer.log_every`` steps, at how many cores the rest of the
machine kept busy over that interval (Linux ``/proc/stat``, less this run's own process and its
DataLoader workers, from ``/proc/<pid>/stat``), and sets torch's thread count to the cores left,
at least one, at most ``trainer.threads`` (or torch's default). A run alone keeps every core; two
runs settle on a share each. Elsewhere than Linux it changes nothing. The thread count does not
change what is computed, only how the work is split, but a kernel may then sum in another order,
so a run that shared the machine can differ from one alone in the last bits.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import torch

def machine_jiffies() -> Optional[Tuple[int, int]]:
    """``(busy, total)`` jiffies over all cores since boot, from ``/proc/stat``; None if unreadable."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user time
    return total - idle, total


def children_of(pid: int) -> List[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def process_jiffies(pid: int) -> int:
    """User + system jiffies of ``pid`` (all its threads); 0 once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def own_jiffies() -> int:
    """This process's and its children's (DataLoader workers') jiffies."""
    me = os.getpid()
    return process_jiffies(me) + sum(process_jiffies(c) for c in children_of(me))


def threads_for(free_cores: float, most: int) -> int:
    """The thread count for ``free_cores`` cores that others leave idle, rounded, in ``[1, most]``."""
    return max(1, min(most, int(free_cores + 0.5)))


class CoreShare:
    """Call :meth:`update` now and then; it sets ``torch.set_num_threads`` to the free cores."""

    def __init__(self, enabled: bool, most: Optional[int] = None):
        self.cores = os.cpu_count() or 1
        self.most = most or torch.get_num_threads()
        self.enabled = enabled and self.cores > 1 and machine_jiffies() is not None
        self.threads = torch.get_num_threads()
        self.last = self.sample() if self.enabled else None

    @staticmethod
    def sample() -> Tuple[int, int, int]:
        busy, total = machine_jiffies()
        return busy, total, own_jiffies()

    def update(self) -> int:
        if not self.enabled:
            return self.threads
        now = self.sample()
        busy, total, own = (a - b for a, b in zip(now, self.last))
        self.last = now
        if total <= 0:
            return self.threads
        interval_cores = total / self.cores  # jiffies one core has in the interval
        others = max(0.0, (busy - own) / interval_cores)
        threads = threads_for(self.cores - others, self.most)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return threads
