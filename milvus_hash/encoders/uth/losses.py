"""UTH's three losses (Section 3 of the UTH paper; DeepBit, Lin et al., CVPR 2016).

All take hash-layer outputs ``h`` of shape ``(n, K)`` (float tensors; a bit is 1 where ``h >= 0.5``)
and return a scalar tensor that back-propagates:

- :func:`triplet_loss` ``mean_i max(0, ||a_i - p_i||_2 - ||a_i - r_i||_2 + margin)``, with ``a`` the
  anchors' outputs, ``p`` their rotations' (positives) and ``r`` random other images' (negatives);
- :func:`quantization_loss` ``mean_{i,k} (h_ik - b_ik)^2`` with ``b = 1[h >= 0.5]`` (no gradient
  through ``b``): pushes every output to 0 or 1;
- :func:`entropy_loss` ``sum_k (mean_i h_ik - 0.5)^2``: each bit's batch mean near 0.5, so every
  bit is on for about half of the images (the even distribution that maximises a bit's entropy).

:func:`uth_loss` combines them: ``triplet + alpha * quantization + beta * entropy``.
"""

from __future__ import annotations

import torch

from ...errors import expected


def _check(name: str, h: torch.Tensor) -> None:
    if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[0] < 1:
        raise expected(name, "a float tensor of shape (n, K), n >= 1",
                       f"{type(h).__name__} of shape {tuple(getattr(h, 'shape', ()))}")


def binarize(h: torch.Tensor) -> torch.Tensor:
    """``1[h >= 0.5]`` as ``h``'s dtype, without gradient."""
    return (h.detach() >= 0.5).to(h.dtype)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *,
                 margin: float = 1.0) -> torch.Tensor:
    """Margin triplet loss on Euclidean distances between hash-layer outputs (mean over the batch)."""
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        _check(name, t)
    if positive.shape != anchor.shape or negative.shape != anchor.shape:
        raise expected("positive, negative", f"the anchor's shape {tuple(anchor.shape)}",
                       f"{tuple(positive.shape)} and {tuple(negative.shape)}")
    d_pos = (anchor - positive).pow(2).sum(1).clamp_min(1e-12).sqrt()
    d_neg = (anchor - negative).pow(2).sum(1).clamp_min(1e-12).sqrt()
    return torch.relu(d_pos - d_neg + margin).mean()


def quantization_loss(h: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the outputs and their binarised codes."""
    _check("h", h)
    return (h - binarize(h)).pow(2).mean()


def entropy_loss(h: torch.Tensor) -> torch.Tensor:
    """Sum over bits of the squared distance of the bit's batch mean from 0.5."""
    _check("h", h)
    return (h.mean(0) - 0.5).pow(2).sum()


def uth_loss(anchor: torch.Tensor, positive: torch.Tensor | None = None, negative: torch.Tensor | None = None, *,
             alpha: float = 1.0, beta: float = 1.0, margin: float = 1.0) -> dict[str, torch.Tensor]:
    """The total loss and its parts: ``{"total", "triplet", "quantization", "entropy"}``.

    Without ``positive``/``negative`` (the first training stage) the triplet part is 0. The
    quantization and entropy parts are computed on the anchors' outputs.
    """
    quant, ent = quantization_loss(anchor), entropy_loss(anchor)
    if positive is None and negative is None:
        trip = anchor.new_zeros(())
    elif positive is None or negative is None:
        raise expected("positive, negative", "both or neither", "only one of them")
    else:
        trip = triplet_loss(anchor, positive, negative, margin=margin)
    return {"total": trip + alpha * quant + beta * ent, "triplet": trip, "quantization": quant, "entropy": ent}


__all__ = ["binarize", "entropy_loss", "quantization_loss", "triplet_loss", "uth_loss"]
