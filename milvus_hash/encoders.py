"""Encoder files: load whichever encoder a file holds, and the backbone it expects.

Encoders save themselves without pickle (``.npz``); :func:`load_encoder` tells them apart by the
kind they record. An encoder fitted through the CLI also records the backbone whose features it
was fitted on (``features_``: name, weights, fingerprint, dim), so ingestion can use the same one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import expected


def encoder_kind(path: str | Path) -> str:
    """``"ugh"``, ``"lsh"``... of an encoder file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise expected("encoder", "an existing encoder file (.npz)", f"{str(path)!r}, which is no file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" in data and "kind" not in data:
                return str(json.loads(str(data["meta"])).get("kind"))
            if "kind" in data:
                return str(data["kind"])
    except (OSError, ValueError) as exc:
        raise expected("encoder", "an encoder .npz file written by milvus-hash", f"{path} ({exc})") from exc
    raise expected("encoder", "an encoder .npz file written by milvus-hash", f"{path} (no kind recorded)")


def load_encoder(path: str | Path):
    """The fitted encoder saved at ``path`` (UGH library or LSH hasher)."""
    kind = encoder_kind(path)
    if kind == "ugh":
        from .ugh.library import UGHLibrary

        return UGHLibrary.load(path)
    if kind == "lsh":
        from .lsh import LSHHasher

        return LSHHasher.load(path)
    raise expected("encoder", "a file of kind 'ugh' or 'lsh'", f"kind {kind!r} in {path}")


def encoder_backbone(encoder) -> dict | None:
    """The backbone record the encoder was fitted on, or None when it has none."""
    return getattr(encoder, "features_", None)


__all__ = ["encoder_backbone", "encoder_kind", "load_encoder"]
