"""The unlabeled background a few-shot code learns against: a sample of the store's library codes.

Every category defined on a collection uses the same sample (a client reads it once), so what the
coders compute from it is computed once too and kept here: the bits' counts, the codes as a ±1
``float32`` matrix and its mean (the centring of :class:`~.fewshot.CCACoder`), and principal
directions. The ±1 matrix is the one large thing: ``n x L x 4`` bytes (160 MB for 2,000 codes of
20,000 bits), built on first use; a plain array of codes given to a coder is wrapped for that call only.
"""

from __future__ import annotations

import numpy as np

from ...codes import as_codes, signed_bits
from ...errors import expected


class Background:
    """Library codes ``uint8 (n, L // 8)`` of unlabeled items, with statistics computed once.

    Attributes:
        codes: the codes, as given (C-contiguous ``uint8``).
    """

    def __init__(self, codes: np.ndarray):
        self.codes = as_codes(codes, argument="background")
        self._signed: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._counts: np.ndarray | None = None
        self._directions: dict[tuple, np.ndarray] = {}

    @classmethod
    def of(cls, background, *, n_bits: int | None = None) -> "Background":
        """``background`` itself if it is a :class:`Background`, else a new one around the array;
        checked to hold ``n_bits``-bit codes."""
        if not isinstance(background, cls):
            return cls(as_codes(background, n_bits=n_bits, argument="background"))
        if n_bits is not None and background.n_bits != n_bits:
            raise expected("background", f"{n_bits // 8} bytes per code ({n_bits} bits)",
                           f"{background.n_bits // 8} bytes per code ({background.n_bits} bits)")
        return background

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def n_bits(self) -> int:
        return self.codes.shape[1] * 8

    def signed(self) -> np.ndarray:
        """The codes as ±1, ``float32 (n, L)`` (cached)."""
        if self._signed is None:
            self._signed = signed_bits(self.codes)
        return self._signed

    def _column_sums(self) -> None:
        # one pass over the ±1 codes for both: sums of ±1 in float32 are exact below 2**24 codes
        if len(self) == 0:
            self._mean = np.zeros(self.n_bits, np.float32)
            self._counts = np.zeros(self.n_bits, np.float64)
            return
        sums = self.signed().sum(0)
        self._mean = sums / np.float32(len(self))
        self._counts = (sums.astype(np.float64) + len(self)) / 2.0

    def mean(self) -> np.ndarray:
        """Mean ±1 code ``float32 (L,)`` (cached)."""
        if self._mean is None:
            self._column_sums()
        return self._mean

    def bit_counts(self) -> np.ndarray:
        """How many codes have each bit set, ``float64 (L,)`` (cached)."""
        if self._counts is None:
            self._column_sums()
        return self._counts

    def principal_directions(self, k: int, *, random_state=0) -> np.ndarray:
        """Top ``k`` principal directions ``float64 (L, k)`` of the centred ±1 codes (randomized SVD, cached)."""
        key = (int(k), random_state)
        if key not in self._directions:
            from sklearn.utils.extmath import randomized_svd

            self._directions[key] = randomized_svd(self.signed() - self.mean(), n_components=int(k),
                                                   random_state=random_state)[2].T
        return self._directions[key]


__all__ = ["Background"]
