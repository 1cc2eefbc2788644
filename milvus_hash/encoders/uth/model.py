"""The UTH network: a CNN trunk, then the hash layer of K units and its activation.

``HashNet(x)`` returns the hash-layer outputs ``float (n, K)``; a bit is 1 where the output is
``>= 0.5``. The paper (and DeepBit) put a ReLU after the hash layer; ``activation="sigmoid"`` is the
other common choice. ``batchnorm=True`` normalises the hash layer's pre-activations (BatchNorm1d) so
that each unit starts centred on the threshold's side of zero and bits do not collapse to a
constant early in training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import expected

ACTIVATIONS = ("relu", "sigmoid")


class HashNet(nn.Module):
    """``trunk`` (``module(x)["features"]``: ``(n, feature_dim)``) -> Linear(K) [-> BatchNorm1d] -> activation."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_bits: int, *, activation: str = "relu",
                 batchnorm: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise expected("activation", f"one of {ACTIVATIONS}", repr(activation))
        self.trunk = trunk
        self.hash = nn.Linear(feature_dim, n_bits)
        nn.init.normal_(self.hash.weight, std=1.0 / math.sqrt(feature_dim))
        nn.init.zeros_(self.hash.bias)
        self.norm = nn.BatchNorm1d(n_bits) if batchnorm else nn.Identity()
        self.act = nn.ReLU() if activation == "relu" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)
        feats = feats["features"] if isinstance(feats, dict) else feats
        return self.act(self.norm(self.hash(feats.flatten(1))))


def rotate(x: torch.Tensor, degrees: torch.Tensor, *, fill: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x (n, C, H, W)`` about its centre by ``degrees (n,)`` (bilinear);
    uncovered corners take ``fill (C,)``, the normalised value of black."""
    theta = torch.deg2rad(degrees.to(x.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = nn.functional.affine_grid(mat, list(x.shape), align_corners=False)
    f = fill.to(x.device, x.dtype).view(1, -1, 1, 1)
    return nn.functional.grid_sample(x - f, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + f


__all__ = ["ACTIVATIONS", "HashNet", "rotate"]
