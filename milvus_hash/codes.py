"""The one binary-code format of milvus-hash, and exact Hamming search over it in numpy.

A batch of ``n`` codes of ``n_bits`` bits is a C-contiguous ``uint8`` array of shape
``(n, n_bits // 8)``. Bit ``j`` of a code lives in byte ``j // 8`` at position ``7 - j % 8``
(big-endian within each byte), exactly as ``np.packbits`` writes it and as Milvus reads a
``BINARY_VECTOR``. ``n_bits`` must be a positive multiple of 8 (Milvus requires it).

Distances are ``int32``; ids are ``int64``. Rankings break ties by ascending id, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import expected

PAD_ID = -1
"""Id used to pad a top-k result that has fewer than ``k`` hits."""
PAD_DISTANCE = np.iinfo(np.int32).max
"""Distance used to pad a top-k result that has fewer than ``k`` hits."""

MAX_BITS = 32768 * 8
_CHUNK_BYTES = 64 * 1024 * 1024  # working-set bound of the chunked numpy kernels


def check_n_bits(n_bits: object, *, argument: str = "n_bits") -> int:
    """Return ``n_bits`` as an int, or raise if it is not a positive multiple of 8."""
    if isinstance(n_bits, (bool, np.bool_)) or not isinstance(n_bits, (int, np.integer)):
        raise expected(argument, "a positive int that is a multiple of 8", repr(n_bits))
    n = int(n_bits)
    if n <= 0 or n % 8 or n > MAX_BITS:
        raise expected(
            argument, f"a positive multiple of 8 up to {MAX_BITS} (Milvus stores whole bytes)", n
        )
    return n


def as_codes(codes: object, *, n_bits: int | None = None, argument: str = "codes") -> np.ndarray:
    """Validate packed codes and return them as a C-contiguous ``uint8`` array ``(n, n_bytes)``.

    A single code of shape ``(n_bytes,)`` is promoted to ``(1, n_bytes)``. No dtype conversion is
    done: anything but ``uint8`` is an error, because a silently cast array is a silently wrong one.
    """
    if not isinstance(codes, np.ndarray):
        raise expected(argument, "a numpy uint8 array of packed codes", type(codes).__name__)
    if codes.dtype != np.uint8:
        raise expected(argument, "dtype uint8 (packed bits, see milvus_hash.codes.pack_bits)",
                       f"dtype {codes.dtype}")
    if codes.ndim == 1:
        codes = codes.reshape(1, -1)
    if codes.ndim != 2:
        raise expected(argument, "shape (n, n_bits // 8)", f"shape {codes.shape}")
    if n_bits is not None and codes.shape[1] * 8 != n_bits:
        raise expected(argument, f"{n_bits // 8} bytes per code ({n_bits} bits)",
                       f"{codes.shape[1]} bytes per code ({codes.shape[1] * 8} bits)")
    if codes.shape[1] == 0:
        raise expected(argument, "at least one byte per code", f"shape {codes.shape}")
    return np.ascontiguousarray(codes)


def as_ids(ids: object, *, n: int | None = None, argument: str = "ids") -> np.ndarray:
    """Validate ids and return them as a 1-D ``int64`` array (integers only, no floats)."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer)):
        raise expected(argument, "a 1-D sequence of integers", f"dtype {arr.dtype}, shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise expected(argument, "ids that fit in int64", f"max id {arr.max()}")
    arr = arr.astype(np.int64, copy=False)
    if n is not None and arr.shape[0] != n:
        raise expected(argument, f"{n} ids, one per code", f"{arr.shape[0]} ids")
    return arr


def pack_bits(bits: object) -> np.ndarray:
    """Pack a 0/1 (or bool) matrix ``(n, n_bits)`` into codes ``uint8 (n, n_bits // 8)``."""
    arr = np.asarray(bits)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise expected("bits", "a 2-D 0/1 matrix (n, n_bits)", f"shape {arr.shape}")
    check_n_bits(arr.shape[1], argument="bits.shape[1]")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise expected("bits", "a numeric or bool 0/1 matrix", f"dtype {arr.dtype}")
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise expected("bits", "only the values 0 and 1", "other values")
    return np.packbits(arr.astype(np.bool_, copy=False), axis=1)


def unpack_bits(codes: np.ndarray, *, n_bits: int | None = None) -> np.ndarray:
    """Unpack codes ``uint8 (n, n_bytes)`` into a 0/1 ``uint8`` matrix ``(n, n_bits)``."""
    codes = as_codes(codes, n_bits=n_bits)
    return np.unpackbits(codes, axis=1)


#: Each byte value's 8 bits as ±1 (most significant first, as ``np.unpackbits``).
_SIGNED = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2.0 - 1.0


def signed_bits(codes: np.ndarray) -> np.ndarray:
    """Codes as a ±1 ``float32`` matrix ``(n, n_bits)`` (bit 1 -> +1, bit 0 -> -1), for linear models.
    One lookup per byte: no 0/1 or intermediate float copies."""
    codes = as_codes(codes)
    return _SIGNED[codes].reshape(codes.shape[0], -1)


def select_bits(codes: np.ndarray, positions: object, *, n_bits: int | None = None) -> np.ndarray:
    """Build shorter codes from chosen bit positions of longer ones.

    Args:
        codes: ``uint8 (n, n_bytes)`` packed codes, e.g. library codes of 20,000 bits.
        positions: ``(B,)`` bit positions in ``[0, n_bytes * 8)``; ``B`` must be a multiple of 8.
            Bit ``i`` of the result is bit ``positions[i]`` of the input.
        n_bits: optional check of the input's width.

    Returns:
        ``uint8 (n, B // 8)`` packed codes. Memory stays bounded: rows are processed in chunks.
    """
    codes = as_codes(codes, n_bits=n_bits)
    total = codes.shape[1] * 8
    pos = np.asarray(positions)
    if pos.ndim != 1 or not np.issubdtype(pos.dtype, np.integer):
        raise expected("positions", "a 1-D array of integer bit positions", f"dtype {pos.dtype}, shape {pos.shape}")
    check_n_bits(pos.shape[0], argument="len(positions)")
    if pos.min() < 0 or pos.max() >= total:
        raise expected("positions", f"bit positions in [0, {total})", f"range [{pos.min()}, {pos.max()}]")
    byte_idx = (pos >> 3).astype(np.intp)
    shift = (7 - (pos & 7)).astype(np.uint8)
    out = np.empty((codes.shape[0], pos.shape[0] // 8), dtype=np.uint8)
    step = max(1, _CHUNK_BYTES // max(1, pos.shape[0]))
    for start in range(0, codes.shape[0], step):
        block = codes[start:start + step]
        bits = (block[:, byte_idx] >> shift) & 1
        out[start:start + step] = np.packbits(bits, axis=1)
    return out


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    """Sum of set bits along the last axis, as int32."""
    return np.bitwise_count(x).sum(axis=-1, dtype=np.int32)


def _wide_view(codes: np.ndarray) -> np.ndarray:
    """View codes as uint64 words when the width allows it (8x fewer popcounts)."""
    if codes.shape[1] % 8 == 0:
        return codes.view(np.uint64)
    return codes


def hamming_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Exact Hamming distances ``int32 (nq, nd)`` between two batches of codes of one width."""
    q = as_codes(queries, argument="queries")
    d = as_codes(database, n_bits=q.shape[1] * 8, argument="database")
    qw, dw = _wide_view(q), _wide_view(d)
    out = np.empty((q.shape[0], d.shape[0]), dtype=np.int32)
    step = max(1, _CHUNK_BYTES // max(1, d.shape[0] * d.shape[1]))
    for start in range(0, q.shape[0], step):
        block = qw[start:start + step, None, :] ^ dw[None, :, :]
        out[start:start + step] = _popcount_rows(block)
    return out


@dataclass(frozen=True)
class TopK:
    """Result of a top-k search: ``ids int64 (nq, k)``, ``distances int32 (nq, k)``.

    Rows are sorted by (distance, id). A query with fewer than ``k`` hits is padded with
    ``PAD_ID`` (-1) and ``PAD_DISTANCE`` (int32 max).
    """

    ids: np.ndarray
    distances: np.ndarray


@dataclass(frozen=True)
class Hits:
    """Hits of one query of a range search, sorted by (distance, id).

    ``ids int64 (m,)``, ``distances int32 (m,)``; ``truncated`` is True when the backend's
    result limit cut the list, so that more codes lie within the radius than are listed.
    """

    ids: np.ndarray
    distances: np.ndarray
    truncated: bool = False


def _check_k(k: object) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or int(k) < 1:
        raise expected("k", "a positive int", repr(k))
    return int(k)


def _database_ids(ids: object, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) if ids is None else as_ids(ids, n=n, argument="ids")


def hamming_topk(queries: np.ndarray, database: np.ndarray, k: int, *, ids: object = None) -> TopK:
    """Exact top-k by Hamming distance, ties broken by ascending id.

    Args:
        queries: ``uint8 (nq, n_bytes)``.
        database: ``uint8 (nd, n_bytes)``.
        k: number of neighbours per query; results are padded when ``k > nd``.
        ids: ``int64 (nd,)`` ids of the database rows (default ``0..nd-1``).
    """
    k = _check_k(k)
    q = as_codes(queries, argument="queries")
    d = as_codes(database, n_bits=q.shape[1] * 8, argument="database")
    db_ids = _database_ids(ids, d.shape[0])
    nq, nd = q.shape[0], d.shape[0]
    out_ids = np.full((nq, k), PAD_ID, dtype=np.int64)
    out_dist = np.full((nq, k), PAD_DISTANCE, dtype=np.int32)
    if nd == 0 or nq == 0:
        return TopK(out_ids, out_dist)
    # Sort the database by id once: a row's position is then its tie-breaking rank.
    order = np.argsort(db_ids, kind="stable")
    d_sorted, ids_sorted = d[order], db_ids[order]
    kk = min(k, nd)
    step = max(1, _CHUNK_BYTES // max(1, nd * max(d.shape[1], 8)))
    rank = np.arange(nd, dtype=np.int64)
    for start in range(0, nq, step):
        dist = hamming_distances(q[start:start + step], d_sorted)
        key = dist.astype(np.int64) * nd + rank  # (distance, id) in one sortable integer
        if kk < nd:
            part = np.argpartition(key, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(rank, key.shape)
        part_keys = np.take_along_axis(key, part, axis=1)
        sel = np.take_along_axis(part, np.argsort(part_keys, axis=1), axis=1)
        out_ids[start:start + step, :kk] = ids_sorted[sel]
        out_dist[start:start + step, :kk] = np.take_along_axis(dist, sel, axis=1)
    return TopK(out_ids, out_dist)


def check_radius(radius: object) -> int:
    """Validate a Hamming radius (a non-negative int; 'within r' means distance <= r)."""
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)) or int(radius) < 0:
        raise expected("radius", "a non-negative int (codes within distance <= radius)", repr(radius))
    return int(radius)


def hamming_range(queries: np.ndarray, database: np.ndarray, radius: int, *, ids: object = None) -> list[Hits]:
    """All database codes within Hamming distance ``<= radius`` of each query, sorted by (distance, id)."""
    radius = check_radius(radius)
    q = as_codes(queries, argument="queries")
    d = as_codes(database, n_bits=q.shape[1] * 8, argument="database")
    db_ids = _database_ids(ids, d.shape[0])
    out: list[Hits] = []
    step = max(1, _CHUNK_BYTES // max(1, d.shape[0] * max(d.shape[1], 8)))
    for start in range(0, q.shape[0], step):
        dist = hamming_distances(q[start:start + step], d)
        for row in dist:
            hit = np.flatnonzero(row <= radius)
            order = np.lexsort((db_ids[hit], row[hit]))
            out.append(Hits(ids=db_ids[hit][order], distances=row[hit][order].astype(np.int32)))
    return out


def codes_to_bytes(codes: np.ndarray) -> list[bytes]:
    """One ``bytes`` object per code, the form pymilvus takes for ``BINARY_VECTOR``."""
    width = codes.shape[1]
    raw = codes.tobytes()
    return [raw[i:i + width] for i in range(0, len(raw), width)]


def bytes_to_codes(values: list, n_bytes: int) -> np.ndarray:
    """Inverse of :func:`codes_to_bytes`; accepts pymilvus's ``[b'...']`` wrapping of a vector."""
    if not values:
        return np.empty((0, n_bytes), dtype=np.uint8)
    raw = b"".join(v[0] if isinstance(v, list) else v for v in values)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, n_bytes).copy()
