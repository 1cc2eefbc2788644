"""Few-shot bit selection (UGH paper, Section 3.2): a category's code from a few labeled examples.

:class:`L1BitSelector` is the paper's rule: an L1-regularised linear SVM on the library codes of the
labeled examples (one-vs-rest for several categories, absolute weights summed over them) whose
largest-magnitude weights pick ``n_bits`` library bits. The category code of any item is then
:func:`milvus_hash.codes.select_bits` of its stored library code, so it can be computed from the
store alone, without the images.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from ...codes import as_codes, check_n_bits, select_bits, signed_bits
from ...errors import InvalidInputError, expected


def labeled_codes(codes, y, background=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate few-shot input: packed codes ``(n, n_bytes)``, labels ``(n,)``, optional background codes.

    A single category (one distinct label) needs ``background`` codes, which become its negatives
    (label ``-1``). Returns the codes as ±1 floats and the labels.
    """
    codes = as_codes(codes)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != codes.shape[0]:
        raise expected("y", f"{codes.shape[0]} labels, one per code", f"shape {y.shape}")
    if codes.shape[0] == 0:
        raise expected("codes", "at least one labeled example", "none")
    classes = np.unique(y)
    if background is not None:
        bg = as_codes(background, n_bits=codes.shape[1] * 8, argument="background")
        if bg.shape[0] == 0:
            raise expected("background", "at least one background code", "none")
        codes = np.vstack([codes, bg])
        fill = -1 if np.issubdtype(y.dtype, np.number) else "__background__"
        if fill in set(classes.tolist()):
            raise expected("y", f"labels other than {fill!r} (it marks background)", repr(fill))
        y = np.concatenate([y, np.full(bg.shape[0], fill, dtype=y.dtype if fill == -1 else object)])
    elif classes.size < 2:
        raise InvalidInputError(
            f"y: expected examples of at least two categories, or background codes for one category, "
            f"received only {classes.tolist()!r} and no background")
    return signed_bits(codes), y


class L1BitSelector(BaseEstimator):
    """The paper's bit selection: largest weights of an L1-regularised linear SVM.

    Args:
        n_bits: bits to select (8 to 1024, a multiple of 8; default 16).
        C: inverse L1 regularisation strength. If the model keeps fewer than ``n_bits`` non-zero
            weights, ``C`` is doubled until it keeps enough (at most ``max_doublings`` times) and
            ``C_`` / ``lowered_`` record it; if that is still too few, ``filled_`` says how many
            bits came from a dense model instead.
        random_state: seed of liblinear's coordinate order (the selection is reproducible).

    Attributes:
        positions_: ``int64 (n_bits,)`` selected library bit positions, most important first.
        weights_: ``float64 (n_library_bits,)`` aggregated absolute weights.
        C_: the regularisation finally used; ``lowered_``: times it was relaxed.
        filled_: bits taken from a dense L2 model because even the relaxed L1 model kept fewer
            than ``n_bits`` weights (it keeps about as many as there are examples).
        n_library_bits_: width of the library codes seen in ``fit``.
    """

    def __init__(self, n_bits: int = 16, *, C: float = 1.0, max_doublings: int = 20, random_state: int | None = 0):
        self.n_bits = n_bits
        self.C = C
        self.max_doublings = max_doublings
        self.random_state = random_state

    def fit(self, codes, y, *, background=None) -> "L1BitSelector":
        n_bits = check_n_bits(self.n_bits)
        if not 8 <= n_bits <= 1024:
            raise expected("n_bits", "8 to 1024 bits", n_bits)
        packed = as_codes(codes)
        if n_bits > packed.shape[1] * 8:
            raise expected("n_bits", f"at most the library's {packed.shape[1] * 8} bits", n_bits)
        F, labels = labeled_codes(packed, y, background)
        C, lowered = float(self.C), 0
        while True:
            svm = LinearSVC(penalty="l1", loss="squared_hinge", dual=False, C=C, max_iter=5000, tol=1e-4,
                            random_state=self.random_state)
            svm.fit(F, labels)
            weights = np.abs(svm.coef_).sum(0)
            if np.count_nonzero(weights) >= n_bits or lowered >= self.max_doublings:
                break
            C *= 2.0
            lowered += 1
        order = np.argsort(-weights, kind="stable")
        nonzero = int(np.count_nonzero(weights))
        filled = max(0, n_bits - nonzero)
        if filled:
            # An L1 model keeps at most about as many weights as it has examples: with very few,
            # the rest of the code comes from the dense (L2) model's largest weights.
            dense = LinearSVC(penalty="l2", loss="squared_hinge", C=float(self.C), max_iter=5000,
                              random_state=self.random_state).fit(F, labels)
            rest = np.abs(dense.coef_).sum(0)
            rest[order[:nonzero]] = -np.inf
            order = np.concatenate([order[:nonzero], np.argsort(-rest, kind="stable")])
        self.positions_ = order[:n_bits].astype(np.int64)
        self.weights_ = weights
        self.C_ = C
        self.lowered_ = lowered
        self.filled_ = filled
        self.n_library_bits_ = packed.shape[1] * 8
        return self

    def transform(self, codes) -> np.ndarray:
        """Category codes ``uint8 (n, n_bits // 8)`` from library codes ``uint8 (n, n_library_bits // 8)``."""
        check_is_fitted(self, "positions_")
        return select_bits(codes, self.positions_, n_bits=self.n_library_bits_)
