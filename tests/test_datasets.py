import numpy as np
import pytest

from tests import photo_factory as make
from training.datasets import DatasetError, load_dataset, stratified_split
from training.photos import NOT_A_PHOTO, SYSTEM_FILE

REFERENCE_COUNTS = {
    "train": [45, 74, 203, 81, 76, 103, 173, 98, 79, 113],
    "val": [11, 19, 51, 20, 19, 26, 43, 24, 20, 29],
    "test": [14, 23, 64, 25, 23, 32, 54, 31, 25, 36],
}


def test_reference_split_counts_are_reproduced(dataset_root):
    dataset = load_dataset(dataset_root)
    split = stratified_split(dataset.labels, seed=42)

    assert len(dataset.samples) == 1634
    assert split.sizes() == {"train": 1045, "val": 262, "test": 327}
    for name in ("train", "val", "test"):
        counts = np.bincount(dataset.labels[getattr(split, name)], minlength=10).tolist()
        assert counts == REFERENCE_COUNTS[name], name


def test_split_parts_are_disjoint_and_complete(dataset_root):
    split = stratified_split(load_dataset(dataset_root).labels)
    every = np.concatenate([split.train, split.val, split.test])

    assert len(set(every.tolist())) == 1634


def test_folder_layout_matches_csv_order(dataset_root, tmp_path):
    from_csv = load_dataset(dataset_root / "labels.csv")
    tree = tmp_path / "tree"
    tree.mkdir()
    for class_dir in (p for p in dataset_root.iterdir() if p.is_dir()):
        (tree / class_dir.name).symlink_to(class_dir, target_is_directory=True)
    from_folders = load_dataset(tree)

    assert from_folders.classes == from_csv.classes
    assert [s.path.name for s in from_folders.samples] == [s.path.name for s in from_csv.samples]
    assert from_folders.labels.tolist() == from_csv.labels.tolist()


def test_folder_dataset_skips_system_and_non_photo_files(small_dataset, tmp_path):
    root = tmp_path / "ds"
    for class_dir in (p for p in small_dataset.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir(parents=True)
        for photo in class_dir.iterdir():
            (root / class_dir.name / photo.name).write_bytes(photo.read_bytes())
    (root / "conchita" / ".DS_Store").write_bytes(b"Bud1")
    (root / "conchita" / "._conchita_0.jpg").write_bytes(b"AppleDouble")
    (root / "conchita" / "notes.txt").write_text("bake at 180")
    (root / "__MACOSX" / "conchita").mkdir(parents=True)
    (root / "__MACOSX" / "conchita" / "._x.jpg").write_bytes(b"AppleDouble")
    (root / "donas" / "Thumbs.db").write_bytes(b"\xd0\xcf")

    dataset = load_dataset(root)

    assert "__MACOSX" not in dataset.classes
    assert len(dataset.classes) == 10
    assert len(dataset.samples) == 80
    assert sorted(reason for _, reason in dataset.skipped) == [NOT_A_PHOTO] + [SYSTEM_FILE] * 3


def test_csv_with_class_name_labels(tmp_path, real_photo):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        for index in range(5):
            (tmp_path / name / f"{index}.jpg").write_bytes(real_photo.read_bytes())
    rows = ["filename,label"] + [f"{name}/{index}.jpg,{name}" for name in ("b", "a") for index in range(5)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")

    dataset = load_dataset(tmp_path)

    assert dataset.classes == ["a", "b"]
    assert dataset.labels.tolist() == [1] * 5 + [0] * 5


def test_csv_rows_for_missing_files_are_skipped(tmp_path, real_photo):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(real_photo.read_bytes())
    (tmp_path / "labels.csv").write_text("filename,label\na/1.jpg,0\nb/1.jpg,1\nb/gone.jpg,1\n")

    dataset = load_dataset(tmp_path)

    assert len(dataset.samples) == 2
    assert dataset.skipped == [("b/gone.jpg", "missing")]


@pytest.mark.parametrize(
    "csv_text, message",
    [
        ("name,class\na/1.jpg,0\n", "must have the columns filename,label"),
        ("filename,label\na/1.jpg,0\nb/1.jpg,7\n", "uses label 7"),
        ("filename,label\n../outside.jpg,0\na/1.jpg,1\n", "outside"),
    ],
    ids=["wrong-columns", "label-out-of-range", "path-escape"],
)
def test_bad_label_files_are_rejected(tmp_path, real_photo, csv_text, message):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(real_photo.read_bytes())
    (tmp_path / "labels.csv").write_text(csv_text)

    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path)


def test_empty_or_single_class_datasets_are_rejected(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset(tmp_path)

    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.jpg").write_bytes(make.jpeg_bytes())
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(tmp_path)


def test_missing_dataset_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_split_rejects_classes_too_small_to_stratify():
    labels = np.array([0] * 20 + [1] * 2)

    with pytest.raises(DatasetError, match=r"Classes \[1\] have fewer than 4 photos"):
        stratified_split(labels)
