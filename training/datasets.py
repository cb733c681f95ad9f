"""Labelled photo sets: a folder of class folders, or a CSV of `filename,label` beside a root folder."""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.photos import NOT_A_PHOTO, SYSTEM_FILE, is_junk_path, is_photo_candidate

log = logging.getLogger(__name__)

CSV_NAMES = ("labels.csv",)


class DatasetError(ValueError):
    """A dataset folder or label file that cannot be used for training."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class LabelledDataset:
    root: Path
    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([sample.label for sample in self.samples], dtype=np.int64)

    def class_counts(self) -> list[int]:
        counts = Counter(sample.label for sample in self.samples)
        return [counts.get(index, 0) for index in range(len(self.classes))]

    def __repr__(self) -> str:
        return f"<LabelledDataset {self.root} classes={len(self.classes)} photos={len(self.samples)}>"


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def natural_key(text: str) -> list:
    """Sort key that orders `photo_2` before `photo_10`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def load_dataset(location: str | Path) -> LabelledDataset:
    """Read a dataset from a class-folder tree, a folder holding labels.csv, or a CSV file.

    A CSV's rows keep their order, because the reference split depends on it.
    Without a CSV, files are listed in natural order, class folder by class folder.
    """
    location = Path(location)

    if not location.exists():
        raise DatasetError(f"Dataset {location} does not exist.")
    if location.is_file():
        if location.suffix.lower() != ".csv":
            raise DatasetError(f"Dataset {location} is a file but not a .csv label file.")
        return _load_csv(location, location.parent)
    for name in CSV_NAMES:
        if (location / name).is_file():
            return _load_csv(location / name, location)
    return _load_folders(location)


def _load_folders(root: Path) -> LabelledDataset:
    class_dirs = sorted(
        (child for child in root.iterdir() if child.is_dir() and not is_junk_path(child.name)),
        key=lambda child: child.name,
    )
    if not class_dirs:
        raise DatasetError(
            f"Dataset {root} has no class folders; expected one sub-folder per class, "
            f"or a labels.csv with columns filename,label."
        )

    classes = [folder.name for folder in class_dirs]
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for label, folder in enumerate(class_dirs):
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: natural_key(str(p.relative_to(folder))))
        for path in files:
            relative = str(path.relative_to(root))
            if is_junk_path(relative):
                skipped.append((relative, SYSTEM_FILE))
                continue
            if not is_photo_candidate(path.name, _header(path)):
                skipped.append((relative, NOT_A_PHOTO))
                continue
            samples.append(Sample(path, label))

    return _checked(LabelledDataset(root, classes, samples, skipped))


def _load_csv(csv_path: Path, root: Path) -> LabelledDataset:
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        if "filename" not in columns or "label" not in columns:
            raise DatasetError(f"{csv_path} must have the columns filename,label; found {columns}.")
        rows = [{key.strip().lower(): (value or "").strip() for key, value in row.items() if key} for row in reader]

    raw_labels = [row["label"] for row in rows]
    if all(label.isdigit() for label in raw_labels):
        classes = _classes_for_indices(root, raw_labels, csv_path)
        indices = [int(label) for label in raw_labels]
    else:
        classes = sorted(set(raw_labels))
        indices = [classes.index(label) for label in raw_labels]

    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for row, label in zip(rows, indices):
        relative = row["filename"]
        path = (root / relative).resolve()
        if not path.is_relative_to(root.resolve()):
            raise DatasetError(f"{csv_path} names {relative!r}, which lies outside {root}.")
        if is_junk_path(relative):
            skipped.append((relative, SYSTEM_FILE))
        elif not path.is_file():
            skipped.append((relative, "missing"))
            log.warning("Skipping %s: listed in %s but not found", relative, csv_path.name)
        else:
            samples.append(Sample(path, label))

    return _checked(LabelledDataset(root, classes, samples, skipped))


def _classes_for_indices(root: Path, raw_labels: list[str], csv_path: Path) -> list[str]:
    # Integer labels index the class folders in alphabetical order.
    folders = sorted(child.name for child in root.iterdir() if child.is_dir() and not is_junk_path(child.name))
    highest = max(int(label) for label in raw_labels) if raw_labels else -1
    if highest >= len(folders):
        raise DatasetError(
            f"{csv_path} uses label {highest}, but {root} has only {len(folders)} class folders "
            f"to name labels 0 to {len(folders) - 1}."
        )
    return folders


def _checked(dataset: LabelledDataset) -> LabelledDataset:
    if not dataset.samples:
        raise DatasetError(f"Dataset {dataset.root} contains no photos.")
    present = sum(1 for count in dataset.class_counts() if count)
    if present < 2:
        raise DatasetError(f"Dataset {dataset.root} has photos of {present} class; training needs at least 2.")
    if dataset.skipped:
        log.info("Skipped %d files of %s that are not photos", len(dataset.skipped), dataset.root)
    return dataset


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(64)
    except OSError:
        return b""


def stratified_split(labels: np.ndarray, seed: int = 42, test_size: float = 0.2, val_size: float = 0.2) -> Split:
    """Split row indices 64/16/20 the way the reference notebook did.

    The test part is split off first with scikit-learn's stratified
    `train_test_split`, then the rest is split again the same way for validation,
    both with `random_state=seed`.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    counts = np.bincount(labels)
    rare = [index for index, count in enumerate(counts) if 0 < count < 4]
    if rare:
        raise DatasetError(
            f"Classes {rare} have fewer than 4 photos; a stratified train/validation/test split "
            f"needs at least 4 photos of every class."
        )

    rest, test = train_test_split(indices, test_size=test_size, random_state=seed, stratify=labels)
    train, val = train_test_split(rest, test_size=val_size, random_state=seed, stratify=labels[rest])
    return Split(train=np.asarray(train), val=np.asarray(val), test=np.asarray(test))
