"""Hamming-ranking metrics as small pure functions.

Ties: the database is ranked by (Hamming distance, database id), ascending, everywhere: the same
rule as :func:`milvus_hash.codes.hamming_topk` and ``HashStore.search(ties="id")``, so numbers
computed offline and through Milvus agree. With the default ids ``0..n-1``, ties go to the row that
comes first.
"""

from __future__ import annotations

import numpy as np

from ..codes import as_codes, as_ids, check_radius, hamming_distances
from ..errors import expected


def _check(query_codes, query_labels, db_codes, db_labels, db_ids):
    q = as_codes(query_codes, argument="query_codes")
    d = as_codes(db_codes, n_bits=q.shape[1] * 8, argument="db_codes")
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    if ql.shape != (q.shape[0],):
        raise expected("query_labels", f"{q.shape[0]} labels", f"shape {ql.shape}")
    if dl.shape != (d.shape[0],):
        raise expected("db_labels", f"{d.shape[0]} labels", f"shape {dl.shape}")
    ids = np.arange(d.shape[0], dtype=np.int64) if db_ids is None else as_ids(db_ids, n=d.shape[0], argument="db_ids")
    return q, ql, d, dl, ids


def average_precisions(query_codes, query_labels, db_codes, db_labels, *, top: int | None = None,
                       db_ids=None, chunk: int = 256) -> np.ndarray:
    """Average precision of each query ``float64 (nq,)`` over the Hamming ranking of the database.

    ``top=None`` ranks the whole database (mAP); ``top=K`` truncates it (mAP@K: precision averaged
    over the relevant items within the first K, divided by their number, 0 when there are none).
    """
    q, ql, d, dl, ids = _check(query_codes, query_labels, db_codes, db_labels, db_ids)
    n = d.shape[0]
    if top is not None and (not isinstance(top, (int, np.integer)) or top < 1):
        raise expected("top", "None or a positive int", repr(top))
    k = n if top is None else min(int(top), n)
    by_id = np.argsort(ids, kind="stable")  # rows in id order: a stable sort by distance breaks ties by id
    d, dl = d[by_id], dl[by_id]
    small = q.shape[1] * 8 < 2**16  # distances fit uint16: numpy's stable sort is then a radix sort
    out = np.zeros(q.shape[0])
    positions = np.arange(1, k + 1, dtype=np.float64)
    for start in range(0, q.shape[0], chunk):
        dist = hamming_distances(q[start:start + chunk], d)
        order = np.argsort(dist.astype(np.uint16) if small else dist, axis=1, kind="stable")[:, :k]
        rel = dl[order] == ql[start:start + chunk, None]
        hits = np.cumsum(rel, axis=1)
        n_rel = rel.sum(1)
        prec_sum = (rel * (hits / positions)).sum(1)
        out[start:start + chunk] = np.where(n_rel > 0, prec_sum / np.maximum(n_rel, 1), 0.0)
    return out


def mean_average_precision(query_codes, query_labels, db_codes, db_labels, *, top: int | None = None,
                           db_ids=None) -> float:
    """mAP over the full Hamming ranking (``top=None``) or mAP@top; ties broken by database id."""
    return float(average_precisions(query_codes, query_labels, db_codes, db_labels, top=top, db_ids=db_ids).mean())


def precision_within_radius(query_codes, query_labels, db_codes, db_labels, *, radius: int = 2) -> float:
    """Mean over queries of the share of relevant items among those at distance ``<= radius``.

    A query that retrieves nothing within the radius counts as precision 0 (the usual convention of
    the hashing literature, which penalises codes that scatter everything).
    """
    q, ql, d, dl, _ = _check(query_codes, query_labels, db_codes, db_labels, None)
    radius = check_radius(radius)
    precs = np.zeros(q.shape[0])
    for start in range(0, q.shape[0], 256):
        within = hamming_distances(q[start:start + 256], d) <= radius
        rel = within & (dl[None, :] == ql[start:start + 256, None])
        n_within = within.sum(1)
        precs[start:start + 256] = np.where(n_within > 0, rel.sum(1) / np.maximum(n_within, 1), 0.0)
    return float(precs.mean())


