"""Platt scaling of many hash functions at once (UGH paper Eq. 2; Platt 1999).

For each hash function ``k`` with decision values ``s = w_k . x`` on held-out points and their
target bits ``t``, fit ``p(bit = 1 | s) = 1 / (1 + exp(-(a_k * s + b_k)))`` by Newton's method on
the cross-entropy, with Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` so
that a bit whose held-out targets all agree still gets a finite sigmoid. In the paper's notation
``alpha_k = a_k`` and ``beta_k = -b_k / a_k``; a bit is 1 where the calibrated output is >= 0.5,
that is where ``a_k * s + b_k >= 0``.
"""

from __future__ import annotations

import numpy as np


def platt_fit(S: np.ndarray, T: np.ndarray, *, max_iter: int = 100, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``(a, b)``, each ``(K,)``, from decision values ``S (n, K)`` and target bits ``T (n, K)``."""
    S = np.asarray(S, dtype=np.float64)
    T = np.asarray(T, dtype=bool)
    n_pos = T.sum(0)
    n_neg = T.shape[0] - n_pos
    y = np.where(T, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    K = S.shape[1]
    a = np.ones(K)
    b = np.log((n_neg + 1.0) / (n_pos + 1.0)) * -1.0

    def nll(a, b):
        z = a * S + b
        return (np.logaddexp(0, z) - y * z).sum(0) + 0.5 * ridge * (a * a + b * b)

    f = nll(a, b)
    for _ in range(max_iter):
        z = a * S + b
        p = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid, stable
        r = p - y
        ga = (r * S).sum(0) + ridge * a
        gb = r.sum(0) + ridge * b
        w = p * (1 - p)
        haa = (w * S * S).sum(0) + ridge
        hab = (w * S).sum(0)
        hbb = w.sum(0) + ridge
        det = np.maximum(haa * hbb - hab * hab, 1e-12)
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        step = np.ones(K)
        for _ in range(30):  # backtracking per function
            f_new = nll(a + step * da, b + step * db)
            bad = f_new > f + 1e-12
            if not bad.any():
                break
            step = np.where(bad, step * 0.5, step)
        a, b = a + step * da, b + step * db
        f_prev, f = f, nll(a, b)
        if np.all(np.abs(f_prev - f) <= 1e-10 * (1 + np.abs(f))):
            break
    return a, b
