"""A small CNN for 28x28 grayscale images (MNIST, Fashion-MNIST) and its supervised training.

It plays the role of the papers' ImageNet-pretrained CNN in miniature: trained *with* labels on some
classes, its penultimate layer (``fc1``, 256-D after ReLU) is the feature space of the others. Saved
as a plain ``state_dict`` (``torch.save``) and loaded with ``torch.load(weights_only=True)`` through
the same local-weights path as any backbone (``get_backbone("small_cnn", weights=path)``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import expected

#: Fashion-MNIST's training-set pixel mean and std (in [0, 1]); the small CNN's input normalisation.
GRAY_MEAN, GRAY_STD = 0.2860, 0.3530


class SmallCNN(nn.Module):
    """conv32-conv64-fc256-classes, with BatchNorm; input ``float (n, 1, 28, 28)`` normalised."""

    def __init__(self, n_classes: int = 10, feature_dim: int = 256):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 7 * 7, feature_dim)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.relu(self.fc1(self.flatten(self.features(x))))))


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 (n, 28, 28)`` images to the normalised ``float32 (n, 1, 28, 28)`` input."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise expected("images", "uint8 array of shape (n, 28, 28)", f"shape {images.shape}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - GRAY_MEAN) / GRAY_STD


def train_classifier(images: np.ndarray, labels: np.ndarray, *, epochs: int = 6, batch_size: int = 128,
                     lr: float = 0.05, seed: int = 0, device: str | None = None,
                     log=print) -> SmallCNN:
    """Train :class:`SmallCNN` with labels (SGD with momentum, cosine schedule, random shifts)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if classes.size < 2:
        raise expected("labels", "at least two classes", f"{classes.size}")
    y = torch.from_numpy(np.searchsorted(classes, labels).astype(np.int64))
    x = images_to_tensor(images)
    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = SmallCNN(n_classes=classes.size).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        t0, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            xb, yb = x[idx], y[idx]
            shift = torch.randint(-2, 3, (2,), generator=gen)
            xb = torch.roll(xb, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3)).to(dev, non_blocking=True)
            yb = yb.to(dev, non_blocking=True)
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}, train accuracy {correct / seen:.4f}, "
            f"{time.perf_counter() - t0:.0f} s")
    return model.eval()


@torch.no_grad()
def accuracy(model: SmallCNN, images: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on images whose labels are among ``classes`` (in that order)."""
    model.eval()
    dev = next(model.parameters()).device
    x = images_to_tensor(images)
    pred = torch.cat([model(x[s:s + 1024].to(dev)).argmax(1).cpu() for s in range(0, len(x), 1024)])
    return float((np.asarray(classes)[pred.numpy()] == np.asarray(labels)).mean())


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save the ``state_dict`` (tensors only: loadable with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path
