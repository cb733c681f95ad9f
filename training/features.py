"""Compute the frozen backbone's features once per photo and view.

Training photos get several augmented views, which are the reference training
transform with different random draws, and by default their plain evaluation
view as well. Validation and test photos get the plain view only. The head is then trained on
these cached features, which is what makes an epoch take a fraction of a second
instead of minutes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from training.backbones import PanDulceNet
from training.datasets import DatasetError, LabelledDataset
from training.photos import DRAFT_SIZE, PhotoError, open_photo
from training.pipeline import load_in_batches, run_backbone, stack_pixels
from training.runtime import Runtime
from training.transforms import EvalPreset, TrainPreset

log = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL_S = 15.0


@dataclass
class FeatureTable:
    features: torch.Tensor  # (photos, views, feature_dim), float32
    labels: torch.Tensor  # (photos,), int64
    sample_indices: np.ndarray  # the dataset rows that decoded, in order
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    plain_first: bool = False  # view 0 is the plain evaluation view, the rest are augmented

    @property
    def views(self) -> int:
        return self.features.shape[1]

    def view(self, index: int) -> torch.Tensor:
        """Return the features of one view of every photo, cycling through the views."""
        return self.features[:, index % self.views]

    def epoch_view(self, epoch_index: int) -> int:
        """Return the view that epoch `epoch_index` (from 0) trains on.

        Without a plain view the augmented views take turns. With one, even
        epochs read the plain view and odd epochs take the augmented views in
        turn, so half of the epochs train on photos as they look at prediction
        time.
        """
        if not self.plain_first:
            return epoch_index % self.views
        augmented = self.views - 1
        if epoch_index % 2 == 0 or augmented == 0:
            return 0
        return 1 + (epoch_index // 2) % augmented


def view_seed(seed: int, sample_index: int) -> int:
    """Seed of one photo's augmentation generator: independent of batch and thread order."""
    return (seed * 1_000_003 + sample_index * 7_919) % (2**63 - 1)


def extract_features(
    model: PanDulceNet,
    runtime: Runtime,
    dataset: LabelledDataset,
    indices: np.ndarray,
    *,
    preset: TrainPreset | EvalPreset,
    views: int = 1,
    plain_preset: EvalPreset | None = None,
    seed: int = 42,
    batch_size: int = 64,
    description: str = "features",
    max_failed_fraction: float = 0.05,
    on_progress: Callable[[int, int], None] | None = None,
) -> FeatureTable:
    """Run the backbone over `dataset.samples[indices]`, `views` times per photo.

    With a TrainPreset, `views` augmented views are computed per photo, preceded
    by the plain view of `plain_preset` when one is given.

    Photos that fail to decode are skipped with a warning. More failures than
    `max_failed_fraction` of the photos (at least 10) raise DatasetError,
    because the split would no longer be the one requested.
    """
    augment = isinstance(preset, TrainPreset)
    if not augment and (views != 1 or plain_preset is not None):
        raise ValueError(f"The evaluation preset has exactly one view per photo, not {views}.")

    def load(sample_index: int) -> list[np.ndarray]:
        image = open_photo(dataset.samples[sample_index].path, draft_size=DRAFT_SIZE)
        if not augment:
            return [preset.pixels(image)]
        prepared = preset.prepare(image)
        generator = torch.Generator().manual_seed(view_seed(seed, int(sample_index)))
        arrays = [plain_preset.pixels(image)] if plain_preset is not None else []
        arrays += [preset.view_pixels(prepared, generator) for _ in range(views)]
        return arrays

    started = time.perf_counter()
    failure_limit = max(10, int(max_failed_fraction * len(indices)))
    pending: list[np.ndarray] = []
    chunks: list[torch.Tensor] = []
    kept: list[int] = []
    failures: list[tuple[str, str]] = []

    bar = tqdm(total=len(indices), desc=description, unit="photo", disable=None, leave=False)
    # tqdm draws nothing when stderr is not a terminal (a log file, a service), so log progress instead.
    last_logged = started
    done = 0
    for batch in load_in_batches(indices, load, batch_size, overlap=runtime.device.type == "cuda"):
        for sample_index, loaded in batch:
            if isinstance(loaded, PhotoError):
                path = str(dataset.samples[sample_index].path)
                log.warning("Skipping %s: %s", path, loaded)
                failures.append((path, str(loaded)))
                if len(failures) > failure_limit:
                    raise DatasetError(f"{len(failures)} photos failed to open; giving up after {failure_limit}.")
            else:
                kept.append(int(sample_index))
                pending.extend(loaded)
        if pending:
            chunks.append(run_backbone(model, runtime, stack_pixels(pending)))
            pending = []
        done += len(batch)
        bar.update(len(batch))
        if bar.disable and time.perf_counter() - last_logged >= PROGRESS_LOG_INTERVAL_S:
            last_logged = time.perf_counter()
            log.info("Computing %s features: %d of %d photos", description, done, len(indices))
        if on_progress is not None:
            on_progress(done, len(indices))
    bar.close()

    if not kept:
        raise DatasetError(f"None of the {len(indices)} {description} photos could be opened.")
    total_views = views + (plain_preset is not None)
    features = torch.cat(chunks).reshape(len(kept), total_views, -1)
    labels = torch.tensor([dataset.samples[index].label for index in kept], dtype=torch.long)
    seconds = time.perf_counter() - started
    images_per_second = len(kept) * total_views / max(seconds, 1e-9)
    log.info("Computed %s features: %d photos x %d %s in %.1f s (%.1f images/s)", description, len(kept),
             total_views, "view" if total_views == 1 else "views", seconds, images_per_second)
    return FeatureTable(features, labels, np.array(kept), failures, seconds, plain_first=plain_preset is not None)
