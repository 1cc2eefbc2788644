"""Shared by the benchmark scripts: Fashion-MNIST features and cached UGH libraries."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.idx import load_fashion_mnist  # noqa: E402
from milvus_hash.encoders.ugh.library import UGHLibrary  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: The base CNN of the UGH issue's second feature space: trained with labels on these classes only.
BASE_CLASSES = (0, 1, 2, 3, 4)
BASE_CNN = RESULTS / "small_cnn_fmnist_classes0-4.pt"


def pixel_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as the UGH issue's feature space (1): pixels in [0, 1], centred on the training
    mean, L2-normalised. Returns ``Xtrain (60000, 784), ytrain, Xtest (10000, 784), ytest``."""
    Xtr, ytr = load_fashion_mnist(split="train")
    Xte, yte = load_fashion_mnist(split="test")
    Xtr, Xte = _centre_normalise(Xtr.reshape(len(Xtr), -1).astype(np.float32) / 255.0,
                                 Xte.reshape(len(Xte), -1).astype(np.float32) / 255.0)
    return Xtr, ytr, Xte, yte


def _centre_normalise(Xtr: np.ndarray, Xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = Xtr.mean(0)
    Xtr, Xte = Xtr - mean, Xte - mean
    Xtr /= np.maximum(np.linalg.norm(Xtr, axis=1, keepdims=True), 1e-12)
    Xte /= np.maximum(np.linalg.norm(Xte, axis=1, keepdims=True), 1e-12)
    return Xtr, Xte


def cnn_features(weights=BASE_CNN) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST through the base CNN (``benchmarks/base_cnn.py``), loaded with
    ``get_backbone("small_cnn", weights=path)`` and fed through its own transform, as the pipeline
    does; its 256-D features centred on the training mean and L2-normalised (like the pixels).
    Cached in ``benchmarks/results``. Returns ``Xtrain (60000, 256), ytrain, Xtest (10000, 256), ytest``."""
    import torch
    from PIL import Image

    from milvus_hash.features import get_backbone

    if not Path(weights).exists():
        raise SystemExit(f"{weights} is missing: run benchmarks/base_cnn.py first")
    cache = RESULTS / f"features_{Path(weights).stem}.npz"
    backbone = get_backbone("small_cnn", weights=weights)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) == backbone.fingerprint:
                Xtr, Xte = _centre_normalise(z["Xtr"], z["Xte"])
                return Xtr, z["ytr"], Xte, z["yte"]
    feats = {}
    for split in ("train", "test"):
        X, y = load_fashion_mnist(split=split)
        out = []
        for s in range(0, len(X), 1000):
            batch = torch.stack([backbone.transform(Image.fromarray(im)) for im in X[s:s + 1000]])
            out.append(backbone(batch).numpy())
        feats[split] = (np.concatenate(out), y)
    np.savez(cache, Xtr=feats["train"][0], ytr=feats["train"][1], Xte=feats["test"][0], yte=feats["test"][1],
             fingerprint=backbone.fingerprint)
    Xtr, Xte = _centre_normalise(feats["train"][0], feats["test"][0])
    return Xtr, feats["train"][1], Xte, feats["test"][1]


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


def export_features(name: str, X: np.ndarray, y: np.ndarray, split: str) -> Path:
    """Write benchmark features as a features folder (``benchmarks/results/features_{name}_{split}``),
    rows keyed ``{split}#{i}``, so that ``milvus-hash eval`` runs on exactly these arrays. Rewritten
    when the arrays change (their fingerprint is the folder's backbone record)."""
    import shutil

    from ingestion.features_folder import FeaturesWriter, read_meta
    from ingestion.sources import item_id
    from milvus_hash.encoders.spec import fingerprint

    out = RESULTS / f"features_{name}_{split}"
    fp = fingerprint(X, np.asarray(y))
    if (out / "meta.json").is_file() and read_meta(out)["backbone"].get("fingerprint") == fp:
        return out
    shutil.rmtree(out, ignore_errors=True)
    keys = [f"{split}#{i}" for i in range(len(X))]
    writer = FeaturesWriter(out, {"name": f"benchmark {name}", "weights": "none", "fingerprint": fp,
                                  "dim": int(X.shape[1])})
    for s in range(0, len(X), 10_000):
        writer.write(np.array([item_id(k) for k in keys[s:s + 10_000]], np.int64), X[s:s + 10_000],
                     keys[s:s + 10_000], [str(v) for v in y[s:s + 10_000]])
    return out


def percentiles(ms) -> dict:
    """``{"p50_ms", "p99_ms"}`` of latencies in milliseconds."""
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def drop_collections(uri: str, prefix: str) -> None:
    """Drop a benchmark's collections (those whose names start with ``prefix``)."""
    from milvus_hash import HashStore

    with HashStore(uri) as store:
        for c in store.list_collections():
            if c.startswith(prefix):
                store.drop_collection(c)


def effnet_features(per_class_db: int = 1500, per_class_q: int = 300) -> dict[str, np.ndarray]:
    """Fashion-MNIST through the default backbone (EfficientNet-Lite0, the ImageNet weights installed
    with milvus-hash), as the pipeline extracts them: ``per_class_db`` training images of each class
    (the database), the next ``per_class_q`` (held-out training queries, for tuning) and the first
    ``per_class_q`` test images of each class (the test queries). Cached in ``benchmarks/results``.
    Returns ``{"Xdb", "ydb", "Xval", "yval", "Xte", "yte"}`` (features L2-normalised)."""
    from PIL import Image

    from milvus_hash.features import get_backbone

    backbone = get_backbone("efficientnet_lite0", "DEFAULT")
    cache = RESULTS / f"features_effnet_fmnist_{per_class_db}_{per_class_q}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) == backbone.fingerprint:
                return {k: z[k] for k in ("Xdb", "ydb", "Xval", "yval", "Xte", "yte")}
    Xtr, ytr = load_fashion_mnist(split="train")
    Xte, yte = load_fashion_mnist(split="test")
    parts = {"db": (Xtr, np.concatenate([np.flatnonzero(ytr == c)[:per_class_db] for c in range(10)])),
             "val": (Xtr, np.concatenate([np.flatnonzero(ytr == c)[per_class_db:per_class_db + per_class_q]
                                          for c in range(10)])),
             "te": (Xte, np.concatenate([np.flatnonzero(yte == c)[:per_class_q] for c in range(10)]))}
    out = {}
    t0 = time.perf_counter()
    for name, (X, rows) in parts.items():
        feats = []
        for s in range(0, len(rows), 64):
            feats.append(backbone.extract([Image.fromarray(X[i], mode="L") for i in rows[s:s + 64]]))
            if s % 1280 == 0:
                print(f"  {name}: {s + len(feats[-1]):,}/{len(rows):,} images, {time.perf_counter() - t0:.0f} s",
                      flush=True)
        F = np.concatenate(feats).astype(np.float32)
        out[f"X{name}"] = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
        out[f"y{name}"] = (ytr if X is Xtr else yte)[rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out, fingerprint=backbone.fingerprint)
    return out
