"""trainer.adaptive_threads: reading /proc and turning other processes' load into a thread count."""
import os
import time

import pytest
import torch

from benchmark import cpu_share
from benchmark.cpu_share import CoreShare, parse_machine_stat, parse_process_stat, threads_for
from benchmark.perf.sharing import sharing_rows


def test_machine_stat_counts_idle_and_iowait_as_free_and_guest_once():
    # user nice system idle iowait irq softirq steal guest guest_nice
    text = "cpu  100 5 20 300 10 1 2 3 40 4\ncpu0 50 2 10 150 5 0 1 1 20 2\nintr 1 2\n"
    busy, total = parse_machine_stat(text)
    assert total == 100 + 5 + 20 + 300 + 10 + 1 + 2 + 3  # guest is inside user already
    assert busy == total - 300 - 10


def test_process_stat_is_read_after_a_command_name_with_spaces_and_parentheses():
    rest = "S 1 2 3 4 5 6 7 8 9 10 " + "111 222" + " 0 0 20 0 1 0"
    text = f"4242 (python (worker) 1) {rest}\n"
    assert parse_process_stat(text) == 333


def test_own_process_jiffies_grow_with_work():
    if cpu_share.machine_jiffies() is None:
        pytest.skip("no /proc/stat on this system")
    before = cpu_share.process_jiffies(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert cpu_share.process_jiffies(os.getpid()) > before
    assert cpu_share.process_jiffies(2 ** 22 + 7) == 0  # a pid that cannot exist: gone, not an error


@pytest.mark.parametrize("free, most, want", [(0.0, 4, 1), (0.4, 4, 1), (1.6, 4, 2), (3.5, 4, 4), (7.0, 4, 4),
                                              (-1.0, 2, 1)])
def test_threads_for_rounds_and_keeps_within_one_and_most(free, most, want):
    assert threads_for(free, most) == want


def share(cores, most):
    s = CoreShare(False, most)
    s.cores, s.threads = cores, most
    return s


def test_threads_between_leaves_the_cores_others_kept_busy():
    s = share(cores=4, most=4)
    # 1 s at 100 jiffies per core: 400 total; 300 busy of which 100 are this run's: others took 2 cores
    assert s.threads_between((0, 0, 0), (300, 400, 100)) == 2
    # nobody else: every core
    assert s.threads_between((1000, 2000, 500), (1300, 2400, 800)) == 4
    # the machine is saturated by others: still one thread
    assert s.threads_between((0, 0, 0), (400, 400, 0)) == 1
    # no time passed: keep what it has
    s.threads = 3
    assert s.threads_between((5, 10, 1), (5, 10, 1)) == 3


def test_threads_between_never_exceeds_the_configured_threads():
    s = share(cores=8, most=2)
    assert s.threads_between((0, 0, 0), (0, 800, 0)) == 2


def test_disabled_share_never_touches_torch_threads():
    before = torch.get_num_threads()
    s = CoreShare(False)
    assert s.update() == before and torch.get_num_threads() == before


def test_sharing_rows_report_the_slower_of_each_pair_over_the_lone_run():
    rows = sharing_rows(0.5, [0.9, 1.2], [2.5, 3.0])
    alone, together, full = rows
    assert alone["s_per_step"] == 0.5 and "ratio" not in alone
    assert together["s_per_step"] == 1.2 and together["ratio"] == pytest.approx(2.4)
    assert full["s_per_step"] == 3.0 and full["ratio"] == pytest.approx(6.0)
    assert together["ideal"] == full["ideal"] == 2.0
