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

def parse_machine_stat(text: str) -> Tuple[int, int]:
    """``(busy, total)`` jiffies from the ``cpu`` line (the first) of ``/proc/stat``'s text.

    proc(5): user nice system idle iowait irq softirq steal guest guest_nice; idle and iowait are
    not busy, and guest time is already counted in user time, so the total is the first eight.
    """
    fields = [int(v) for v in text.split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def machine_jiffies() -> Optional[Tuple[int, int]]:
    """``(busy, total)`` jiffies over all cores since boot; None where ``/proc/stat`` is unreadable."""
    try:
        return parse_machine_stat(Path("/proc/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def children_of(pid: int) -> List[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def parse_process_stat(text: str) -> int:
    """User + system jiffies from the text of ``/proc/<pid>/stat`` (fields 14 and 15 of proc(5)).

    The command name, field 2, is in parentheses and may itself hold spaces and parentheses, so
    the fields are counted from the last ``)``.
    """
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_jiffies(pid: int) -> int:
    """User + system jiffies of ``pid`` (all its threads); 0 once it has gone."""
    try:
        return parse_process_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0


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

    def threads_between(self, before: Tuple[int, int, int], after: Tuple[int, int, int]) -> int:
        """The threads for the cores that others kept free between two :meth:`sample` readings."""
        busy, total, own = (a - b for a, b in zip(after, before))
        if total <= 0:
            return self.threads
        interval_cores = total / self.cores  # jiffies one core has in the interval
        others = max(0.0, (busy - own) / interval_cores)
        return threads_for(self.cores - others, self.most)

    @staticmethod
    def sample() -> Tuple[int, int, int]:
        busy, total = machine_jiffies()
        return busy, total, own_jiffies()

    def update(self) -> int:
        if not self.enabled:
            return self.threads
        now = self.sample()
        threads = self.threads_between(self.last, now)
        self.last = now
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return threads
