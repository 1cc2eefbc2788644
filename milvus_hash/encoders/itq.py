"""Iterative quantization (Gong and Lazebnik, CVPR 2011): PCA-ITQ and CCA-ITQ, as baselines and parts.

Project centred features onto ``n_bits`` directions (principal components, or CCA directions
learned from labels), then find the rotation ``R`` that minimises the quantization loss
``||sign(V R) - V R||`` by alternating Procrustes steps. A bit is 1 where ``(x - mean) P R >= 0``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ..codes import check_n_bits, pack_bits
from ..errors import InvalidInputError, expected
from .spec import EncoderSpec, fingerprint
from .rotation import itq_rotation
from .validation import fitted_features


def pca_directions(X: np.ndarray, k: int) -> np.ndarray:
    """Top ``k`` principal directions ``(d, k)`` of centred rows ``X``."""
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    return Vt[:k].T


def cca_directions(X: np.ndarray, y: np.ndarray, k: int, *, ridge: float = 1.0,
                   fill_from: np.ndarray | None = None) -> np.ndarray:
    """``k`` directions ``(d, k)`` of centred ``X`` most correlated with the one-hot labels ``y``.

    Solves ``Cxy Cyy^-1 Cyx w = rho^2 (Cxx + ridge I) w``. With ``C`` classes at most ``C - 1``
    directions carry label information; the rest are filled with the principal directions of ``X``
    (in the ``Cxx + ridge I`` metric), which is what the eigenproblem leaves arbitrary: those of
    ``fill_from`` (e.g. unlabeled rows) when given, completed with random directions when there
    are fewer rows than directions.
    """
    from scipy.linalg import eigh

    classes, yi = np.unique(y, return_inverse=True)
    Y = np.eye(classes.size)[yi]
    Y = Y - Y.mean(0)
    n, d = X.shape
    Cxx = X.T @ X / n + ridge * np.eye(d)
    Cxy = X.T @ Y / n
    Cyy = Y.T @ Y / n + 1e-6 * np.eye(Y.shape[1])
    M = Cxy @ np.linalg.solve(Cyy, Cxy.T)
    vals, vecs = eigh(M, Cxx)
    order = np.argsort(-vals)
    n_info = min(k, classes.size - 1)
    W = vecs[:, order[:n_info]]
    if k > n_info:  # fill with principal directions, made Cxx-orthogonal to the label directions
        F = X if fill_from is None else fill_from - fill_from.mean(0)
        P = pca_directions(F, min(d, k + classes.size))
        if P.shape[1] < k:  # fewer rows than directions: complete with random ones
            rng = np.random.default_rng(0)
            P = np.hstack([P, rng.standard_normal((d, k - P.shape[1]))])
        P = P - W @ (W.T @ Cxx @ P)
        W = np.hstack([W, np.linalg.qr(P)[0][:, :k - n_info]])
    return W


class ITQHasher(TransformerMixin, BaseEstimator):
    """PCA-ITQ (``projection="pca"``, unsupervised) or CCA-ITQ (``projection="cca"``, needs ``y``).

    ``fit(X, y, unlabeled=U)`` learns the projection from ``X`` (and ``y``) but the centring and the
    ITQ rotation from the unlabeled rows ``U`` when given (the semi-supervised variant).

    Attributes: ``mean_ (d,)``, ``projection_ (d, n_bits)`` (rotation included).
    """

    def __init__(self, n_bits: int = 16, *, projection: str = "pca", ridge: float = 1.0, n_iter: int = 50,
                 random_state: int | None = 0):
        self.n_bits = n_bits
        self.projection = projection
        self.ridge = ridge
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X, y=None, *, unlabeled=None) -> "ITQHasher":
        n_bits = check_n_bits(self.n_bits)
        X = check_array(X, dtype=np.float64, input_name="X")
        if n_bits > X.shape[1]:
            raise expected("n_bits", f"at most the {X.shape[1]} features", n_bits)
        U = None if unlabeled is None else check_array(unlabeled, dtype=np.float64, input_name="unlabeled")
        base = X if U is None else U
        self.mean_ = base.mean(0)
        if self.projection == "pca":
            P = pca_directions(base - self.mean_, n_bits)
        elif self.projection == "cca":
            if y is None or len(np.unique(y)) < 2:
                raise InvalidInputError("y: expected labels of at least two categories for CCA-ITQ, received none or one")
            P = cca_directions(X - X.mean(0), np.asarray(y), n_bits, ridge=self.ridge, fill_from=U)
        else:
            raise expected("projection", "'pca' or 'cca'", repr(self.projection))
        V = (base - self.mean_) @ P
        R = itq_rotation(V, n_iter=self.n_iter, rng=np.random.default_rng(self.random_state))
        self.projection_ = (P @ R).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        X = fitted_features(self, X, "projection_")
        return pack_bits((X - self.mean_) @ self.projection_ >= 0)

    def encoder_spec(self) -> EncoderSpec:
        check_is_fitted(self, "projection_")
        kind = f"{self.projection}-itq"
        return EncoderSpec(kind, fingerprint(self.mean_, self.projection_, kind=kind), int(self.n_bits))
