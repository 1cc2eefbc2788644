"""Input checks shared by the estimators, in scikit-learn's manner but without importing it (see
:mod:`.base`): an unfitted estimator raises scikit-learn's ``NotFittedError``, bad input an
:class:`~milvus_hash.errors.InvalidInputError` naming the argument."""

from __future__ import annotations

import numpy as np

from ..errors import expected


def check_fitted(estimator, attribute: str) -> None:
    """Raise scikit-learn's ``NotFittedError`` when ``estimator`` lacks the learned ``attribute``."""
    if not hasattr(estimator, attribute):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
                             "appropriate arguments before using this estimator.")


def check_features(X, argument: str = "X") -> np.ndarray:
    """``X`` as a finite, non-empty float matrix ``(n, d)``: float32 kept, anything else as float64."""
    try:
        arr = np.asarray(X)
        if arr.dtype != np.float32:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise expected(argument, "a matrix of numbers (n, d)", f"{type(X).__name__} ({exc})") from None
    if arr.ndim != 2:
        raise expected(argument, "a 2-D matrix (n, d): reshape one row with X.reshape(1, -1)",
                       f"an array of shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise expected(argument, "at least one row and one column", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise expected(argument, "finite numbers", "NaN or infinity")
    return arr


def fitted_features(estimator, X, attribute: str) -> np.ndarray:
    """Check that ``estimator`` is fitted and ``X`` is a float matrix with the feature count it saw."""
    check_fitted(estimator, attribute)
    X = check_features(X)
    if X.shape[1] != estimator.n_features_in_:
        raise expected("X", f"{estimator.n_features_in_} features per row (as in fit)", f"{X.shape[1]}")
    return X
