"""The speed report: encoding images/s, search queries/s (numpy and Milvus), index build time, memory."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ..codes import hamming_topk
from ..encoders.spec import EncoderSpec


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def search_speed(query_codes: np.ndarray, db_codes: np.ndarray, *, k: int = 100, store=None) -> dict:
    """Top-``k`` queries per second in numpy and through Milvus (``store``; a temporary Milvus Lite
    file when None), and the time to build the collection (write, flush and index the codes)."""
    from ..store.hash_store import HashStore

    out = {}
    t0 = time.perf_counter()
    ref = hamming_topk(query_codes, db_codes, k)
    out["search numpy (queries/s, top-%d)" % k] = len(query_codes) / (time.perf_counter() - t0)
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="milvus-hash-speed-")
        store = HashStore(str(Path(tmp.name) / "speed.db"))
    name = f"milvus_hash_speed_{uuid.uuid4().hex[:12]}"
    spec = EncoderSpec("eval", name, db_codes.shape[1] * 8)
    try:
        t0 = time.perf_counter()
        store.create_collection(name, encoder=spec)
        store.insert(name, ids=np.arange(len(db_codes), dtype=np.int64), codes=db_codes, encoder=spec)
        store.count(name)
        out[f"Milvus build: write and index {len(db_codes):,} codes (s)"] = time.perf_counter() - t0
        store.search(name, codes=query_codes[:1], k=k)  # warm-up (loads the collection)
        t0 = time.perf_counter()
        res = store.search(name, codes=query_codes, k=k, ties="id")
        out[f"search Milvus (queries/s, top-{k})"] = len(query_codes) / (time.perf_counter() - t0)
        out["Milvus top-k equals numpy's"] = bool(np.array_equal(res.ids, ref.ids))
        out["Milvus"] = ("Milvus Lite " if store.embedded else "server ") + store.uri
    finally:
        store.drop_collection(name)
        if tmp is not None:
            store.close()
            tmp.cleanup()
    return out


__all__ = ["peak_rss_mib", "search_speed"]
