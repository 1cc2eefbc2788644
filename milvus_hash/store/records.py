"""Plain result types returned by the store (numpy arrays, documented shapes and dtypes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..encoders.spec import EncoderSpec


@dataclass(frozen=True)
class CollectionInfo:
    """What milvus-hash knows of a collection: its encoder, code length and index."""

    name: str
    encoder: EncoderSpec
    index_type: str
    index_params: dict = field(default_factory=dict)

    @property
    def n_bits(self) -> int:
        return self.encoder.n_bits


@dataclass(frozen=True)
class Records:
    """Rows of a collection, in the order they were asked for.

    Attributes:
        ids: ``int64 (n,)``.
        codes: ``uint8 (n, n_bits // 8)`` or None when codes were not requested.
        sources: source path or URI of each row ("" where none was given).
        labels: label of each row, None where none was given.
        metadata: JSON metadata of each row (a dict).
        missing: ``int64 (m,)`` ids that were asked for and not found (``get`` only).
    """

    ids: np.ndarray
    codes: np.ndarray | None
    sources: list[str]
    labels: list[str | None]
    metadata: list[dict]
    missing: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class SearchResult:
    """Top-k hits of a batch of queries.

    Attributes:
        ids: ``int64 (nq, k)``, each row sorted by (distance, id); padded with -1.
        distances: ``int32 (nq, k)`` Hamming distances; padded with int32 max.
        fields: when output fields were requested, ``fields[i][j]`` is the dict of hit ``j`` of
            query ``i`` (only real hits, so each inner list may be shorter than ``k``).
    """

    ids: np.ndarray
    distances: np.ndarray
    fields: list[list[dict]] | None = None

    def merged(self, *, exclude=()) -> tuple[np.ndarray, np.ndarray, list[dict] | None]:
        """The hits of all queries as one ranking (a multi-query search): each id once, at its
        smallest distance, sorted by (distance, id); ids in ``exclude`` left out. Returns
        ``(ids int64 (m,), distances int32 (m,), fields or None)``."""
        skip = {int(i) for i in exclude}
        best: dict[int, tuple[int, dict | None]] = {}
        for q in range(self.ids.shape[0]):
            for j, (i, d) in enumerate(zip(self.ids[q].tolist(), self.distances[q].tolist())):
                if i >= 0 and i not in skip and (i not in best or d < best[i][0]):
                    best[i] = (d, self.fields[q][j] if self.fields is not None else None)
        order = sorted(best, key=lambda i: (best[i][0], i))
        return (np.array(order, np.int64), np.array([best[i][0] for i in order], np.int32),
                [best[i][1] for i in order] if self.fields is not None else None)
