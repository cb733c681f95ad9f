"""Transform presets of the reference recipe, on PIL images.

Training: Resize(256), RandomCrop(224), RandomRotation(30), RandomHorizontalFlip,
ToTensor, Normalize. Evaluation: Resize((224, 224)), ToTensor, Normalize.

Each preset is split in two. The geometric part runs per photo on a decode
thread with Pillow alone and returns 8-bit HWC pixels. ToTensor and Normalize
then run once per batch (`normalize_batch`), with the same float32 operations
in the same order as torchvision's, so the numbers are identical. Keeping torch
out of the decode threads stops their small tensor operations from starting
extra OpenMP thread teams that compete with the backbone for the cores.

The training preset's geometric part is split again into its fixed part (the
resize, once per photo) and its random part (once per augmented view), and the
random part draws from an explicit generator, so every view is reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

IMAGE_SIZE = 224
TRAIN_RESIZE = 256
ROTATION_DEGREES = 30.0


def normalize_batch(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """Turn an (N, H, W, 3) uint8 batch into normalised float32 (N, 3, H, W), as ToTensor then Normalize.

    The result is a channels-last view of the input's memory layout, which is
    what the backbones run fastest on.
    """
    images = pixels.permute(0, 3, 1, 2).to(torch.float32).div(255)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return images.sub_(mean).div_(std)


def to_pixels(image: Image.Image) -> np.ndarray:
    return np.array(image, dtype=np.uint8)


class EvalPreset:
    """Resize((224, 224)), ToTensor, Normalize."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], size: int = IMAGE_SIZE):
        self.mean = list(mean)
        self.std = list(std)
        self.size = size

    def pixels(self, image: Image.Image) -> np.ndarray:
        """Apply the geometric part: return (224, 224, 3) uint8 pixels."""
        return to_pixels(F.resize(image, [self.size, self.size], interpolation=InterpolationMode.BILINEAR))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return normalize_batch(torch.from_numpy(self.pixels(image))[None], self.mean, self.std)[0]

    def describe(self) -> list[str]:
        return [f"Resize(({self.size}, {self.size}))", "ToTensor()", f"Normalize(mean={self.mean}, std={self.std})"]


class TrainPreset:
    """Resize(256), RandomCrop(224), RandomRotation(30), RandomHorizontalFlip, ToTensor, Normalize."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], size: int = IMAGE_SIZE,
                 resize: int = TRAIN_RESIZE, degrees: float = ROTATION_DEGREES):
        self.mean = list(mean)
        self.std = list(std)
        self.size = size
        self.resize = resize
        self.degrees = degrees

    def prepare(self, image: Image.Image) -> Image.Image:
        """Apply the fixed part: shorter side to 256 pixels."""
        return F.resize(image, self.resize, interpolation=InterpolationMode.BILINEAR)

    def view_pixels(self, prepared: Image.Image, generator: torch.Generator) -> np.ndarray:
        """Apply the random part with parameters drawn from `generator`; return uint8 HWC pixels.

        Draws the same distributions as torchvision's RandomCrop, RandomRotation
        (nearest-neighbour, black fill) and RandomHorizontalFlip(p=0.5), in that order.
        """
        width, height = prepared.size
        if width < self.size or height < self.size:
            prepared = F.pad(prepared, [max(0, self.size - width), max(0, self.size - height)], fill=0)
            width, height = prepared.size

        top = int(torch.randint(0, height - self.size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - self.size + 1, (1,), generator=generator))
        image = F.crop(prepared, top, left, self.size, self.size)

        angle = float(torch.empty(1).uniform_(-self.degrees, self.degrees, generator=generator))
        image = F.rotate(image, angle, interpolation=InterpolationMode.NEAREST, fill=0)

        if torch.rand(1, generator=generator) < 0.5:
            image = F.hflip(image)
        return to_pixels(image)

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = self.view_pixels(self.prepare(image), generator or torch.default_generator)
        return normalize_batch(torch.from_numpy(pixels)[None], self.mean, self.std)[0]

    def describe(self) -> list[str]:
        return [
            f"Resize({self.resize})",
            f"RandomCrop({self.size})",
            f"RandomRotation({self.degrees:g})",
            "RandomHorizontalFlip()",
            "ToTensor()",
            f"Normalize(mean={self.mean}, std={self.std})",
        ]
