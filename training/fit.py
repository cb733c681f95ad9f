"""Train the classification head on cached backbone features, keeping the best validation epoch."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from training.features import FeatureTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 42

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    photos_per_s: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    best_val_acc: float
    history: list[EpochRecord] = field(default_factory=list)


def reset_head(head: nn.Module, seed: int) -> None:
    """Re-initialise the head's layers from `seed`, so that a run depends on the seed alone."""
    torch.manual_seed(seed)
    for layer in head.modules():
        if hasattr(layer, "reset_parameters") and layer is not head:
            layer.reset_parameters()


def train_one_epoch(head: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                    features: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    generator: torch.Generator) -> tuple[float, float]:
    """Run one shuffled pass over the features; return (mean loss, accuracy)."""
    head.train()
    order = torch.randperm(len(labels), generator=generator)
    total_loss = 0.0
    correct = 0
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        inputs, targets = features[batch], labels[batch]

        optimizer.zero_grad(set_to_none=True)
        outputs = head(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()

        total_loss += loss.item() * len(batch)
        correct += (outputs.argmax(dim=1) == targets).sum().item()
    return total_loss / len(labels), correct / len(labels)


@torch.inference_mode()
def evaluate(head: nn.Module, criterion: nn.Module, features: torch.Tensor,
             labels: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Return (mean loss, accuracy, class probabilities) of the head in eval mode."""
    head.eval()
    outputs = head(features)
    loss = criterion(outputs, labels).item()
    accuracy = (outputs.argmax(dim=1) == labels).float().mean().item()
    return loss, accuracy, outputs.exp()


def fit_head(head: nn.Module, train: FeatureTable, val: FeatureTable, settings: FitSettings,
             on_epoch: Callable[[EpochRecord], None] | None = None) -> FitResult:
    """Train `head` with Adam and cross-entropy; each epoch reads the view `train.epoch_view` picks.

    Returns the head weights of the epoch with the highest validation accuracy
    (the earliest one on a tie), as the reference recipe keeps its best checkpoint.
    """
    reset_head(head, settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    # CrossEntropyLoss on the head's LogSoftmax output equals NLLLoss, since
    # log_softmax is idempotent; it is kept because the reference recipe uses it.
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.learning_rate)
    val_features = val.view(0)

    result = FitResult(best_state={}, best_epoch=0, best_val_acc=-1.0)
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(head, optimizer, criterion, train.view(train.epoch_view(epoch - 1)),
                                                train.labels, settings.batch_size, generator)
        val_loss, val_acc, _ = evaluate(head, criterion, val_features, val.labels)
        seconds = time.perf_counter() - started

        record = EpochRecord(epoch, train_loss, train_acc, val_loss, val_acc,
                             photos_per_s=len(train.labels) / max(seconds, 1e-9), seconds=seconds)
        result.history.append(record)
        log.info("Epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  %.0f photos/s  %.2f s",
                 epoch, settings.epochs, train_loss, train_acc, val_loss, val_acc, record.photos_per_s, seconds)
        if val_acc > result.best_val_acc:
            result.best_val_acc = val_acc
            result.best_epoch = epoch
            result.best_state = copy.deepcopy(head.state_dict())
        if on_epoch is not None:
            on_epoch(record)

    log.info("Best validation accuracy %.4f at epoch %d", result.best_val_acc, result.best_epoch)
    return result
