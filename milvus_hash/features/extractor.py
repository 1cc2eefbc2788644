"""What identifies a backbone's features, and an extractor for images in memory that imports only
what it needs: :func:`get_extractor` gives the numpy :class:`~.pixels.PixelExtractor` for
``pixels`` (no torch: a query of one picture answers in about a second) and the CNN backbones of
:func:`~.backbones.get_backbone` otherwise."""

from __future__ import annotations


def backbone_record(backbone) -> dict:
    """What identifies a backbone's features (name, weights, fingerprint, dim): encoders fitted on
    them and features folders record it, so the same backbone is used again."""
    return {"name": backbone.name, "weights": backbone.weights, "fingerprint": backbone.fingerprint,
            "dim": backbone.dim}


def record_arguments(record: dict) -> dict:
    """``get_backbone``'s ``name``, ``weights`` and ``size`` that reload the backbone a record
    (:func:`backbone_record`: name, weights, fingerprint, dim) describes."""
    recorded = record.get("weights")
    if recorded in (None, "random", "none"):
        weights = None
    elif "_Weights." in str(recorded):  # a torchvision enum member, e.g. ResNet50_Weights.IMAGENET1K_V2
        weights = str(recorded).rsplit(".", 1)[-1]
    else:
        weights = str(recorded)
    size = int(round(record.get("dim", 784) ** 0.5)) if record["name"] == "pixels" else 28
    return {"name": record["name"], "weights": weights, "size": size}


def get_extractor(name: str, weights="DEFAULT", *, device="auto", ten_crop: bool = False, size: int = 28):
    """An object with ``extract(images) -> float32 (n, dim)`` and a backbone's ``name``, ``weights``,
    ``dim`` and ``fingerprint``: :class:`~.pixels.PixelExtractor` for ``"pixels"`` (torch is not
    imported), else :func:`~.backbones.get_backbone` with the same arguments."""
    if name == "pixels":
        from ..errors import expected
        from .pixels import PixelExtractor

        if weights not in (None, "DEFAULT"):
            raise expected("weights", "None (the pixels extractor has no weights)", repr(weights))
        if device not in (None, "auto", "cpu"):  # checked as get_backbone does, and then unused
            from .backbones import resolve_device

            resolve_device(device)
        return PixelExtractor(size)
    from .backbones import get_backbone

    return get_backbone(name, weights, device=device, ten_crop=ten_crop, size=size)


__all__ = ["backbone_record", "get_extractor", "record_arguments"]
