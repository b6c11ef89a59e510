"""Classifying image files in process: class names come from the first source that has them, and folders are
searched for images (infer.py itself: integration/test_infer.py)."""

import pytest

from mindcv_shufflenet.deploy import find_images, resolve_class_names, write_class_names


def test_class_names_come_from_the_first_source_that_has_them(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "ant").mkdir()
    ckpt = tmp_path / "run" / "last.ckpt"
    write_class_names(ckpt.parent, ["x", "y"])
    assert resolve_class_names(2, tmp_path / "data", ["p", "q"], ckpt) == (["ant", "cat"], str(tmp_path / "data"))
    assert resolve_class_names(2, None, ["p", "q"], ckpt) == (["p", "q"], "the checkpoint")
    assert resolve_class_names(2, None, None, ckpt) == (["x", "y"], str(ckpt.parent / "classes.txt"))
    assert resolve_class_names(1000, None, None, None)[0][:2] == ["tench", "goldfish"]
    assert resolve_class_names(2, None, None, None) == (["class 0", "class 1"], "class indices (no class names given)")
    with pytest.raises(ValueError, match="lists 2 class names, but the model has 3 classes"):
        resolve_class_names(3, None, None, ckpt)


def test_folders_are_searched_for_images_and_missing_paths_named(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/2.JPG", "a/b/1.png", "a/skip.txt"):
        (tmp_path / name).write_bytes(b"")
    assert find_images([tmp_path / "a"]) == [tmp_path / "a" / "2.JPG", tmp_path / "a" / "b" / "1.png"]
    with pytest.raises(FileNotFoundError, match="image or folder not found"):
        find_images([tmp_path / "nope.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        find_images([tmp_path / "empty"])
