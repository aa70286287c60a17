"""The sample-sensitivity protocol's training subsets (evaluation/subsets.py)."""
import json
import random
from collections import Counter

import pytest

from benchmark.data.splits import VideoRecord
from benchmark.errors import UserError
from evaluation.subsets import class_balanced_subset

LIST = [VideoRecord(f"/d/c{c}/v{c}_{i}.avi", c) for c in range(8) for i in range(21)]  # split 1's 168 videos


def test_per_class_takes_that_many_of_every_class_and_depends_only_on_the_subset_seed():
    a = class_balanced_subset(LIST, 8, per_class=3, seed=0)
    assert Counter(r.label for r in a) == {c: 3 for c in range(8)}
    shuffled = random.Random(5).sample(LIST, len(LIST))
    assert {r.path for r in class_balanced_subset(shuffled, 8, per_class=3, seed=0)} == {r.path for r in a}
    assert {r.path for r in class_balanced_subset(LIST, 8, per_class=3, seed=1)} != {r.path for r in a}
    assert [r.path for r in a] == [r.path for r in LIST if r in a]  # kept in the list's order


def test_a_total_is_spread_as_evenly_as_the_classes_allow():
    a = class_balanced_subset(LIST, 8, total=20, seed=2)
    counts = Counter(r.label for r in a)
    assert len(a) == 20 and sorted(counts.values()) == [2] * 4 + [3] * 4


def test_a_small_class_gives_all_it_has_and_no_request_keeps_the_list():
    short = [r for r in LIST if r.label != 0 or r.path.endswith("_0.avi")]  # class 0 has one video
    assert Counter(r.label for r in class_balanced_subset(short, 8, per_class=3))[0] == 1
    assert class_balanced_subset(LIST, 8) == LIST


@pytest.mark.parametrize("kw,message", [
    ({"total": 4}, "bad eval.train_examples 4: must be >= 8 (one video a class)"),
    ({"per_class": 0}, "bad eval.train_examples_per_class 0: must be >= 1"),
    ({"total": 16, "per_class": 2}, "eval.train_examples=16 and eval.train_examples_per_class=2: give one of them"),
])
def test_bad_requests_say_what_is_wrong(kw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        class_balanced_subset(LIST, 8, **kw)


def test_a_run_evaluates_on_the_subset_and_records_it(tmp_path, tiny_dataset):
    from conftest import TINY
    from test_cli import FAST, cli
    p = cli(["run", "method=random", f"dataset.root={tiny_dataset}", f"results_dir={tmp_path / 'r'}",
             "eval.train_examples_per_class=1", *[a for a in FAST if not a.startswith("method.")]], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    entry = result["evals"][0]
    assert entry["train_subset"] == "1 per class (subset seed 0)" and entry["train_videos"] == {"1": TINY["classes"]}
