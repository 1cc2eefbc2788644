"""The round trip that shows a store works: real images to codes, into Milvus, searched back.

Uses scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, shipped with the
package, so it runs offline), pixel features, and a signed-random-projection (LSH) encoder. The
ingest-and-query demo of the ingestion issue replaces the LSH encoder with a learned one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from milvus_hash import HashStore, hamming_topk
from milvus_hash.lsh import LSHHasher


@dataclass
class DemoReport:
    collection: str
    n_items: int
    n_bits: int
    written: int
    write_seconds: float
    search_seconds: float
    queries: list[dict]
    mean_precision: float
    matches_numpy: bool


def digits_features() -> tuple[np.ndarray, np.ndarray]:
    """Digits as L2-normalised, centred pixel vectors ``float32 (1797, 64)`` and labels ``(1797,)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = data.data.astype(np.float32) / 16.0
    X -= X.mean(axis=0)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X, data.target.astype(np.int64)


def run_demo(store: HashStore, *, collection: str = "demo_digits", n_bits: int = 64, k: int = 10,
             n_queries: int = 5, seed: int = 0) -> DemoReport:
    X, y = digits_features()
    hasher = LSHHasher(n_bits=n_bits, random_state=seed).fit(X)
    codes = hasher.transform(X)
    spec = hasher.encoder_spec()
    ids = np.arange(len(X), dtype=np.int64)
    store.create_collection(collection, encoder=spec)
    t0 = time.perf_counter()
    written = store.upsert(collection, ids=ids, codes=codes, encoder=spec,
                           sources=[f"sklearn-digits/{i:04d}.png" for i in ids], labels=y.tolist(),
                           metadata=[{"dataset": "sklearn-digits"}] * len(ids))
    write_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    qidx = rng.choice(len(X), size=n_queries, replace=False)
    t0 = time.perf_counter()
    res = store.search(collection, codes=codes[qidx], k=k + 1, ties="id", output_fields=["label"], encoder=spec)
    search_s = time.perf_counter() - t0
    ref = hamming_topk(codes[qidx], codes, k + 1, ids=ids)
    queries, precisions = [], []
    for row, q in enumerate(qidx):
        keep = res.ids[row] != q  # the query itself is in the collection: leave it out
        hit_ids = res.ids[row][keep][:k]
        hit_labels = [int(f["label"]) for f, kp in zip(res.fields[row], keep) if kp][:k]
        precision = float(np.mean(np.array(hit_labels) == y[q]))
        precisions.append(precision)
        queries.append({"id": int(q), "label": int(y[q]), "hits": hit_ids.tolist(), "hit_labels": hit_labels,
                        "distances": res.distances[row][keep][:k].tolist(), "precision": precision})
    return DemoReport(collection, len(X), n_bits, written, write_s, search_s, queries,
                      float(np.mean(precisions)),
                      bool((res.ids == ref.ids).all() and (res.distances == ref.distances).all()))
