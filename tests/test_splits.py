import pytest

from benchmark.data.splits import groups_of, hmdb51_split, load_split, ucf101_split
from benchmark.errors import UserError


def _ucf(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                           "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                                          "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    return tmp_path / "UCF-101", lists


def test_ucf101_labels_zero_based_from_folder_not_file_name(tmp_path):
    videos, lists = _ucf(tmp_path)
    train, classes = ucf101_split(videos, lists, 1, "train")
    test, _ = ucf101_split(videos, lists, 1, "test")
    assert classes == ["ApplyEyeMakeup", "HandstandPushups"]
    assert [r.label for r in train] == [0, 1] and [r.label for r in test] == [0, 1]
    assert test[1].path.endswith("HandstandPushups/v_HandStandPushups_g01_c01.avi")
    assert set(groups_of(train)).isdisjoint(groups_of(test))


def test_ucf101_missing_split_file_names_path(tmp_path):
    videos, lists = _ucf(tmp_path)
    with pytest.raises(UserError, match="trainlist02.txt"):
        ucf101_split(videos, lists, 2, "train")


def test_hmdb51_markers(tmp_path):
    d = tmp_path / "testTrainMulti_7030_splits"
    d.mkdir()
    (d / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (d / "cartwheel_test_split1.txt").write_text("d.avi 2 \ne.avi 1 \n")
    train, classes = hmdb51_split(tmp_path, d, 1, "train")
    test, _ = hmdb51_split(tmp_path, d, 1, "test")
    assert classes == ["brush_hair", "cartwheel"]
    assert [(r.path.split("/")[-1], r.label) for r in train] == [("a.avi", 0), ("e.avi", 1)]
    assert [(r.path.split("/")[-1], r.label) for r in test] == [("b.avi", 0), ("d.avi", 1)]


def test_missing_root_and_bad_split(tmp_path):
    with pytest.raises(UserError, match="dataset root not found"):
        load_split("ucf101", tmp_path / "nope", None, None, 1, "train")
    with pytest.raises(UserError, match="valid choices: 1, 2, 3"):
        ucf101_split(tmp_path, tmp_path, 4, "train")
