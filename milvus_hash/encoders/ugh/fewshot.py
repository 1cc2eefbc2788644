"""A few-shot category code learned in library-code space (the default; the paper's rule is
:class:`.selection.L1BitSelector`).

Measured on Fashion-MNIST (see ``benchmarks/fewshot.py``), the L1 selection of library bits is the
bottleneck: it picks unbalanced bits that each isolate one class. This coder instead learns a short
*projection* of the library codes, computed from stored library codes alone (so a client can build
it without the images):

1. Ridge CCA between the labeled examples' library codes (as ±1) and their labels, solved in the
   examples' own span (the library may have 20,000 bits and there are only a few examples). With
   fewer informative directions than bits, the rest come from the principal directions of the
   unlabeled background codes.
2. Self-training (optional, default on): the unlabeled background codes are labeled by the nearest
   class mean in the CCA space, the most confident ``self_training`` per class join the examples,
   and the CCA is solved again.
3. An ITQ rotation fitted on the unlabeled background codes' projections balances the bits.

The code of an item is ``(f(x) - mean) P >= 0`` where ``f(x)`` is its library code as ±1.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from ...blas import single_threaded_blas
from ...codes import as_codes, check_n_bits, pack_bits, signed_bits
from ...errors import expected
from ..rotation import itq_rotation
from .background import Background

_CHUNK = 4096


def span_cca(X: np.ndarray, y: np.ndarray, k: int, *, ridge: float) -> np.ndarray:
    """Up to ``k`` unit directions ``(d, k')`` of ridge CCA between rows ``X`` and labels ``y``,
    ``k' = min(k, rank of the centred X)``, solved in the row space of ``X`` (cheap for d >> n)."""
    with single_threaded_blas():  # n x n problems: threads cost more than they save
        return _span_cca(X, y, k, ridge=ridge)


def _span_cca(X: np.ndarray, y: np.ndarray, k: int, *, ridge: float) -> np.ndarray:
    Xc = X - X.mean(0)
    n = Xc.shape[0]
    classes, yi = np.unique(y, return_inverse=True)
    Y = np.eye(classes.size)[yi]
    Y -= Y.mean(0)
    # the thin SVD Xc = U S Vt (n << d) from the eigendecomposition of the n x n Gram matrix (float32
    # product: entries are sums of +-1), and Vt never formed: W = Vt.T B = Xc.T (U / S) B. Much faster
    # than LAPACK's gesdd on 20,000 columns.
    Xc = Xc.astype(np.float32, copy=False)
    w, U = np.linalg.eigh((Xc @ Xc.T).astype(np.float64))
    order = np.argsort(-w)
    S = np.sqrt(np.maximum(w[order], 0.0))
    U = U[:, order]
    keep = S > 1e-6 * max(S.max(), 1e-30)
    U, S = U[:, keep], S[keep]
    Xr = U * S
    Cxx = np.diag(S ** 2 / n + ridge)
    Cxy = Xr.T @ Y / n
    Cyy = Y.T @ Y / n + 1e-6 * np.eye(Y.shape[1])
    vals, B = eigh(Cxy @ np.linalg.solve(Cyy, Cxy.T), Cxx)
    order = np.argsort(-vals)[:k]
    W = (Xc.T @ ((U / S) @ B[:, order]).astype(np.float32)).astype(np.float64)
    return W / np.maximum(np.linalg.norm(W, axis=0), 1e-30)


def fill_directions(W: np.ndarray, k: int, basis) -> np.ndarray:
    """Complete ``W (d, j)`` to ``k`` columns with ``basis (d, m)`` directions orthogonal to it
    (``basis`` may be a callable returning them: it is called only when directions are missing)."""
    if W.shape[1] >= k:
        return W[:, :k]
    if callable(basis):
        basis = basis()
    Q, _ = np.linalg.qr(W)
    extra = basis - Q @ (Q.T @ basis)
    extra = np.linalg.qr(extra)[0][:, :k - W.shape[1]]
    return np.hstack([W, extra])


class CCACoder:
    """Few-shot category code: self-trained ridge CCA on library codes, then ITQ (see module doc).

    Args:
        n_bits: code length B (8 to 1024, a multiple of 8; default 16).
        ridge: CCA's ridge on the ±1 library codes.
        self_training: confident unlabeled codes added per class (0: none).
        max_background: background codes used at most (a random subset).
        random_state: seed of the subsets and of ITQ.

    Attributes:
        projection_: ``float32 (n_library_bits, n_bits)``; ``offset_``: ``float32 (n_bits,)``.
        The category code of library codes ``C`` is ``signed_bits(C) @ projection_ - offset_ >= 0``.

    In scikit-learn's manner (hyper-parameters in ``__init__``, fitted state ending in ``_``, ``fit``
    returns ``self``) without deriving from its ``BaseEstimator``: importing scikit-learn takes about
    1.5 s, which every client would pay on its first category definition.
    """

    def __init__(self, n_bits: int = 16, *, ridge: float = 1.0, self_training: int = 50,
                 max_background: int = 10_000, random_state: int | None = 0):
        self.n_bits = n_bits
        self.ridge = ridge
        self.self_training = self_training
        self.max_background = max_background
        self.random_state = random_state

    def fit(self, codes, y, *, background) -> "CCACoder":
        """Learn from labeled library codes ``(n, L/8)``, labels ``(n,)`` and unlabeled ``background``
        library codes (e.g. a sample of the collection; a :class:`.background.Background` keeps what
        is computed from it for the next fit): the background is required, it fixes the centring,
        fills missing directions and balances the bits."""
        n_bits = check_n_bits(self.n_bits)
        if not 8 <= n_bits <= 1024:
            raise expected("n_bits", "8 to 1024 bits", n_bits)
        codes = as_codes(codes)
        L = codes.shape[1] * 8
        if n_bits > L:
            raise expected("n_bits", f"at most the library's {L} bits", n_bits)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != codes.shape[0] or y.shape[0] == 0:
            raise expected("y", f"{codes.shape[0]} labels, one per code (and at least one)", f"shape {y.shape}")
        if background is None:
            raise expected("background", "unlabeled library codes (e.g. a sample of the collection)", None)
        bg = Background.of(background, n_bits=L)
        if len(bg) < n_bits:
            raise expected("background", f"at least n_bits = {n_bits} unlabeled codes", f"{len(bg)}")
        rng = np.random.default_rng(self.random_state)
        if len(bg) > self.max_background:
            bg = Background(bg.codes[rng.choice(len(bg), self.max_background, replace=False)])
        Fu, mean = bg.signed(), bg.mean()
        Fl = signed_bits(codes)
        classes = np.unique(y)
        if classes.size < 2:  # one category: the background is its negative class
            Fl = np.vstack([Fl, Fu[: max(10 * Fl.shape[0], 100)]])
            y = np.concatenate([np.zeros(len(codes), dtype=np.int64), np.ones(Fl.shape[0] - len(codes), dtype=np.int64)])
            classes = np.array([0, 1])

        def basis():  # principal directions of the background, computed only if directions are missing
            return bg.principal_directions(n_bits, random_state=self.random_state)
        W = fill_directions(span_cca(Fl, y, n_bits, ridge=self.ridge), n_bits, basis)
        if self.self_training and classes.size >= 2:
            W = self._self_train(Fl, y, Fu, mean, W, classes, n_bits, basis)
        W32 = W.astype(np.float32)  # float32 products with the float32 codes: no (n, L) float64 copy
        V = (Fu @ W32 - mean @ W32).astype(np.float64)
        R = itq_rotation(V, rng=rng)
        self.projection_ = (W @ R).astype(np.float32)
        self.offset_ = (mean @ self.projection_).astype(np.float32)
        self.n_library_bits_ = L
        return self

    def _self_train(self, Fl, y, Fu, mean, W, classes, n_bits, basis):
        k = min(classes.size - 1, W.shape[1])
        Wk = W[:, :k].astype(np.float32)
        Zu = Fu @ Wk - mean @ Wk
        Zl = Fl @ Wk - mean @ Wk
        yi = np.searchsorted(classes, y)
        means = np.stack([Zl[yi == c].mean(0) for c in range(classes.size)])
        Zn = Zu / np.maximum(np.linalg.norm(Zu, axis=1, keepdims=True), 1e-12)
        Mn = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        sim = Zn @ Mn.T
        pseudo = sim.argmax(1)
        top2 = np.sort(sim, axis=1)[:, -2:]
        confidence = top2[:, 1] - top2[:, 0]
        keep = []
        for c in range(classes.size):
            members = np.flatnonzero(pseudo == c)
            keep.append(members[np.argsort(-confidence[members], kind="stable")][: int(self.self_training)])
        keep = np.concatenate(keep)
        X2 = np.vstack([Fl, Fu[keep]])
        y2 = np.concatenate([yi, pseudo[keep]])
        return fill_directions(span_cca(X2, y2, n_bits, ridge=self.ridge), n_bits, basis)

    def transform(self, codes) -> np.ndarray:
        """Category codes ``uint8 (n, n_bits // 8)`` from library codes ``uint8 (n, L // 8)``."""
        if not hasattr(self, "projection_"):  # scikit-learn's error, imported only here (it is slow to import)
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this CCACoder is not fitted yet: call fit(codes, y, background=...) first")
        codes = as_codes(codes, n_bits=self.n_library_bits_)
        out = np.empty((codes.shape[0], self.projection_.shape[1] // 8), dtype=np.uint8)
        for start in range(0, codes.shape[0], _CHUNK):
            F = signed_bits(codes[start:start + _CHUNK])
            out[start:start + _CHUNK] = pack_bits(F @ self.projection_ - self.offset_ >= 0)
        return out


__all__ = ["CCACoder", "span_cca", "fill_directions"]
