"""Unpack a zip of class folders into a training dataset under the data directory.

The class of a photo is the name of the folder that contains it, so
`conchita/a.jpg` and `pan-dulce/conchita/a.jpg` both give `conchita`. Member
names decide only the class: each photo is stored as
`datasets/<dataset id>/<class>/<sha256><ext>`, so `../`, absolute names and
symbolic links cannot place anything outside the dataset folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable

import numpy as np

from pandulce.storage import EXTENSIONS, PhotoTooLarge
from pandulce.uploads import UploadEntry, UploadError, UploadLimits, zip_entries
from training.datasets import stratified_split
from training.photos import PHOTO_EXTENSIONS, is_junk_path, is_photo_candidate, sniff_format

log = logging.getLogger(__name__)

CLASS_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# training.datasets needs two classes, and its stratified split needs 4 photos of every class.
MIN_CLASSES = 2
MIN_PHOTOS_PER_CLASS = 4
HEADER_BYTES = 64
BLOCK_BYTES = 1 << 20


class DatasetUploadError(UploadError):
    """A zip that cannot become a training dataset; `code` names the rule.

    `classes` maps the classes the error is about to their photo counts, and
    `folders` lists the folder names that are not valid class names.
    """

    def __init__(self, code: str, message: str, classes: dict[str, int] | None = None,
                 folders: list[str] | None = None):
        super().__init__(code, message)
        self.classes = classes or {}
        self.folders = folders or []


@dataclass
class UnpackedDataset:
    """A dataset folder written from a zip, with its photo count per class and the members left out."""

    path: Path
    class_counts: dict[str, int]
    skipped: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)

    @property
    def photo_count(self) -> int:
        return sum(self.class_counts.values())


def unpack_dataset_zip(zip_path: Path, datasets_dir: Path, limits: UploadLimits, seed: int = 42,
                       label: str = "") -> UnpackedDataset:
    """Write the photos of a zip of class folders to a new folder under `datasets_dir` and check them.

    Raises UploadError for a zip that breaks a limit or cannot be read, and
    DatasetUploadError for folder names or photo counts training cannot use.
    The new folder is deleted whenever an error is raised. `seed` is the
    training run's, because it picks which photos go to which split. `label`,
    usually the zip's file name, starts the folder's name so that pages can
    show which upload a run trained on.
    """
    dataset_dir = datasets_dir / dataset_folder_name(label)
    dataset_dir.mkdir(parents=True)
    try:
        unpacked = _write_members(zip_entries(zip_path, limits), dataset_dir, limits)
        check_classes(unpacked.class_counts, seed)
    except BaseException:
        shutil.rmtree(dataset_dir, ignore_errors=True)
        raise

    log.info("Unpacked %s into %s: %d photos of %d classes, %d members skipped %s", zip_path.name, dataset_dir,
             unpacked.photo_count, len(unpacked.class_counts), unpacked.skipped, dict(unpacked.skipped_reasons))
    return unpacked


def dataset_folder_name(label: str) -> str:
    """Return a new, unique folder name: the label as ASCII letters, digits and dashes, then a random suffix."""
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"\.zip$", "", ascii_label.strip(), flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-")
    suffix = uuid.uuid4().hex[:12]
    return f"{slug}-{suffix}" if slug else uuid.uuid4().hex


def class_for_member(name: str) -> str | None:
    """Return the folder name that gives a member its class, or None for a member that has no safe class.

    Members at the zip's root have no folder. Absolute names and names with
    `..` are left out as well, because they point outside the zipped folder.
    """
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", normalized) or ".." in path.parts:
        return None
    parts = [part for part in path.parts if part not in ("", ".")]
    if len(parts) < 2:
        return None
    return parts[-2]


def _write_members(entries: Iterable[UploadEntry], dataset_dir: Path, limits: UploadLimits) -> UnpackedDataset:
    unpacked = UnpackedDataset(dataset_dir, {})
    bad_folders: list[str] = []

    for entry in entries:
        if is_junk_path(entry.name):
            unpacked.skipped_reasons["system file"] += 1
            continue
        folder = class_for_member(entry.name)
        if folder is None:
            unpacked.skipped_reasons["no class folder"] += 1
            continue

        class_name = folder.lower()
        with entry.open() as stream:
            header = stream.read(HEADER_BYTES)
            if not is_photo_candidate(entry.name, header):
                unpacked.skipped_reasons["not a photo"] += 1
                continue
            if not CLASS_NAME_PATTERN.fullmatch(class_name):
                if folder not in bad_folders:
                    bad_folders.append(folder)
                continue
            try:
                _store_photo(stream, header, entry.name, dataset_dir, class_name, limits)
            except PhotoTooLarge:
                log.warning("Skipping %s: larger than %d MB", entry.name, limits.max_photo_bytes // 1_000_000)
                unpacked.skipped_reasons["too large"] += 1
                continue
        unpacked.class_counts[class_name] = unpacked.class_counts.get(class_name, 0) + 1

    if bad_folders:
        raise DatasetUploadError("bad_class_name", f"These folder names cannot be class names: "
                                 f"{', '.join(bad_folders)}.", folders=bad_folders)
    # A photo zipped twice in one class is one file, because files are named by content.
    unpacked.class_counts = {name: len(list((dataset_dir / name).iterdir())) for name in sorted(unpacked.class_counts)}
    unpacked.skipped = sum(unpacked.skipped_reasons.values())
    return unpacked


def _store_photo(stream: BinaryIO, header: bytes, name: str, dataset_dir: Path, class_name: str,
                 limits: UploadLimits) -> Path:
    """Copy a photo into its class folder under the SHA-256 of its content; return the file's path.

    The bytes go to a temporary file in the dataset folder first, so that a
    photo over the size limit leaves no class folder behind.
    """
    digest = hashlib.sha256(header)
    size = len(header)

    handle, temporary = tempfile.mkstemp(dir=dataset_dir, prefix=".incoming-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(header)
            for block in iter(lambda: stream.read(BLOCK_BYTES), b""):
                size += len(block)
                if size > limits.max_photo_bytes:
                    raise PhotoTooLarge(limits.max_photo_bytes)
                digest.update(block)
                out.write(block)
        class_dir = dataset_dir / class_name
        class_dir.mkdir(exist_ok=True)
        target = class_dir / f"{digest.hexdigest()}{_extension(header, name)}"
        os.replace(temporary, target)
        return target
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _extension(header: bytes, name: str) -> str:
    """Return the extension of the format the content announces, else the member's own photo extension."""
    image_format = sniff_format(header)
    if image_format in EXTENSIONS:
        return EXTENSIONS[image_format]
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    return suffix if suffix in PHOTO_EXTENSIONS else ".bin"


