"""Pseudo-categories from unlabeled features by Max-Min sampling (UGH paper, Section 3.1.1).

Max step: draw ``m`` candidate sets of ``C`` random seed points and keep the set whose members are
farthest apart, the spread of a set being the *smallest* Euclidean distance between two of its
members (so the kept seeds are all far from each other, not just on average).
Min step: each seed and its ``T - 1`` nearest neighbours form one pseudo-category. Categories are
kept disjoint: seeds take their neighbours in turn, in a random order, among points not yet taken.
"""

from __future__ import annotations

import numpy as np

from ...errors import expected


def _sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d, 0.0)


def max_min_sample(X: np.ndarray, *, n_categories: int, per_category: int, n_candidates: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Pseudo-categories of ``X``.

    Args:
        X: ``(n, d)`` features of one unlabeled subset.
        n_categories: ``C``, the number of pseudo-categories (seeds).
        per_category: ``T``, points per pseudo-category (the seed and its ``T - 1`` neighbours).
        n_candidates: ``m``, candidate seed sets drawn in the Max step.
        rng: the round's random generator.

    Returns:
        ``int64 (C, T)`` row indices into ``X``; row ``c`` is pseudo-category ``c``, seed first.
    """
    n = X.shape[0]
    C, T = int(n_categories), int(per_category)
    if C < 2 or T < 1 or n_candidates < 1:
        raise expected("n_categories, per_category, n_candidates", "C >= 2, T >= 1, m >= 1",
                       f"C={C}, T={T}, m={n_candidates}")
    if C * T > n:
        raise expected("X", f"at least n_categories * per_category = {C * T} points", f"{n} points")
    best, best_spread = None, -1.0
    for _ in range(int(n_candidates)):
        cand = rng.choice(n, size=C, replace=False)
        d = _sq_dists(X[cand], X[cand])
        np.fill_diagonal(d, np.inf)
        spread = float(d.min())
        if spread > best_spread:
            best, best_spread = cand, spread
    seeds = best
    taken = np.zeros(n, dtype=bool)
    taken[seeds] = True
    groups = np.empty((C, T), dtype=np.int64)
    groups[:, 0] = seeds
    dist = _sq_dists(X[seeds], X)  # (C, n)
    for c in rng.permutation(C):
        row = np.where(taken, np.inf, dist[c])
        if T > 1:
            nearest = np.argpartition(row, T - 2)[:T - 1]
            nearest = nearest[np.argsort(row[nearest], kind="stable")]
            groups[c, 1:] = nearest
            taken[nearest] = True
    return groups