def precision_recall_at_k(query_codes, query_labels, db_codes, db_labels, *, k: int,
                          db_ids=None) -> tuple[float, float]:
    """Mean precision and recall of the first ``k`` of the Hamming ranking (ties by id).

    Precision@k = relevant among the first k / k; recall@k = relevant among the first k / all
    relevant in the database (0 for a query with none).
    """
    q, ql, d, dl, ids = _check(query_codes, query_labels, db_codes, db_labels, db_ids)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise expected("k", "a positive int", repr(k))
    kk = min(int(k), d.shape[0])
    by_id = np.argsort(ids, kind="stable")
    d, dl = d[by_id], dl[by_id]
    labels, counts = np.unique(dl, return_counts=True)
    n_rel = dict(zip(labels.tolist(), counts.tolist()))
    small = q.shape[1] * 8 < 2**16
    p, r = [], []
    for start in range(0, q.shape[0], 256):
        dist = hamming_distances(q[start:start + 256], d)
        order = np.argsort(dist.astype(np.uint16) if small else dist, axis=1, kind="stable")[:, :kk]
        hits = (dl[order] == ql[start:start + 256, None]).sum(1)
        total = np.array([n_rel.get(lab, 0) for lab in ql[start:start + 256].tolist()])
        p.append(hits / int(k))
        r.append(np.where(total > 0, hits / np.maximum(total, 1), 0.0))
    return float(np.concatenate(p).mean()), float(np.concatenate(r).mean())


def pr_curve(query_codes, query_labels, db_codes, db_labels) -> dict[str, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval at every radius ``0..n_bits``.

    At radius r a query retrieves every code at distance <= r. ``precision[r]`` is the mean over
    the queries that retrieve at least one code (``retrieving[r]`` of them) of relevant / retrieved;
    ``recall[r]`` the mean over all queries of relevant retrieved / relevant in the database.
    Returns ``{"radius": int (B+1,), "precision", "recall": float (B+1,), "retrieving": int (B+1,)}``.
    """
    q, ql, d, dl, _ = _check(query_codes, query_labels, db_codes, db_labels, None)
    n_bits = q.shape[1] * 8
    labels, counts = np.unique(dl, return_counts=True)
    n_rel = dict(zip(labels.tolist(), counts.tolist()))
    prec_sum = np.zeros(n_bits + 1)
    rec_sum = np.zeros(n_bits + 1)
    retrieving = np.zeros(n_bits + 1, dtype=np.int64)
    for start in range(0, q.shape[0], 256):
        dist = hamming_distances(q[start:start + 256], d)
        rel = dl[None, :] == ql[start:start + 256, None]
        rows = np.arange(dist.shape[0])[:, None] * (n_bits + 1)
        all_c = np.bincount((dist + rows).ravel(), minlength=dist.shape[0] * (n_bits + 1))
        rel_c = np.bincount((dist + rows)[rel], minlength=dist.shape[0] * (n_bits + 1))
        all_c = all_c.reshape(-1, n_bits + 1).cumsum(1)
        rel_c = rel_c.reshape(-1, n_bits + 1).cumsum(1)
        total = np.array([n_rel.get(lab, 0) for lab in ql[start:start + 256].tolist()])[:, None]
        prec_sum += np.where(all_c > 0, rel_c / np.maximum(all_c, 1), 0.0).sum(0)
        rec_sum += np.where(total > 0, rel_c / np.maximum(total, 1), 0.0).sum(0)
        retrieving += (all_c > 0).sum(0)
    return {"radius": np.arange(n_bits + 1), "precision": prec_sum / np.maximum(retrieving, 1),
            "recall": rec_sum / q.shape[0], "retrieving": retrieving}
