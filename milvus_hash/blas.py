"""BLAS threads for small linear algebra.

A category definition is a few hundred small products and eigendecompositions (matrices of at
most a few thousand rows). OpenBLAS's threads cost more to wake than such products save: on the
2-core reference machine, the computation of a category from 10 positives on a 20,000-bit library
(``learn_category``, no Milvus) took about 300 ms with OpenBLAS's 2 threads and about 125 ms with
one around the coder and the ITQ rotation. Large products elsewhere (encoding a collection,
hyper-training) keep every thread.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

_controller = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread (threadpoolctl; a no-op where it is missing)."""
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        limiter = _controller.limit(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limiter = contextlib.nullcontext()
    with limiter:
        yield


__all__ = ["single_threaded_blas"]
