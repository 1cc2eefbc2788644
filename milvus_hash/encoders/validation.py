"""Input checks shared by the encoders (scikit-learn style)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from ..errors import expected


def fitted_features(estimator, X, attribute: str) -> np.ndarray:
    """Check that ``estimator`` is fitted and ``X`` is a float matrix with the feature count it saw."""
    check_is_fitted(estimator, attribute)
    X = check_array(X, dtype=(np.float32, np.float64), input_name="X")
    if X.shape[1] != estimator.n_features_in_:
        raise expected("X", f"{estimator.n_features_in_} features per row (as in fit)", f"{X.shape[1]}")
    return X
