"""Scoring a set of codes: the same metrics from a numpy ranking or from Milvus's answers.

A scorer takes query codes and labels, database codes and labels, and returns ``{"map": ..., "p_r2":
...}`` (mAP over the full ranking or mAP@top; precision within Hamming radius 2 when the ranking is
full). :class:`NumpyScorer` ranks with numpy; :class:`MilvusScorer` writes the database codes into a
temporary collection of a :class:`~milvus_hash.store.HashStore` (Milvus Lite or a server) and ranks
with its searches: exact top-k with ties by id (``ties="id"``), and the full ranking of a database
larger than Milvus's top-k limit (16,384) as the merge of complete rankings of id ranges. Both rank
by (distance, id) and share :func:`ap_from_ranking`, so they give the same numbers.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from ..codes import as_codes
from ..encoders.spec import EncoderSpec
from ..errors import expected
from .metrics import average_precisions, precision_within_radius


def ap_from_ranking(order: np.ndarray, query_labels, db_labels, *, top: int | None = None) -> np.ndarray:
    """Average precision ``float64 (nq,)`` of rankings ``order (nq, K)`` (database rows, best
    first; ``K`` = the whole database, or at least ``top``), as :func:`.metrics.average_precisions`."""
    k = order.shape[1] if top is None else min(int(top), order.shape[1])
    rel = np.asarray(db_labels)[order[:, :k]] == np.asarray(query_labels)[:, None]
    hits = np.cumsum(rel, axis=1)
    n_rel = rel.sum(1)
    prec = (rel * (hits / np.arange(1, k + 1))).sum(1)
    return np.where(n_rel > 0, prec / np.maximum(n_rel, 1), 0.0)


class NumpyScorer:
    """Exact scores in numpy (:mod:`.metrics`)."""

    name = "numpy"

    def score(self, query_codes, query_labels, db_codes, db_labels, *, top: int | None = None,
              radius: int | None = 2) -> dict:
        out = {"map": float(average_precisions(query_codes, query_labels, db_codes, db_labels, top=top).mean())}
        if radius is not None:
            out["p_r2" if radius == 2 else f"p_r{radius}"] = precision_within_radius(
                query_codes, query_labels, db_codes, db_labels, radius=radius)
        return out


class MilvusScorer:
    """The same scores from Milvus's answers; each call writes a temporary collection and drops it.

    Attributes: ``build_s`` (seconds spent writing codes and building indexes), ``search_s``
    (seconds spent in searches), ``queries`` (queries answered): for the speed report.
    """

    name = "milvus"
    SHARD = 16_384  # Milvus's top-k limit

    def __init__(self, store, *, prefix: str = "milvus_hash_eval"):
        self.store = store
        self.prefix = prefix
        self.build_s = self.search_s = 0.0
        self.queries = 0

    def _rank(self, collection: str, q: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``(nq, k)`` and distances by (distance, id) from Milvus."""
        t0 = time.perf_counter()
        if k <= self.SHARD and k < n:
            res = self.store.search(collection, codes=q, k=k, ties="id")
            self.search_s += time.perf_counter() - t0
            return res.ids, res.distances
        # The full ranking (k == n): every id range of at most 16,384 rows answered whole, merged.
        ids, dists = [], []
        for a in range(0, n, self.SHARD):
            b = min(n, a + self.SHARD)
            res = self.store.search(collection, codes=q, k=b - a, filter=f"id >= {a} and id < {b}")
            ids.append(res.ids)
            dists.append(res.distances)
        ids, dists = np.concatenate(ids, 1), np.concatenate(dists, 1)
        order = np.lexsort((ids, dists), axis=1)
        self.search_s += time.perf_counter() - t0
        return np.take_along_axis(ids, order, 1)[:, :k], np.take_along_axis(dists, order, 1)[:, :k]

    def score(self, query_codes, query_labels, db_codes, db_labels, *, top: int | None = None,
              radius: int | None = 2) -> dict:
        q = as_codes(query_codes, argument="query_codes")
        d = as_codes(db_codes, n_bits=q.shape[1] * 8, argument="db_codes")
        ql, dl = np.asarray(query_labels), np.asarray(db_labels)
        if ql.shape != (q.shape[0],) or dl.shape != (d.shape[0],):
            raise expected("labels", "one per query and one per database code", f"{ql.shape} and {dl.shape}")
        n = d.shape[0]
        k = n if top is None or radius is not None else min(int(top), n)
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        spec = EncoderSpec(kind="eval", fingerprint=name, n_bits=q.shape[1] * 8)
        t0 = time.perf_counter()
        self.store.create_collection(name, encoder=spec)
        try:
            self.store.insert(name, ids=np.arange(n, dtype=np.int64), codes=d, encoder=spec)
            self.store.count(name)  # the writes are visible (and flushed) before timing the searches
            self.build_s += time.perf_counter() - t0
            aps, within = [], []
            chunk = max(1, min(256, 2_000_000 // max(k, 1)))
            for s in range(0, q.shape[0], chunk):
                rows, dist = self._rank(name, q[s:s + chunk], n, k)
                if (rows < 0).any():
                    raise expected("collection", f"{k} hits per query from Milvus", "fewer (rows missing)")
                aps.append(ap_from_ranking(rows, ql[s:s + chunk], dl, top=top))
                if radius is not None:
                    inside = dist <= radius
                    rel = (dl[rows] == ql[s:s + chunk, None]) & inside
                    n_in = inside.sum(1)
                    within.append(np.where(n_in > 0, rel.sum(1) / np.maximum(n_in, 1), 0.0))
            self.queries += q.shape[0]
        finally:
            self.store.drop_collection(name)
        out = {"map": float(np.concatenate(aps).mean())}
        if radius is not None:
            out["p_r2" if radius == 2 else f"p_r{radius}"] = float(np.concatenate(within).mean())
        return out


__all__ = ["MilvusScorer", "NumpyScorer", "ap_from_ranking"]
