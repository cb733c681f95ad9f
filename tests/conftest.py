"""Shared fixtures: the real photo set, small real subsets of it, and trained test models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("PANDULCE_TEST_DATASET", REPO_ROOT.parent / "shared" / "datasets" / "pan-dulce"))

# Keep decode threads and torch threads predictable on small CI machines.
os.environ.setdefault("PANDULCE_DECODE_THREADS", "2")


@pytest.fixture(scope="session")
def dataset_root() -> Path:
    if not (DATASET / "labels.csv").is_file():
        raise RuntimeError(
            f"The real photo set is missing at {DATASET}; tests need it (set PANDULCE_TEST_DATASET to its folder)."
        )
    return DATASET


@pytest.fixture(scope="session")
def real_photo(dataset_root) -> Path:
    return dataset_root / "conchita" / "conchita_0.jpg"


def copy_subset(dataset_root: Path, target: Path, per_class: int, offset: int = 0) -> Path:
    """Copy `per_class` real photos of every class into a class-folder tree at `target`."""
    from training.datasets import natural_key

    for class_dir in sorted(p for p in dataset_root.iterdir() if p.is_dir()):
        photos = sorted(class_dir.iterdir(), key=lambda p: natural_key(p.name))[offset:offset + per_class]
        (target / class_dir.name).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy(photo, target / class_dir.name / photo.name)
    return target


@pytest.fixture(scope="session")
def small_dataset(dataset_root, tmp_path_factory) -> Path:
    """Eight real photos of each of the ten classes, as class folders."""
    return copy_subset(dataset_root, tmp_path_factory.mktemp("small-dataset"), per_class=8)


@pytest.fixture(scope="session")
def lite0_model(small_dataset, tmp_path_factory) -> Path:
    """An EfficientNet-Lite0 model trained on the small real dataset (80 photos, 15 epochs)."""
    from training.train import TrainOptions, train_classifier

    out_dir = tmp_path_factory.mktemp("models") / "lite0"
    train_classifier(small_dataset, out_dir, TrainOptions(backbone="efficientnet-lite0", epochs=15, views=1))
    return out_dir


@pytest.fixture(scope="session")
def random_resnet50_weights(tmp_path_factory) -> Path:
    """A randomly initialised torchvision ResNet50 state_dict, standing in for the ImageNet file."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None)
    # Give BatchNorm non-default running statistics, so that a change to them is visible.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)
    path = tmp_path_factory.mktemp("weights") / "resnet50-random.pth"
    torch.save(model.state_dict(), path)
    return path
