"""Float features on disk: a folder of ``.npz`` parts, appendable, resumable, read without pickle.

Layout: ``meta.json`` (format, the backbone's name, weights, fingerprint and dimension) and
``part-*.npz`` files, each with ``ids int64 (n,)``, ``features float32 (n, dim)``, ``keys`` and
``labels`` (unicode; "" for no label). Each part is written to a temporary name and renamed, so a
crash never leaves half a part. Reading keeps one row per id (a rerun may have written an id twice,
with equal features), in id order.
Features of another backbone (other fingerprint) are refused.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from milvus_hash.errors import expected

FORMAT = 1


class FeaturesWriter:
    """Append parts to a features folder created for (or already holding) ``backbone``'s features."""

    def __init__(self, directory: str | Path, backbone: dict):
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise expected("features", "a folder path for the features", f"{str(directory)!r}, a file")
        self.directory.mkdir(parents=True, exist_ok=True)
        meta_path = self.directory / "meta.json"
        meta = {"format": FORMAT, "backbone": backbone}
        if meta_path.exists():
            old = read_meta(self.directory)
            if old["backbone"].get("fingerprint") != backbone.get("fingerprint"):
                raise expected("features", f"a folder of {backbone.get('name')!r} features (or a new one)",
                               f"{str(directory)!r} holding {old['backbone'].get('name')!r} features "
                               f"with weights {old['backbone'].get('weights')!r}")
        else:
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta, indent=2))
            os.replace(tmp, meta_path)

    def write(self, ids: np.ndarray, features: np.ndarray, keys, labels) -> Path:
        """Write one part: ``ids int64 (n,)``, ``features float32 (n, dim)``, keys and labels (n each)."""
        path = self.directory / f"part-{uuid.uuid4().hex}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.asarray(ids, np.int64), features=np.asarray(features, np.float32),
                 keys=np.array([str(k) for k in keys], dtype=np.str_),
                 labels=np.array(["" if v is None else str(v) for v in labels], dtype=np.str_))
        os.replace(tmp, path)
        return path


def read_meta(directory: str | Path) -> dict:
    path = Path(directory).expanduser() / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise expected("features", "a features folder written by `milvus-hash features` (with meta.json)",
                       f"{str(directory)!r} ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise expected("features", f"features format {FORMAT}", f"format {meta.get('format')!r}")
    return meta


def stored_ids(directory: str | Path) -> set[int]:
    """Ids already in a features folder (empty when it does not exist)."""
    directory = Path(directory).expanduser()
    out: set[int] = set()
    for part in sorted(directory.glob("part-*.npz")) if directory.is_dir() else []:
        if part.name.endswith(".tmp.npz"):
            continue
        with np.load(part, allow_pickle=False) as z:
            out.update(z["ids"].tolist())
    return out


def read_features(directory: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str | None], dict]:
    """``(ids int64 (n,), features float32 (n, dim), keys, labels, meta)``, one row per id, by id."""
    meta = read_meta(directory)
    parts = [p for p in sorted(Path(directory).expanduser().glob("part-*.npz")) if not p.name.endswith(".tmp.npz")]
    ids, feats, keys, labels = [], [], [], []
    for part in parts:
        with np.load(part, allow_pickle=False) as z:
            ids.append(z["ids"])
            feats.append(z["features"])
            keys.append(z["keys"])
            labels.append(z["labels"])
    if not ids:
        dim = int(meta["backbone"].get("dim", 0))
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32), [], [], meta
    ids_a = np.concatenate(ids)
    _, pick = np.unique(ids_a, return_index=True)
    X = np.concatenate(feats)[pick]
    k = np.concatenate(keys)[pick].tolist()
    lab = [v or None for v in np.concatenate(labels)[pick].tolist()]
    return ids_a[pick], X, k, lab, meta


__all__ = ["FeaturesWriter", "read_features", "read_meta", "stored_ids"]
