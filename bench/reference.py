"""The reference notebook's training and prediction loops, reproduced as the baseline for bench/.

Everything here runs the way the notebook ran it. Transforms are applied to
every photo on every epoch, in float32. The whole model is in train mode during
training, so the frozen backbone's BatchNorm layers still update their
statistics. Validation is recomputed through the backbone every epoch.
"""

from __future__ import annotations

import copy
import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from training.backbones import PanDulceNet


def notebook_transforms(mean, std):
    train = transforms.Compose([
        transforms.Resize(256),
        transforms.RandomCrop(224),
        transforms.RandomRotation(30),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    evaluation = transforms.Compose([
        transforms.Resize((224, 224)),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    return train, evaluation


class PhotoList(Dataset):
    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        image = Image.open(self.paths[index]).convert("RGB")
        return self.transform(image), self.labels[index]


class NotebookNet(nn.Module):
    """The notebook's single model: backbone and head in one forward, no layer kept in eval mode."""

    def __init__(self, model: PanDulceNet):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, images):
        return self.head(self.backbone(images))


def run_epochs(model: NotebookNet, train_set: PhotoList, val_set: PhotoList, epochs: int, seed: int = 42):
    """Train like the notebook; return (per-epoch seconds, best-validation state)."""
    torch.manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=32)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    best_accuracy, best_state, seconds = -1.0, None, []

    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += (model(images).argmax(dim=1) == labels).sum().item()
        accuracy = correct / len(val_set)
        if accuracy > best_accuracy:
            best_accuracy, best_state = accuracy, copy.deepcopy(model.state_dict())
        seconds.append(time.perf_counter() - started)
    return seconds, best_state


def predict(model: nn.Module, paths, transform, batch_size: int = 32):
    """Predict like the notebook: serial decoding, float32, batches of 32; return top-1 indices."""
    model.eval()
    top = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.open(path).convert("RGB")) for path in paths[start:start + batch_size]])
            top.extend(torch.softmax(model(batch), dim=1).argmax(dim=1).tolist())
    return top
