"""What every encoder shares: the record of which encoder wrote a collection.

A collection of codes is only meaningful together with the encoder that produced them: two hash
libraries of 64 bits give codes that look alike and mean different things. Every encoder (UGH
library, UTH network, LSH, ...) therefore describes itself by an :class:`EncoderSpec`, and the store
records it with each collection and refuses codes from any other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..codes import check_n_bits
from ..errors import expected


@dataclass(frozen=True)
class EncoderSpec:
    """Identity of an encoder.

    Attributes:
        kind: family of the encoder, e.g. ``"ugh"``, ``"uth"``, ``"lsh"``.
        fingerprint: hex digest of the encoder's learned parameters (see :func:`fingerprint`).
        n_bits: length of the codes it writes (a multiple of 8).
    """

    kind: str
    fingerprint: str
    n_bits: int

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise expected("kind", "a non-empty string", repr(self.kind))
        if not isinstance(self.fingerprint, str) or not self.fingerprint:
            raise expected("fingerprint", "a non-empty string", repr(self.fingerprint))
        object.__setattr__(self, "n_bits", check_n_bits(self.n_bits))

    def __str__(self) -> str:
        return f"{self.kind}:{self.fingerprint[:16]} ({self.n_bits} bits)"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderSpec":
        try:
            return cls(kind=data["kind"], fingerprint=data["fingerprint"], n_bits=int(data["n_bits"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise expected("encoder record", "a dict with kind, fingerprint and n_bits", repr(data)) from exc


@runtime_checkable
class Encoder(Protocol):
    """What the store and the pipeline need of an encoder.

    ``transform`` takes whatever the encoder consumes (feature rows ``(n, d)`` for UGH or LSH,
    images for UTH) and returns packed codes ``uint8 (n, n_bits // 8)``.
    """

    def transform(self, X) -> np.ndarray: ...

    def encoder_spec(self) -> EncoderSpec: ...


def fingerprint(*arrays: np.ndarray, **params: object) -> str:
    """SHA-256 over arrays (dtype, shape and bytes) and JSON-serialisable parameters."""
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
