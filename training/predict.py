"""Batched prediction with the evaluation transform: every class's probability for every photo."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from training.artifact import LoadedModel
from training.datasets import natural_key
from training.photos import (
    DRAFT_SIZE,
    NOT_A_PHOTO,
    SYSTEM_FILE,
    PhotoError,
    is_junk_path,
    is_photo_candidate,
    open_photo,
)
from training.pipeline import load_in_batches, run_model, stack_pixels

log = logging.getLogger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class PhotoPrediction:
    path: str
    status: str
    error: str = ""
    error_code: str = ""
    top_class: str | None = None
    top_probability: float | None = None
    probabilities: list[float] = field(default_factory=list)
    width: int | None = None
    height: int | None = None


@dataclass
class FolderListing:
    photos: list[Path]
    skipped: list[tuple[Path, str]]


def list_photos(folder: str | os.PathLike) -> FolderListing:
    """List the photos under `folder`, recursively and in natural order.

    System files (`__MACOSX/`, `._*`, `.DS_Store`, `Thumbs.db`, hidden files)
    and files that are neither image content nor named like a photo are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder.")

    photos: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort(key=natural_key)
        for name in files:
            path = Path(directory) / name
            relative = path.relative_to(folder)
            if is_junk_path(relative):
                skipped.append((path, SYSTEM_FILE))
            elif not path.is_file():
                skipped.append((path, "not a regular file"))
            elif not is_photo_candidate(name, _header(path)):
                skipped.append((path, NOT_A_PHOTO))
            else:
                photos.append(path)
    photos.sort(key=lambda path: natural_key(str(path.relative_to(folder))))
    return FolderListing(photos, skipped)


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(64)
    except OSError:
        return b""


def predict_images(loaded: LoadedModel, images: list) -> torch.Tensor:
    """Return an (N, classes) probability tensor for already opened RGB PIL images."""
    return run_model(loaded.model, loaded.runtime, stack_pixels([loaded.preset.pixels(image) for image in images]))


def classify_paths(loaded: LoadedModel, paths: Iterable[str | os.PathLike], batch_size: int = 64,
                   on_result: Callable[[PhotoPrediction], None] | None = None,
                   names: dict[str, str] | None = None) -> Iterator[PhotoPrediction]:
    """Yield one PhotoPrediction per path, in input order; bad photos come back as `failed`.

    `names` maps a path to the name error messages should use for it, such as
    the name a photo was uploaded under instead of its storage path.
    """
    classes = loaded.classes

    def load(path):
        name = names.get(str(path)) if names else None
        image = open_photo(path, draft_size=DRAFT_SIZE, name=name)
        return loaded.preset.pixels(image), image.info["original_size"]

    overlap = loaded.runtime.device.type == "cuda"
    for batch in load_in_batches(paths, load, batch_size, overlap=overlap):
        waiting: list[tuple[PhotoPrediction, np.ndarray | None]] = []
        for path, loaded_photo in batch:
            if isinstance(loaded_photo, PhotoError):
                waiting.append((PhotoPrediction(str(path), FAILED, str(loaded_photo), loaded_photo.code), None))
                continue
            pixels, (width, height) = loaded_photo
            waiting.append((PhotoPrediction(str(path), OK, width=width, height=height), pixels))

        arrays = [pixels for _, pixels in waiting if pixels is not None]
        probabilities = run_model(loaded.model, loaded.runtime, stack_pixels(arrays)) if arrays else None
        row = 0
        for prediction, pixels in waiting:
            if pixels is not None:
                values = probabilities[row]
                row += 1
                top = int(values.argmax())
                prediction.top_class = classes[top]
                prediction.top_probability = float(values[top])
                prediction.probabilities = [float(value) for value in values]
            if on_result is not None:
                on_result(prediction)
            yield prediction
