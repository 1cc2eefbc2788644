"""UTH training: two stages, SGD with momentum, checkpoints every epoch, resumable.

Stage 1 (``stage1_epochs``): quantization + entropy losses on the original images. Stage 2
(``stage2_epochs``): the triplet loss added, on triplets built in each batch: the anchor, its
rotation by one of ``rotations`` degrees (drawn per image), and a random other image of the batch
(the batch is shuffled, so the image next to it). All layers are updated in both stages.

Each epoch draws its shuffling, angles and dropout from ``seed`` and the epoch number only, so a run
resumed from a checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from ...errors import expected
from .losses import uth_loss
from .model import rotate


@dataclass
class TrainSettings:
    """The hyper-parameters of training (``configs/uth.yaml``'s ``train`` section)."""

    alpha: float = 1.0
    beta: float = 1.0
    margin: float = 1.0
    rotations: tuple[float, ...] = (-10.0, -5.0, 5.0, 10.0)
    stage1_epochs: int = 1
    stage2_epochs: int = 3
    lr: float = 0.001
    stage2_lr: float = 0.0001
    schedule: str = "step"  # "step": x0.1 at each stage's half (DeepBit); "cosine": to 0 over each stage
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "margin", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise expected(name, "a finite number >= 0", repr(v))
        for name in ("lr", "stage2_lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 < v < 10):
                raise expected(name, "a learning rate > 0", repr(v))
        if not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise expected("momentum", "a number in [0, 1)", repr(self.momentum))
        for name in ("stage1_epochs", "stage2_epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise expected(name, "an int >= 0", repr(v))
        if self.stage1_epochs + self.stage2_epochs < 1:
            raise expected("stage1_epochs + stage2_epochs", "at least one epoch", 0)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 4:
            raise expected("batch_size", "an int >= 4 (BatchNorm and in-batch negatives need several images)",
                           repr(self.batch_size))
        try:
            self.rotations = tuple(float(r) for r in self.rotations)
        except (TypeError, ValueError):
            raise expected("rotations", "a list of angles in degrees", repr(self.rotations)) from None
        if self.stage2_epochs and (not self.rotations or any(not -180 < r < 180 or r == 0 for r in self.rotations)):
            raise expected("rotations", "non-zero angles in (-180, 180) degrees", repr(self.rotations))
        if self.schedule not in ("step", "cosine"):
            raise expected("schedule", "'step' or 'cosine'", repr(self.schedule))

    @property
    def epochs(self) -> int:
        return self.stage1_epochs + self.stage2_epochs

    def stage(self, epoch: int) -> int:
        return 1 if epoch < self.stage1_epochs else 2

    def lr_at(self, epoch: int, step: int, steps: int) -> float:
        """Learning rate at batch ``step`` of ``steps`` in (0-based) ``epoch``."""
        first = epoch < self.stage1_epochs
        base = self.lr if first else self.stage2_lr
        n = self.stage1_epochs if first else self.stage2_epochs
        t = ((epoch if first else epoch - self.stage1_epochs) + step / max(steps, 1)) / max(n, 1)
        if self.schedule == "cosine":
            return base * 0.5 * (1 + math.cos(math.pi * t))
        return base if t < 0.5 else base * 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rotations"] = list(self.rotations)
        return d


@dataclass
class EpochLog:
    epoch: int
    stage: int
    lr: float
    seconds: float
    losses: dict = field(default_factory=dict)

    def line(self, epochs: int) -> str:
        parts = ", ".join(f"{k} {v:.4f}" for k, v in self.losses.items())
        return f"epoch {self.epoch + 1}/{epochs} (stage {self.stage}): {parts}; lr {self.lr:.2g}; {self.seconds:.0f} s"


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * (epoch + 1)) % (2**63 - 1)


_CKPT = re.compile(r"^epoch-(\d{4})\.pt$")


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint of the highest epoch in ``directory``, or None."""
    directory = Path(directory)
    found = sorted((int(m.group(1)), p) for p in directory.glob("epoch-*.pt") if (m := _CKPT.match(p.name)))
    return found[-1][1] if found else None


def _save_checkpoint(directory: Path, epoch: int, net: nn.Module, opt, identity: dict, history: list) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"epoch-{epoch + 1:04d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"epoch": epoch + 1, "identity": json.dumps(identity, sort_keys=True),
                "history": json.dumps([asdict(h) for h in history]),
                "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "optimizer": opt.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise expected("checkpoint", "an existing checkpoint file (epoch-NNNN.pt)", f"{str(path)!r}, which is no file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise expected("checkpoint", "a UTH training checkpoint", f"{path} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or not {"epoch", "identity", "model", "optimizer"} <= set(ckpt):
        raise expected("checkpoint", "a UTH training checkpoint (epoch, identity, model, optimizer)", str(path))
    return ckpt


def train(net: nn.Module, batches: Callable[[int, torch.Generator], Iterable[torch.Tensor]], n_batches: int, *,
          settings: TrainSettings, fill: torch.Tensor, device: torch.device, seed: int = 0,
          checkpoint_dir: str | Path | None = None, resume: bool = False, identity: dict | None = None,
          progress: bool = True, log: Callable[[str], None] = print) -> list[EpochLog]:
    """Train ``net`` in place; returns the per-epoch log.

    Args:
        batches: ``batches(epoch, generator)`` yields normalised image batches ``float (b, C, H, W)``
            in an order drawn from ``generator``.
        n_batches: batches per epoch (for the schedule and the progress bar).
        fill: ``(C,)`` normalised value of black (the rotations' uncovered corners).
        checkpoint_dir: write ``epoch-NNNN.pt`` there after every epoch.
        resume: continue from the newest checkpoint in ``checkpoint_dir`` (which must describe the
            same network and settings: ``identity``).
    """
    from tqdm.auto import tqdm

    identity = identity or {}
    net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    history: list[EpochLog] = []
    start = 0
    if resume:
        if checkpoint_dir is None:
            raise expected("resume", "a checkpoint_dir to resume from", "resume=True without checkpoint_dir")
        path = latest_checkpoint(checkpoint_dir)
        if path is None:
            log(f"no checkpoint in {checkpoint_dir}: starting from the first epoch")
        else:
            ckpt = load_checkpoint(path)
            if json.loads(ckpt["identity"]) != json.loads(json.dumps(identity, sort_keys=True)):
                raise expected("resume", f"checkpoints of the same network and settings in {checkpoint_dir}",
                               f"{path.name} of another run: {ckpt['identity'][:300]}")
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            history = [EpochLog(**h) for h in json.loads(ckpt["history"])]
            start = int(ckpt["epoch"])
            log(f"resumed from {path} (epoch {start}/{settings.epochs})")
    rotations = torch.tensor(settings.rotations or (0.0,), dtype=torch.float32)
    for epoch in range(start, settings.epochs):
        stage = settings.stage(epoch)
        gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        torch.manual_seed(_epoch_seed(seed, epoch))
        net.train()
        sums: dict[str, float] = {}
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(total=n_batches, desc=f"UTH epoch {epoch + 1}/{settings.epochs} stage {stage}", unit="batch",
                   disable=not progress, dynamic_ncols=True, leave=False)
        lr = settings.lr_at(epoch, 0, n_batches)
        for step, x in enumerate(batches(epoch, gen)):
            if x.shape[0] < 2:
                continue
            lr = settings.lr_at(epoch, step, n_batches)
            for group in opt.param_groups:
                group["lr"] = lr
            x = x.to(device, non_blocking=True)
            if stage == 1:
                parts = uth_loss(net(x), alpha=settings.alpha, beta=settings.beta, margin=settings.margin)
            else:
                angles = rotations[torch.randint(len(rotations), (x.shape[0],), generator=gen)]
                h = net(torch.cat([x, rotate(x, angles.to(device), fill=fill)]))
                anchor, positive = h[: x.shape[0]], h[x.shape[0]:]
                parts = uth_loss(anchor, positive, anchor.roll(1, 0), alpha=settings.alpha, beta=settings.beta,
                                 margin=settings.margin)
            opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            opt.step()
            n = x.shape[0]
            seen += n
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
            bar.update(1)
            bar.set_postfix({k: f"{v / seen:.3f}" for k, v in sums.items()}, refresh=False)
        bar.close()
        if not seen:
            raise expected("images", "at least 2 readable images per batch", "none")
        entry = EpochLog(epoch, stage, lr, time.perf_counter() - t0, {k: v / seen for k, v in sums.items()})
        history.append(entry)
        log(entry.line(settings.epochs))
        if checkpoint_dir is not None:
            _save_checkpoint(Path(checkpoint_dir), epoch, net, opt, identity, history)
    net.eval()
    return history


def shuffled_batches(x: torch.Tensor, batch_size: int) -> Callable[[int, torch.Generator], Iterator[torch.Tensor]]:
    """``batches`` for :func:`train` over an in-memory tensor ``(n, C, H, W)``."""

    def batches(epoch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            yield x[idx]

    return batches


__all__ = ["EpochLog", "TrainSettings", "latest_checkpoint", "load_checkpoint", "shuffled_batches", "train"]
