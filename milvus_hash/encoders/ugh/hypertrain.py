"""One round of UGH hyper-training (UGH paper Section 3.1): K calibrated hash functions from one subset.

1. Draw ``M`` points from the unlabeled pool; Max-Min sampling gives ``C`` pseudo-categories of
   ``T`` points (:mod:`.sampling`).
2. Learn ``K`` hash functions on them with DBC (:mod:`.dbc`), from random projections.
3. Expansion: score the subset's other points with one-vs-rest max-margin classifiers of the
   pseudo-categories trained in feature space and in the K-bit Hamming space; each category takes
   the ``F`` points that rank highest in *both* (the larger of a point's two ranks is its rank),
   a point going to one category at most. 90% of them join the training points, 10% are held out.
4. Retrain the K hash functions with DBC on the augmented set (warm-started).
5. Calibrate each with Platt's sigmoid on the held-out points, whose target bit is the majority
   bit of their pseudo-category's training points (:mod:`.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .calibration import platt_fit
from .dbc import fit_dbc
from .sampling import max_min_sample
from .svm import add_bias, solve_svms


@dataclass(frozen=True)
class RoundParams:
    n_subset: int = 20_000        # M
    n_candidates: int = 50        # m
    n_categories: int = 30        # C
    per_category: int = 6         # T
    n_bits: int = 10              # K
    n_expand: int = 50            # F
    holdout: float = 0.1
    gamma: float = 1.0
    lambda1: float = 1.0
    lambda2: float | None = None  # None: within pairs / between pairs
    n_iter: int = 10
    solver: str = "batched"       # or "liblinear": one LinearSVC per hash function (the reference)


@dataclass
class RoundResult:
    W: np.ndarray       # float32 (d + 1, K): hyperplanes, bias last
    a: np.ndarray       # float32 (K,): Platt slope
    b: np.ndarray       # float32 (K,): Platt offset
    history: list       # DBC objective per iteration, initial and retrained fits


def _ovr_labels(labels: np.ndarray, C: int, dtype, device) -> torch.Tensor:
    Y = -np.ones((labels.shape[0], C), dtype=np.float32)
    Y[np.arange(labels.shape[0]), labels] = 1.0
    return torch.as_tensor(Y, dtype=dtype, device=device)


def _rank_desc(scores: np.ndarray, depth: int) -> np.ndarray:
    """Rank of each row within each column (0 for the highest score) for the ``depth`` best rows of
    each column; every other row gets rank ``n`` (only the top of each list matters here)."""
    n, C = scores.shape
    depth = min(depth, n)
    ranks = np.full((n, C), n, dtype=np.int64)
    top = np.argpartition(-scores, depth - 1, axis=0)[:depth]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 0), axis=0, kind="stable"), 0)
    np.put_along_axis(ranks, order, np.arange(depth)[:, None].repeat(C, 1), 0)
    return ranks


def _affine(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``[X, 1] @ W`` without building ``[X, 1]`` (W's last row is the bias)."""
    return X @ W[:-1] + W[-1]


