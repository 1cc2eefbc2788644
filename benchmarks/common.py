"""Shared by the benchmark scripts: Fashion-MNIST features and cached UGH libraries."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.idx import load_fashion_mnist  # noqa: E402
from milvus_hash.ugh.library import UGHLibrary  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def pixel_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as the UGH issue's feature space (1): pixels in [0, 1], centred on the training
    mean, L2-normalised. Returns ``Xtrain (60000, 784), ytrain, Xtest (10000, 784), ytest``."""
    Xtr, ytr = load_fashion_mnist(split="train")
    Xte, yte = load_fashion_mnist(split="test")
    Xtr = Xtr.reshape(len(Xtr), -1).astype(np.float32) / 255.0
    Xte = Xte.reshape(len(Xte), -1).astype(np.float32) / 255.0
    mean = Xtr.mean(0)
    Xtr, Xte = Xtr - mean, Xte - mean
    Xtr /= np.maximum(np.linalg.norm(Xtr, axis=1, keepdims=True), 1e-12)
    Xte /= np.maximum(np.linalg.norm(Xte, axis=1, keepdims=True), 1e-12)
    return Xtr, ytr, Xte, yte


def cached_library(name: str, X: np.ndarray, *, n_rounds: int, n_jobs: int = 2, seed: int = 0,
                   refresh: bool = False, **params) -> tuple[UGHLibrary, float | None]:
    """Hyper-train a library on ``X`` or load it from ``benchmarks/results``; returns (library, seconds or None).

    ``refresh`` trains anew (and replaces the cached file) so that the time is measured."""
    path = RESULTS / f"ugh_{name}_D{n_rounds}_s{seed}.npz"
    if path.exists() and not refresh:
        return UGHLibrary.load(path), None
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lib = UGHLibrary(n_rounds=n_rounds, n_jobs=n_jobs, random_state=seed, progress=True, **params).fit(X)
    seconds = time.perf_counter() - t0
    lib.save(path)
    return lib, seconds