def check_classes(class_counts: dict[str, int], seed: int = 42) -> None:
    """Raise DatasetUploadError unless training can split photos with these counts per class."""
    if not class_counts:
        raise DatasetUploadError("no_classes", "The zip contains no photos inside class folders.")
    if len(class_counts) < MIN_CLASSES:
        raise DatasetUploadError("too_few_classes", f"The zip has photos of {len(class_counts)} class; training "
                                 f"needs at least {MIN_CLASSES}.", classes=class_counts)
    short = {name: count for name, count in class_counts.items() if count < MIN_PHOTOS_PER_CLASS}
    if short:
        listed = ", ".join(f"{name} ({count})" for name, count in short.items())
        raise DatasetUploadError("too_few_photos", f"Every class needs at least {MIN_PHOTOS_PER_CLASS} photos; "
                                 f"these have fewer: {listed}.", classes=short)

    # Four photos of each class are not always enough: scikit-learn also needs
    # every part of the split to have at least one photo per class. The trainer's
    # own split function is the check, so the two cannot disagree.
    labels = np.repeat(np.arange(len(class_counts)), list(class_counts.values()))
    try:
        stratified_split(labels, seed=seed)
    except ValueError as exc:
        raise DatasetUploadError("split_too_small", f"{labels.size} photos of {len(class_counts)} classes are too "
                                 f"few to split into training, validation and test photos: {exc}",
                                 classes=class_counts) from exc
