"""Encoder files: load whichever encoder a file holds, and the backbone it expects.

Encoders save themselves without pickle (``.npz``; the UTH network as a ``torch.save`` file of
tensors read with ``weights_only=True``); :func:`load_encoder` tells them apart by the kind they record. An encoder fitted through the CLI also records the backbone whose features it
was fitted on (``features_``: name, weights, fingerprint, dim), so ingestion can use the same one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import expected


def encoder_kind(path: str | Path) -> str:
    """``"ugh"``, ``"lsh"``, ``"uth"`` of an encoder file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise expected("encoder", "an existing encoder file (.npz, or .pt for UTH)", f"{str(path)!r}, which is no file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK" and not _is_npz(path):  # torch.save's zip format
        import torch

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise expected("encoder", "an encoder file written by milvus-hash", f"{path} ({exc})") from exc
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            return data["kind"]
        raise expected("encoder", "an encoder file written by milvus-hash", f"{path} (no kind recorded)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" in data and "kind" not in data:
                return str(json.loads(str(data["meta"])).get("kind"))
            if "kind" in data:
                return str(data["kind"])
    except (OSError, ValueError) as exc:  # numpy's own words would suggest loading it with pickle
        raise expected("encoder", "an encoder .npz file written by milvus-hash",
                       f"{path} (not a readable .npz archive)") from exc
    raise expected("encoder", "an encoder .npz file written by milvus-hash", f"{path} (no kind recorded)")


def _is_npz(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith(".npy") for name in zf.namelist())
    except zipfile.BadZipFile:
        return False


def load_encoder(path: str | Path, *, device="auto"):
    """The fitted encoder saved at ``path`` (UGH library, LSH hasher or UTH network; ``device`` is the
    UTH network's)."""
    kind = encoder_kind(path)
    if kind == "uth":
        from .uth import UTHEncoder

        return UTHEncoder.load(path, device=device)
    if kind == "ugh":
        from .ugh.library import UGHLibrary

        return UGHLibrary.load(path, argument="encoder")
    if kind == "lsh":
        from .lsh import LSHHasher

        return LSHHasher.load(path, argument="encoder")
    raise expected("encoder", "a file of kind 'ugh', 'lsh' or 'uth'", f"kind {kind!r} in {path}")


def encoder_backbone(encoder) -> dict | None:
    """The backbone record the encoder was fitted on, or None when it has none."""
    return getattr(encoder, "features_", None)


__all__ = ["encoder_backbone", "encoder_kind", "load_encoder"]
