"""Many linear max-margin classifiers trained at once, in torch (CUDA when present).

UGH trains dozens of small linear SVMs per round (K hash functions, C one-vs-rest classifiers in
feature space and C in Hamming space); one liblinear call each dominated the run time. Here all the
columns of a label matrix are solved together by a truncated Newton method (conjugate gradient on
the Hessian, batched over columns, then a backtracking line search per column).

Each column ``k`` solves the L2-loss SVM (liblinear's default ``LinearSVC`` objective, up to scale)::

    min_w  gamma * ||w||^2 + lam * sum_i max(0, 1 - y_ik * (x_i . w))^2

``x`` carries a constant 1 as its last feature, so the bias is regularised like the weights (as
liblinear's ``intercept_scaling`` does).
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import expected


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def add_bias(X: torch.Tensor) -> torch.Tensor:
    """Append the constant feature: ``(n, d)`` -> ``(n, d + 1)``."""
    return torch.cat([X, torch.ones((X.shape[0], 1), dtype=X.dtype, device=X.device)], dim=1)


def objective(X: torch.Tensor, Y: torch.Tensor, W: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Per-column objective values ``(K,)``; ``X (n, d1)`` with bias, ``Y (n, K)`` in {-1, +1}, ``W (d1, K)``."""
    slack = torch.clamp(1 - Y * (X @ W), min=0)
    return gamma * (W * W).sum(0) + lam * (slack * slack).sum(0)


def fit_linear_svms(X: torch.Tensor, Y: torch.Tensor, *, gamma: float = 1.0, lam: float = 1.0,
                    W0: torch.Tensor | None = None, max_newton: int = 30, cg_iters: int = 5,
                    tol: float = 1e-3) -> torch.Tensor:
    """Solve ``K`` L2-loss SVMs sharing the data ``X`` and differing in their labels.

    Args:
        X: ``(n, d1)`` features with the bias column already appended (see :func:`add_bias`).
        Y: ``(n, K)`` labels in {-1, +1}, one column per classifier.
        gamma, lam: weights of the regulariser and of the squared hinge loss.
        W0: optional warm start ``(d1, K)``.
        tol: stop when every column's gradient norm is below ``tol`` times its initial norm.

    Returns:
        ``W (d1, K)``: column ``k`` is the hyperplane of classifier ``k``.
    """
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise expected("X, Y", "X (n, d) and Y (n, K) with the same n", f"{tuple(X.shape)} and {tuple(Y.shape)}")
    n, d1 = X.shape
    K = Y.shape[1]
    W = torch.zeros((d1, K), dtype=X.dtype, device=X.device) if W0 is None else W0.clone()
    g0 = None
    steps = torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0], dtype=X.dtype, device=X.device)
    for _ in range(max_newton):
        Z = X @ W
        active = ((Y * Z) < 1).to(X.dtype)
        grad = 2 * gamma * W + 2 * lam * (X.T @ (active * (Z - Y)))
        gnorm = grad.norm(dim=0)
        if g0 is None:
            g0 = torch.clamp(gnorm, min=1e-30)
        if bool((gnorm <= tol * g0).all()):
            break

        def hess(V: torch.Tensor) -> torch.Tensor:
            return 2 * gamma * V + 2 * lam * (X.T @ (active * (X @ V)))

        P = _batched_cg(hess, -grad, cg_iters)
        # Backtracking on a fixed grid of steps, all columns at once: keep the best step per column.
        XP = X @ P
        f_now = objective(X, Y, W, gamma, lam)
        cand = []
        for t in steps:
            slack = torch.clamp(1 - Y * (Z + t * XP), min=0)
            Wt = W + t * P
            cand.append(gamma * (Wt * Wt).sum(0) + lam * (slack * slack).sum(0))
        cand = torch.stack(cand)  # (n_steps, K)
        best = cand.argmin(0)
        t_best = steps[best]
        if bool((cand.min(0).values >= f_now - 1e-12 * torch.abs(f_now)).all()):
            break
        W = W + t_best * P
    return W


def _batched_cg(hess, B: torch.Tensor, iters: int) -> torch.Tensor:
    """Solve ``hess(X) = B`` column by column (symmetric positive definite), ``iters`` steps at most."""
    Xs = torch.zeros_like(B)
    R = B.clone()
    P = R.clone()
    rs = (R * R).sum(0)
    stop = 1e-10 * torch.clamp(rs, min=1e-30)
    for _ in range(iters):
        if bool((rs <= stop).all()):
            break
        HP = hess(P)
        denom = torch.clamp((P * HP).sum(0), min=1e-30)
        alpha = torch.where(rs > stop, rs / denom, torch.zeros_like(rs))
        Xs = Xs + alpha * P
        R = R - alpha * HP
        rs_new = (R * R).sum(0)
        beta = torch.where(rs > stop, rs_new / torch.clamp(rs, min=1e-30), torch.zeros_like(rs))
        P = R + beta * P
        rs = rs_new
    return Xs


def as_tensor(X, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        return X.to(device=device, dtype=dtype)
    return torch.as_tensor(np.ascontiguousarray(X), dtype=dtype, device=device)


def liblinear_svms(X: torch.Tensor, Y: torch.Tensor, *, gamma: float = 1.0, lam: float = 1.0, **_ignored) -> torch.Tensor:
    """The straightforward solver: one liblinear ``LinearSVC`` per column, same objective.

    liblinear minimises ``0.5 ||w||^2 + C sum sqhinge``, the objective above divided by ``2 gamma``
    for ``C = lam / (2 gamma)``; its intercept with ``intercept_scaling=1`` is our bias feature.
    Kept as the reference that :func:`fit_linear_svms` is measured against.
    """
    from sklearn.svm import LinearSVC

    Xn = X[:, :-1].double().cpu().numpy()
    Yn = Y.cpu().numpy()
    W = np.zeros((X.shape[1], Y.shape[1]))
    for k in range(Y.shape[1]):
        if np.unique(Yn[:, k]).size < 2:  # one class only: the minimiser is a constant output
            W[-1, k] = Yn[0, k] * lam * len(Yn) / (gamma + lam * len(Yn))
            continue
        clf = LinearSVC(C=lam / (2 * gamma), loss="squared_hinge", intercept_scaling=1.0, tol=1e-4,
                        max_iter=10_000, dual=True).fit(Xn, Yn[:, k])
        W[:-1, k] = clf.coef_[0]
        W[-1, k] = clf.intercept_[0]
    return torch.as_tensor(W, dtype=X.dtype, device=X.device)


SOLVERS = {"batched": fit_linear_svms, "liblinear": liblinear_svms}


def solve_svms(X: torch.Tensor, Y: torch.Tensor, *, solver: str = "batched", **kwargs) -> torch.Tensor:
    """Dispatch to the batched solver (default) or the liblinear reference."""
    try:
        fn = SOLVERS[solver]
    except KeyError:
        raise expected("solver", f"one of {sorted(SOLVERS)}", repr(solver)) from None
    return fn(X, Y, **kwargs)
