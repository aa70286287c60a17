"""trainer.allocator (benchmark/allocator.py): ``retain`` stops glibc's malloc from faulting the
pages of a freed large block in again when a block of the same size is allocated next."""
import json
import subprocess
import sys

import pytest

from benchmark.allocator import ALLOCATORS, glibc, use_allocator
from benchmark.errors import UserError

# In a child process each: malloc's settings are process-wide, and its heap keeps what they did.
FAULTS_PER_ROUND = """
import json, sys, torch
from benchmark.allocator import minor_page_faults, use_allocator
print(use_allocator(sys.argv[1]), file=sys.stderr)
faults = []
for _ in range(6):
    before = minor_page_faults()
    # 256 MiB: above glibc's largest mmap threshold (32 MiB) and trim threshold (64 MiB), and more
    # than the heap can hold free from start-up, so by default it is mmapped anew every round
    x = torch.ones(256 << 20, dtype=torch.uint8)
    y = torch.ones(8 << 20, dtype=torch.uint8)  # 8 MiB: below it
    del x, y
    faults.append(minor_page_faults() - before)
print(json.dumps(faults))
"""


def faults_per_round(setting: str) -> list:
    p = subprocess.run([sys.executable, "-c", FAULTS_PER_ROUND, setting], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.skipif(glibc() is None, reason="mallopt needs glibc's malloc")
def test_retain_reuses_freed_pages_where_the_default_faults_them_in_again():
    pages = (256 << 20) // 4096  # the 256 MiB block's; the 8 MiB one stays in the heap either way
    system, retain = faults_per_round("system"), faults_per_round("retain")
    assert all(f >= 0.9 * pages for f in system[1:]), system  # unmapped on free, faulted in again
    assert all(f < 0.05 * pages for f in retain[2:]), retain  # kept and reused
    assert retain[0] >= 0.9 * pages  # the first round still takes its pages from the kernel


def test_allocator_choices_and_bad_choice():
    assert ALLOCATORS == ("retain", "system")
    assert use_allocator("system").startswith("system")
    with pytest.raises(UserError, match="unknown trainer.allocator 'tcmalloc'; valid choices: retain, system"):
        use_allocator("tcmalloc")


def test_allocator_lever_reports_a_child_that_cannot_build_its_steps():
    """perf's allocator lever runs each setting in a spawned process; one that fails is a note row, not a crash."""
    from hydra import compose, initialize_config_dir

    from benchmark.cli_common import CONFIG_DIR
    from benchmark.perf.allocator_lever import allocator_lever_rows
    from benchmark.perf.train import compared_steps
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose("perf", overrides=["encoder.frames=8", "encoder.size=32", "batch_size=2", "repeats=1"])
    rows = allocator_lever_rows("train", compared_steps, cfg, "bf16")
    assert len(rows) == 1 and rows[0]["what"] == "allocator system" and rows[0]["note"].startswith("unavailable: UserError: encoder")
