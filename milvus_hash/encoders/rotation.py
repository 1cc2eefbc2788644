"""ITQ's rotation step (Gong and Lazebnik, CVPR 2011), shared by :mod:`.itq` and the few-shot
:class:`~milvus_hash.encoders.ugh.CCACoder`; plain numpy, so a category definition imports no
scikit-learn."""

from __future__ import annotations

import numpy as np

from ..blas import single_threaded_blas


def itq_rotation(V: np.ndarray, *, n_iter: int = 50, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal ``(b, b)`` rotation minimising the quantization loss of centred projections ``V (n, b)``."""
    b = V.shape[1]
    with single_threaded_blas():  # (n, b) x (b, b) products and b x b SVDs: threads only slow them
        R, _ = np.linalg.qr(rng.standard_normal((b, b)))
        for _ in range(n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            U, _, Wt = np.linalg.svd(V.T @ B)
            R = U @ Wt
    return R


__all__ = ["itq_rotation"]
