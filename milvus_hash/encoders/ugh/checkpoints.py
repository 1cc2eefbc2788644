"""Finished hyper-training rounds kept on disk, so a crashed ``UGHLibrary.fit`` resumes.

A folder holds ``run.json`` (what the rounds depend on: the round parameters, the seed, the device
and the SHA-256 of the features) and one ``round-NNNNN.npz`` per finished round (``W``, ``a``,
``b`` and the history as JSON; written to a temporary name and renamed, so a crash never leaves
half a round). A folder from another run (other features or parameters) is emptied and reused.
Round ``i``'s seed depends on ``i`` alone, so a fit with more rounds reuses the first ones too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ...errors import expected
from .hypertrain import RoundResult


class RoundCheckpoints:
    def __init__(self, directory, X: np.ndarray, params, random_state, device: str):
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise expected("checkpoint_dir", "a folder for the finished rounds", f"{str(directory)!r}, a file")
        self.directory.mkdir(parents=True, exist_ok=True)
        run = {"params": dataclasses.asdict(params), "random_state": random_state, "device": str(device),
               "features_sha256": hashlib.sha256(np.ascontiguousarray(X).data).hexdigest(),
               "features_shape": list(X.shape), "features_dtype": str(X.dtype)}
        path = self.directory / "run.json"
        try:
            old = json.loads(path.read_text()) if path.exists() else None
        except ValueError:
            old = None
        if old != run:
            for f in self.directory.glob("round-*.npz"):
                f.unlink()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(run, indent=2))
            os.replace(tmp, path)

    def _path(self, i: int) -> Path:
        return self.directory / f"round-{i:05d}.npz"

    def load_all(self, n_rounds: int) -> dict[int, RoundResult]:
        """The finished rounds among the first ``n_rounds`` (an unreadable file is computed again)."""
        out = {}
        for i in range(n_rounds):
            path = self._path(i)
            if not path.exists():
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    out[i] = RoundResult(z["W"], z["a"], z["b"], json.loads(str(z["history"])))
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
        return out

    def save(self, i: int, result: RoundResult) -> None:
        path = self._path(i)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, W=result.W, a=result.a, b=result.b,
                 history=np.array(json.dumps(result.history, default=_plain)))
        os.replace(tmp, path)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a round's history")


__all__ = ["RoundCheckpoints"]
