"""The background sample a client defines categories against, read from Milvus in a few small queries.

The sample is the items whose id falls in some residues modulo a prime ``m``: with ``n`` items and a
sample of ``size``, ``m`` is the smallest prime with about :data:`PER_QUERY` items per residue, the
residues are a seeded permutation of ``0 .. m - 1``, and residues are read (one query each,
``id % m == r``, which Milvus evaluates on the id column alone) until the sample holds ``size``
items. Reading by residue needs no list of the collection's ids (listing 60,000 ids took 0.7 s, then
reading 4,000 codes by id 0.8-1.4 s; a residue of 500 codes takes 15-50 ms on the local server and
on Milvus Lite, read in answers of about 256 KiB as every stream of the store is).

For ids that are hashes or counters a residue class is an unbiased sample of the store; an id
scheme aligned with ``m`` (every id a multiple of it) only makes the sample less random: reading stops
as soon as ``size`` items are in hand, and a sample that comes back short is completed from the next
residues.
"""

from __future__ import annotations

import math

import numpy as np

#: Items a residue query returns, about.
PER_QUERY = 500


def _next_prime(n: int) -> int:
    n = max(2, int(n))
    while any(n % p == 0 for p in range(2, math.isqrt(n) + 1)):
        n += 1
    return n


def residue_plan(n_items: int, size: int, seed: int) -> tuple[int, np.ndarray]:
    """The modulus ``m`` and the order ``int64 (m,)`` in which residues are read."""
    m = _next_prime(math.ceil(max(n_items, 1) / PER_QUERY))
    return m, np.random.default_rng(seed).permutation(m).astype(np.int64)


def sample_ids(ids: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The ids ``int64`` (sorted) :func:`read_background` samples from a collection holding ``ids``
    (all of them when there are at most ``size``): the reference for tests and evaluation."""
    ids = np.asarray(ids, np.int64)
    if ids.size <= size:
        return np.sort(ids)
    m, order = residue_plan(ids.size, size, seed)
    residue = np.fmod(ids, m)  # Milvus's % keeps the sign of the id, as C does
    residue[residue < 0] += m
    taken, total = [], 0
    for r in order:
        hit = ids[residue == r]
        taken.append(hit)
        total += hit.size
        if total >= size:
            break
    return np.sort(np.concatenate(taken))


def read_background(store, collection: str, size: int, seed: int):
    """Read the sample's library codes from ``collection``: ``(ids int64 (s,), codes uint8 (s, L // 8))``,
    sorted by id (``s`` about ``size``; every item when the collection holds at most ``size``)."""
    info = store.describe_collection(collection)
    empty = np.zeros(0, np.int64), np.zeros((0, info.n_bits // 8), np.uint8)
    n = store.count(collection)
    if n == 0:
        return empty
    if n <= size:
        recs = list(store.iter_records(collection))
        return np.concatenate([r.ids for r in recs]), np.vstack([r.codes for r in recs])
    m, order = residue_plan(n, size, seed)
    ids, codes, total = [], [], 0
    for r in order:
        for rec in store.iter_records(collection, filter=f"id % {m} == {r} or id % {m} == {int(r) - m}"):
            ids.append(rec.ids)
            codes.append(rec.codes)
            total += rec.ids.size
            if total >= size:
                break
        if total >= size:
            break
    ids, codes = np.concatenate(ids), np.vstack(codes)
    order = np.argsort(ids, kind="stable")
    return ids[order], codes[order]


__all__ = ["PER_QUERY", "read_background", "residue_plan", "sample_ids"]
