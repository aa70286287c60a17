"""Parsers for the official split files: UCF-101, HMDB-51 and Kinetics.

Each parser returns ``(records, class_names)`` where a record is ``VideoRecord(path, label)``
with 0-based integer labels from the class index. Formats (REFERENCE.md, "Datasets"):

* UCF-101 ``classInd.txt``: ``1 ApplyEyeMakeup`` (1-indexed); ``trainlist0X.txt``:
  ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``; ``testlist0X.txt``: the path only.
  The label of a path-only line comes from its folder, never from the file name: the
  ``HandstandPushups`` folder holds files spelled ``v_HandStandPushups_*``.
* HMDB-51: ``<class>_test_split{1,2,3}.txt`` with lines ``<video>.avi <0|1|2>``
  (1 train, 2 test, 0 unused); classes are the sorted file-name prefixes.
* Kinetics: ``train/ val/`` class folders, or ``train.csv`` / ``val.csv`` annotations read by
  PyTorchVideo's ``LabeledVideoPaths``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

from benchmark.errors import UserError, unknown_choice

SUBSETS = ("train", "test", "all")
OFFICIAL_SPLITS = (1, 2, 3)  # UCF-101's and HMDB-51's three train/test splits


@dataclass(frozen=True)
class VideoRecord:
    path: str
    label: int


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    return path


def check_split(split: int, fmt: str = "ucf101") -> None:
    """UCF-101 and HMDB-51 have three official splits; Kinetics has one train/val split, whose
    number is not read."""
    if fmt != "kinetics" and split not in OFFICIAL_SPLITS:
        raise unknown_choice("split", split, OFFICIAL_SPLITS)


def ucf101_class_index(splits_dir: Path) -> List[str]:
    """Class names in classInd.txt order (line ``i Name`` -> label i-1)."""
    lines = _require(splits_dir / "classInd.txt", "UCF-101 class index").read_text().split("\n")
    entries = sorted((int(i), name) for i, name in (ln.split() for ln in lines if ln.strip()))
    return [name for _, name in entries]


def ucf101_split(videos_dir: Path, splits_dir: Path, split: int, subset: str
                 ) -> Tuple[List[VideoRecord], List[str]]:
    check_split(split)
    if subset not in SUBSETS:
        raise UserError(f"unknown subset '{subset}'; valid choices: {', '.join(SUBSETS)}")
    classes = ucf101_class_index(splits_dir)
    by_folder = {name.lower(): i for i, name in enumerate(classes)}
    records: List[VideoRecord] = []
    for part in (("train", "test") if subset == "all" else (subset,)):
        list_file = _require(splits_dir / f"{part}list0{split}.txt", f"UCF-101 {part} split file")
        for line in list_file.read_text().split("\n"):
            if not line.strip():
                continue
            rel = line.split()[0]
            folder = rel.replace("\\", "/").split("/")[0].lower()
            if folder not in by_folder:
                raise UserError(f"{list_file}: class folder '{folder}' is not in classInd.txt")
            records.append(VideoRecord(str(videos_dir / rel), by_folder[folder]))
    return records, classes


HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
HMDB_MARK = {"train": ("1",), "test": ("2",), "all": ("1", "2")}


def hmdb51_split(videos_dir: Path, splits_dir: Path, split: int, subset: str
                 ) -> Tuple[List[VideoRecord], List[str]]:
    check_split(split)
    if subset not in HMDB_MARK:
        raise UserError(f"unknown subset '{subset}'; valid choices: {', '.join(HMDB_MARK)}")
    _require(splits_dir, "HMDB-51 split folder")
    files = sorted(p for p in splits_dir.iterdir() if (m := HMDB_SPLIT_FILE.match(p.name)) and m["split"] == str(split))
    if not files:
        raise UserError(f"HMDB-51 split files '*_test_split{split}.txt' not found in {splits_dir}")
    classes = [HMDB_SPLIT_FILE.match(p.name)["cls"] for p in files]
    records = []
    for label, (cls, path) in enumerate(zip(classes, files)):
        for line in path.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1] in HMDB_MARK[subset]:
                records.append(VideoRecord(str(videos_dir / cls / parts[0]), label))
    return records, classes


def kinetics_split(root: Path, subset: str) -> Tuple[List[VideoRecord], List[str]]:
    """Kinetics ``train/``/``val/`` folders or CSV files via PyTorchVideo's LabeledVideoPaths."""
    from benchmark import compat  # noqa: F401
    from pytorchvideo.data.labeled_video_paths import LabeledVideoPaths

    names = {"train": ["train"], "test": ["val"], "all": ["train", "val"]}[subset]
    records, classes = [], sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
    for name in names:
        source = root / name if (root / name).is_dir() else _require(root / f"{name}.csv", f"Kinetics {name} folder or CSV")
        for path, info in LabeledVideoPaths.from_path(str(source)):
            records.append(VideoRecord(path, int(info["label"])))
    return records, classes or [str(i) for i in sorted({r.label for r in records})]


def load_split(fmt: str, root: Path, videos: str | None, splits: str | None, split: int, subset: str
               ) -> Tuple[List[VideoRecord], List[str]]:
    """Dispatch on the dataset format; every path that is missing is named in the error."""
    _require(root, "dataset root")
    if fmt == "ucf101":
        return ucf101_split(_require(root / (videos or "UCF-101"), "UCF-101 video folder"),
                            _require(root / (splits or "ucfTrainTestlist"), "UCF-101 split folder"), split, subset)
    if fmt == "hmdb51":
        return hmdb51_split(_require(root / (videos or "."), "HMDB-51 video folder"),
                            root / (splits or "testTrainMulti_7030_splits"), split, subset)
    if fmt == "kinetics":
        return kinetics_split(root, subset)
    raise UserError(f"unknown dataset format '{fmt}'; valid choices: ucf101, hmdb51, kinetics")


def groups_of(records: Sequence[VideoRecord]) -> List[str]:
    """UCF-101 group id (``gXX``) of each record, '' where the name has none."""
    return [m.group(1) if (m := re.search(r"_g(\d+)_c\d+", Path(r.path).name)) else "" for r in records]