def expand(X1_train, labels, X_rest, W, *, C: int, F: int, gamma: float, lam: float,
           rng: np.random.Generator, solver: str = "batched") -> np.ndarray:
    """Pick up to ``F`` points of ``X_rest`` (no bias column) per pseudo-category.

    Returns ``int64 (C, F)`` row indices into ``X_rest``, -1 where a category found fewer.
    """
    Y = _ovr_labels(labels, C, X1_train.dtype, X1_train.device)
    Wf = solve_svms(X1_train, Y, solver=solver, gamma=gamma, lam=lam)
    codes_train = (X1_train @ W >= 0).to(X1_train.dtype) * 2 - 1
    Wh = solve_svms(add_bias(codes_train), Y, solver=solver, gamma=gamma, lam=lam)
    codes_rest = (_affine(X_rest, W) >= 0).to(X_rest.dtype) * 2 - 1
    score_f = _affine(X_rest, Wf).cpu().numpy()
    score_h = _affine(codes_rest, Wh).cpu().numpy()
    n = X_rest.shape[0]
    depth = min(n, 20 * F)
    while True:
        rank = np.maximum(_rank_desc(score_f, depth), _rank_desc(score_h, depth))  # high in both
        taken = np.zeros(n, dtype=bool)
        picked = -np.ones((C, F), dtype=np.int64)
        short = False
        for c in rng.permutation(C):
            cand = np.flatnonzero(rank[:, c] < n)
            cand = cand[np.argsort(rank[cand, c], kind="stable")]
            free = cand[~taken[cand]][:F]
            picked[c, :free.size] = free
            taken[free] = True
            short |= free.size < F
        if not short or depth >= n:
            return picked
        depth = min(n, depth * 4)  # rare: the top lists were too short, look deeper


def hypertrain_round(X: np.ndarray, params: RoundParams, seed, device: torch.device) -> RoundResult:
    """One round on the pool ``X (n, d)`` (float32, rows L2-normalised); ``seed`` seeds everything."""
    rng = np.random.default_rng(seed)
    torch_gen_seed = int(rng.integers(2**31))
    torch.manual_seed(torch_gen_seed)
    p = params
    subset = rng.choice(X.shape[0], size=min(p.n_subset, X.shape[0]), replace=False)
    Xs = X[subset]
    groups = max_min_sample(Xs, n_categories=p.n_categories, per_category=p.per_category,
                            n_candidates=p.n_candidates, rng=rng)
    labels = np.repeat(np.arange(p.n_categories), p.per_category)
    Xt = torch.as_tensor(Xs, device=device)
    X1_seed = add_bias(Xt[groups.ravel()])
    first = fit_dbc(X1_seed, labels, n_bits=p.n_bits, gamma=p.gamma, lam1=p.lambda1,
                    lam2=p.lambda2, n_iter=p.n_iter, rng=rng, solver=p.solver)
    rest = np.setdiff1d(np.arange(Xs.shape[0]), groups.ravel())
    picked = expand(X1_seed, labels, Xt[rest], first.W, C=p.n_categories, F=p.n_expand,
                    gamma=p.gamma, lam=p.lambda1, rng=rng, solver=p.solver)
    n_hold = int(round(p.holdout * p.n_expand))
    train_idx, train_lab, hold_idx, hold_lab = [groups.ravel()], [labels], [], []
    for c in range(p.n_categories):
        got = picked[c][picked[c] >= 0]
        got = rest[rng.permutation(got)]
        hold_idx.append(got[:n_hold])
        hold_lab.append(np.full(min(n_hold, got.size), c))
        train_idx.append(got[n_hold:])
        train_lab.append(np.full(max(0, got.size - n_hold), c))
    train_idx, train_lab = np.concatenate(train_idx), np.concatenate(train_lab)
    hold_idx, hold_lab = np.concatenate(hold_idx), np.concatenate(hold_lab)
    second = fit_dbc(add_bias(Xt[train_idx]), train_lab, n_bits=p.n_bits, gamma=p.gamma, lam1=p.lambda1,
                     lam2=p.lambda2, n_iter=p.n_iter, W0=first.W, solver=p.solver)
    # Calibration targets: the majority bit of each pseudo-category's training codes.
    ones = np.zeros((p.n_categories, p.n_bits))
    np.add.at(ones, train_lab, second.codes.astype(np.float64))
    majority = ones * 2 >= np.bincount(train_lab, minlength=p.n_categories)[:, None]
    S_hold = _affine(Xt[hold_idx], second.W).double().cpu().numpy()
    a, b = platt_fit(S_hold, majority[hold_lab])
    return RoundResult(W=second.W.float().cpu().numpy(), a=a.astype(np.float32), b=b.astype(np.float32),
                       history=[first.history, second.history])
