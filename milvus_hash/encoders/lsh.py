"""Locality-sensitive hashing by signed random projections: the simplest encoder and a baseline.

Bit ``j`` of a code is ``1`` where ``(x - mean) . w_j >= 0`` with ``w_j`` drawn from a standard
normal (Charikar 2002). It needs no labels and no training beyond the mean, so it serves as the
reference every learned encoder must beat, and as the encoder of the store round-trip demo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..codes import check_n_bits, pack_bits
from ..errors import expected
from .base import Estimator
from .spec import EncoderSpec, fingerprint
from .validation import check_features, check_fitted, fitted_features


class LSHHasher(Estimator):
    """Signed random projections.

    Args:
        n_bits: code length, a multiple of 8.
        center: subtract the training mean before projecting (recommended for non-centred data).
        random_state: seed of the projections.

    Attributes:
        mean_: ``float32 (n_features,)`` (zeros when ``center=False``).
        components_: ``float32 (n_features, n_bits)`` projection directions.
        n_features_in_: feature count seen by ``fit``.
    """

    def __init__(self, n_bits: int = 64, *, center: bool = True, random_state: int | None = 0):
        self.n_bits = n_bits
        self.center = center
        self.random_state = random_state

    def fit(self, X, y=None) -> "LSHHasher":
        n_bits = check_n_bits(self.n_bits)
        X = check_features(X)
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.mean_ = (X.mean(axis=0) if self.center else np.zeros(X.shape[1])).astype(np.float32)
        self.components_ = rng.standard_normal((X.shape[1], n_bits)).astype(np.float32)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Projections ``float32 (n, n_bits)``; a bit is 1 where its projection is >= 0."""
        X = fitted_features(self, X, "components_")
        return (X.astype(np.float32, copy=False) - self.mean_) @ self.components_

    def transform(self, X) -> np.ndarray:
        """Packed codes ``uint8 (n, n_bits // 8)``."""
        return pack_bits(self.decision_function(X) >= 0)

    def encoder_spec(self) -> EncoderSpec:
        check_fitted(self, "components_")
        return EncoderSpec("lsh", fingerprint(self.mean_, self.components_, kind="lsh"), int(self.n_bits))

    def save(self, path: str | Path) -> None:
        """Write the fitted hasher to an ``.npz`` file (no pickle)."""
        check_fitted(self, "components_")
        np.savez(path, kind=np.array("lsh"), n_bits=np.array(self.n_bits), center=np.array(self.center),
                 mean=self.mean_, components=self.components_,
                 meta=np.array(json.dumps({"features": getattr(self, "features_", None)})))

    @classmethod
    def load(cls, path: str | Path, *, argument: str = "path") -> "LSHHasher":
        """The LSHHasher saved at ``path`` (``argument``: how errors name the file)."""
        from ..npz import read_npz

        data = read_npz(path, argument=argument, what="an LSH hasher file written by LSHHasher.save")
        if str(data.get("kind")) != "lsh":
            raise expected(argument, "an LSH hasher file", f"a file of kind {str(data.get('kind'))!r}")
        try:
            self = cls(n_bits=int(data["n_bits"]), center=bool(data["center"]), random_state=None)
            self.mean_, self.components_ = data["mean"], data["components"]
            features = json.loads(str(data["meta"])).get("features") if "meta" in data else None
        except (KeyError, TypeError, ValueError) as exc:
            raise expected(argument, "an LSH hasher file written by LSHHasher.save",
                           f"{str(path)!r}, missing or malformed {exc}") from None
        if features:
            self.features_ = features
        self.n_features_in_ = self.components_.shape[0]
        return self
