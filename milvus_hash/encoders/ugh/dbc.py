"""DBC hash learning on pseudo-labeled points (UGH paper Eq. 1; Rastegari, Farhadi, Forsyth, ECCV 2012).

For ``K`` hash functions ``w_k`` and binary codes ``H (n, K)`` of points with (pseudo-)category
labels, minimise::

    sum over same-category pairs of Hamming(H_i, H_j)
      - lambda2 * sum over different-category pairs of Hamming(H_i, H_j)
      + gamma * sum_k ||w_k||^2
      + lambda1 * sum_k sum_i loss(1 - l_ik * w_k . x_i)

with ``l = 2H - 1``, by alternating (a) the K linear SVMs with the codes fixed and (b) the codes with
the hyperplanes fixed, from random projections. ``loss`` is the squared hinge (the L2-loss SVM of
liblinear), in both steps, so that each step lowers the same objective.

Step (b) is exact block coordinate descent: the pair terms of bit ``k`` depend only on how many
points of each category have the bit set, so for one category the best choice, given the others,
sets the bit on its points with the lowest hinge cost for 1 versus 0, in the best number. Every
category's block is solved in turn for all bits at once; the objective never increases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .svm import solve_svms


@dataclass
class DBCResult:
    W: torch.Tensor                 # (d1, K) hyperplanes, bias in the last row
    codes: np.ndarray               # (n, K) bool codes of the training points
    history: list[float] = field(default_factory=list)  # objective after each iteration


def pair_costs(ones: np.ndarray, sizes: np.ndarray, lam2: float) -> np.ndarray:
    """Pair part of the objective per bit ``(K,)`` from ones per category ``(C, K)`` and sizes ``(C,)``."""
    n = sizes.sum()
    within = (ones * (sizes[:, None] - ones)).sum(0)
    total = ones.sum(0)
    between = total * (n - total) - within
    return within - lam2 * between


def dbc_objective(H: np.ndarray, labels: np.ndarray, S: np.ndarray, W: torch.Tensor, *, gamma: float,
                  lam1: float, lam2: float) -> float:
    """Value of the objective for codes ``H (n, K)``, scores ``S = X W (n, K)`` and hyperplanes ``W``."""
    C = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=C)
    ones = np.zeros((C, H.shape[1]))
    np.add.at(ones, labels, H.astype(np.float64))
    L = 2.0 * H - 1.0
    hinge = np.maximum(0.0, 1.0 - L * S) ** 2
    return float(pair_costs(ones, sizes, lam2).sum() + gamma * float((W * W).sum()) + lam1 * hinge.sum())


def update_codes(H: np.ndarray, labels: np.ndarray, S: np.ndarray, *, lam1: float, lam2: float,
                 sweeps: int = 3) -> np.ndarray:
    """Step (b): lower the objective over the codes, the hyperplanes' scores ``S`` fixed."""
    H = H.copy()
    C = int(labels.max()) + 1
    groups = [np.flatnonzero(labels == c) for c in range(C)]
    sizes = np.array([len(g) for g in groups])
    n = sizes.sum()
    delta = lam1 * (np.maximum(0.0, 1.0 - S) ** 2 - np.maximum(0.0, 1.0 + S) ** 2)  # cost(1) - cost(0)
    ones = np.stack([H[g].sum(0) for g in groups]).astype(np.float64)  # (C, K)
    orders = [np.argsort(delta[g], axis=0, kind="stable") for g in groups]
    prefix = [np.vstack([np.zeros((1, H.shape[1])), np.cumsum(np.take_along_axis(delta[g], o, 0), 0)])
              for g, o in zip(groups, orders)]
    for _ in range(sweeps):
        changed = False
        for c, g in enumerate(groups):
            nc = sizes[c]
            rest = ones.sum(0) - ones[c]
            j = np.arange(nc + 1, dtype=np.float64)[:, None]
            cost = (1 + lam2) * j * (nc - j) - lam2 * (rest + j) * (n - rest - j) + prefix[c]
            best = cost.argmin(0)
            oc = ones[c]
            current = ((1 + lam2) * oc * (nc - oc) - lam2 * (rest + oc) * (n - rest - oc)
                       + (delta[g] * H[g]).sum(0))
            improve = cost[best, np.arange(H.shape[1])] < current - 1e-9 * (1 + np.abs(current))
            if improve.any():
                cols = np.flatnonzero(improve)
                rank = np.empty_like(orders[c][:, cols])
                np.put_along_axis(rank, orders[c][:, cols], np.arange(nc)[:, None].repeat(cols.size, 1), 0)
                new = rank < best[cols][None, :]
                block = H[g]
                block[:, cols] = new
                H[g] = block
                ones[c, cols] = best[cols]
                changed = True
        if not changed:
            break
    return H


def fit_dbc(X1: torch.Tensor, labels: np.ndarray, *, n_bits: int, gamma: float = 1.0, lam1: float = 1.0,
            lam2: float | None = None, n_iter: int = 10, W0: torch.Tensor | None = None,
            rng: np.random.Generator | None = None, svm_newton: int = 3, solver: str = "batched") -> DBCResult:
    """Learn ``n_bits`` hash functions on points ``X1 (n, d1)`` (bias column included) with labels ``(n,)``.

    ``lam2=None`` balances the two pair sums: ``lam2 = within pairs / between pairs``. Starts from
    ``W0`` or from random projections (drawn from ``rng``); stops early when the codes stop changing.
    """
    labels = np.asarray(labels, dtype=np.int64)
    sizes = np.bincount(labels)
    if lam2 is None:
        within = float((sizes * (sizes - 1) / 2).sum())
        n = len(labels)
        lam2 = within / max(1.0, n * (n - 1) / 2 - within)
    if W0 is None:
        rng = rng or np.random.default_rng()
        W = torch.as_tensor(rng.standard_normal((X1.shape[1], n_bits)), dtype=X1.dtype, device=X1.device)
        W[-1] = 0  # the projections pass through the (normalised) data's origin
    else:
        W = W0.clone()
    S = (X1 @ W).double().cpu().numpy()
    H = S >= 0
    history: list[float] = []
    for it in range(n_iter):
        warm = W0 is not None or it > 0
        # Warm-started solves need few Newton steps: the codes change little between iterations,
        # and the alternation goes on anyway. Each step only ever lowers the objective.
        W = solve_svms(X1, torch.as_tensor(2.0 * H - 1.0, dtype=X1.dtype, device=X1.device),
                       solver=solver, gamma=gamma, lam=lam1, W0=W if warm else None,
                       max_newton=svm_newton if warm else 30)
        S = (X1 @ W).double().cpu().numpy()
        H_new = update_codes(H, labels, S, lam1=lam1, lam2=lam2)
        history.append(dbc_objective(H_new, labels, S, W.double(), gamma=gamma, lam1=lam1, lam2=lam2))
        if np.array_equal(H_new, H):
            H = H_new
            break
        H = H_new
    return DBCResult(W=W, codes=H, history=history)
