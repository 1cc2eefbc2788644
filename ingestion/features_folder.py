"""Float features on disk: a folder of ``.npz`` parts, appendable, resumable, read without pickle.

Layout: ``meta.json`` (format, the backbone's name, weights, fingerprint and dimension) and
``part-*.npz`` files, each with ``ids int64 (n,)``, ``features float32 (n, dim)``, ``keys`` and
``labels`` (unicode; "" for no label) and, where the source can give its bytes, ``sha256`` (each
image file's digest: what lets ``ingest --features`` reuse a row only for the very same image).
Each part is written to a temporary name and renamed, so a
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
            _check_backbone(read_meta(self.directory), backbone, directory, "(or a new one)")
        else:
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta, indent=2))
            os.replace(tmp, meta_path)

    def write(self, ids: np.ndarray, features: np.ndarray, keys, labels, sha256=None) -> Path:
        """Write one part: ``ids int64 (n,)``, ``features float32 (n, dim)``, keys and labels (n each),
        and the image files' SHA-256 digests (hex, n) where known."""
        path = self.directory / f"part-{uuid.uuid4().hex}.npz"
        tmp = path.with_suffix(".tmp.npz")
        extra = {} if sha256 is None else {"sha256": np.array([str(d) for d in sha256], dtype=np.str_)}
        np.savez(tmp, ids=np.asarray(ids, np.int64), features=np.asarray(features, np.float32),
                 keys=np.array([str(k) for k in keys], dtype=np.str_),
                 labels=np.array(["" if v is None else str(v) for v in labels], dtype=np.str_), **extra)
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


def _check_backbone(meta: dict, backbone: dict, directory, wanted: str) -> None:
    """The folder (``meta``) holds ``backbone``'s features, else a one-line error."""
    if meta["backbone"].get("fingerprint") != backbone.get("fingerprint"):
        raise expected("features", f"a folder of {backbone.get('name')!r} features {wanted}",
                       f"{str(directory)!r} holding {meta['backbone'].get('name')!r} features with weights "
                       f"{meta['backbone'].get('weights')!r}")


def _parts(directory: Path) -> list[Path]:
    """The folder's finished parts, in name order (a ``.tmp.npz`` is a part being written)."""
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.glob("part-*.npz")) if not p.name.endswith(".tmp.npz")]


def _read_part(part: Path, *names: str, optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays ``names`` of one part (those in ``optional`` only where present), or a one-line
    error naming the part (never numpy's advice to load it with pickle)."""
    import zipfile

    try:
        with np.load(part, allow_pickle=False) as z:
            return {name: z[name] for name in names if name not in optional or name in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise expected("features", "a features folder written by milvus-hash (parts are .npz archives)",
                       f"{str(part)!r}, which cannot be read ({type(exc).__name__})") from None


def stored_ids(directory: str | Path) -> set[int]:
    """Ids already in a features folder (empty when it does not exist)."""
    directory = Path(directory).expanduser()
    out: set[int] = set()
    for part in _parts(directory):
        out.update(_read_part(part, "ids")["ids"].tolist())
    return out


def read_features(directory: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str | None], dict]:
    """``(ids int64 (n,), features float32 (n, dim), keys, labels, meta)``, one row per id, by id."""
    meta = read_meta(directory)
    parts = _parts(Path(directory).expanduser())
    ids, feats, keys, labels = [], [], [], []
    for part in parts:
        z = _read_part(part, "ids", "features", "keys", "labels")
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


class FeaturesIndex:
    """The rows of a features folder that can stand in for running the CNN: by key, with the image's
    SHA-256, for ``backbone`` (a folder of other features is refused). Holds the keys and digests of
    every part and at most two parts' features at a time (parts are read in the order rows are
    asked for, which is the source's order when the folder was written from the same source)."""

    def __init__(self, directory: str | Path, backbone: dict):
        self.directory = Path(directory).expanduser()
        _check_backbone(read_meta(self.directory), backbone, directory, "with the encoder's weights")
        self.parts = _parts(self.directory)
        self.rows: dict[str, tuple[int, int, str]] = {}
        for i, part in enumerate(self.parts):
            z = _read_part(part, "keys", "sha256", optional=("sha256",))
            if "sha256" not in z:  # written before digests were kept: not reusable
                continue
            for row, (key, digest) in enumerate(zip(z["keys"].tolist(), z["sha256"].tolist())):
                self.rows[key] = (i, row, digest)
        self._loaded: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, key: str, sha256: str | None) -> bool:
        """True when the folder holds ``key``'s features for the image of this digest."""
        hit = self.rows.get(key)
        return hit is not None and sha256 is not None and hit[2] == sha256

    def features(self, keys: list[str]) -> np.ndarray:
        """``float32 (n, dim)`` of ``keys`` (each one :meth:`has`)."""
        out = []
        for key in keys:
            part, row, _ = self.rows[key]
            if part not in self._loaded:
                if len(self._loaded) >= 2:
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[part] = _read_part(self.parts[part], "features")["features"]
            out.append(self._loaded[part][row])
        return np.stack(out).astype(np.float32, copy=False)


__all__ = ["FeaturesIndex", "FeaturesWriter", "read_features", "read_meta", "stored_ids"]
