"""The one code format: packing round trips, bit order, selection, exact Hamming search."""

import numpy as np
import pytest

from milvus_hash import (
    InvalidInputError,
    hamming_distances,
    hamming_range,
    hamming_topk,
    pack_bits,
    select_bits,
    unpack_bits,
)
from milvus_hash.codes import PAD_DISTANCE, PAD_ID, as_codes, bytes_to_codes, check_n_bits, codes_to_bytes


def naive_distances(q, d):
    qb, db = np.unpackbits(q, axis=1).astype(int), np.unpackbits(d, axis=1).astype(int)
    return (qb[:, None, :] != db[None, :, :]).sum(axis=2)


@pytest.mark.parametrize("n_bits", [8, 16, 24, 64, 256, 1024])
def test_pack_unpack_round_trip(n_bits):
    bits = np.random.default_rng(n_bits).integers(0, 2, (37, n_bits), dtype=np.uint8)
    codes = pack_bits(bits)
    assert codes.dtype == np.uint8 and codes.shape == (37, n_bits // 8)
    np.testing.assert_array_equal(unpack_bits(codes), bits)
    np.testing.assert_array_equal(pack_bits(bits.astype(bool)), codes)


def test_bit_order_is_big_endian_within_bytes():
    bits = np.zeros((1, 16), dtype=np.uint8)
    bits[0, 0] = 1   # first bit -> most significant bit of byte 0
    bits[0, 15] = 1  # last bit -> least significant bit of byte 1
    np.testing.assert_array_equal(pack_bits(bits), [[0x80, 0x01]])
    np.testing.assert_array_equal(pack_bits(bits), np.packbits(bits, axis=1))


@pytest.mark.parametrize("n_bits", [0, 7, 12, -8, 8.0, True, "64"])
def test_n_bits_must_be_positive_multiple_of_8(n_bits):
    with pytest.raises(InvalidInputError, match="n_bits"):
        check_n_bits(n_bits)


def test_pack_rejects_widths_not_multiple_of_8_and_non_binary_values():
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        pack_bits(np.zeros((2, 12)))
    with pytest.raises(InvalidInputError, match="0 and 1"):
        pack_bits(np.full((2, 8), 2))


def test_as_codes_checks_dtype_shape_and_width():
    with pytest.raises(InvalidInputError, match=r"codes: expected dtype uint8.*int64"):
        as_codes(np.zeros((2, 8), dtype=np.int64))
    with pytest.raises(InvalidInputError, match=r"8 bytes per code \(64 bits\).*4 bytes"):
        as_codes(np.zeros((2, 4), dtype=np.uint8), n_bits=64)
    with pytest.raises(InvalidInputError, match="numpy uint8 array"):
        as_codes([[1, 2]])
    with pytest.raises(InvalidInputError, match="shape"):
        as_codes(np.zeros((2, 2, 2), dtype=np.uint8))
    assert as_codes(np.zeros(8, dtype=np.uint8)).shape == (1, 8)


@pytest.mark.parametrize("n_bits", [16, 72, 256])
def test_hamming_distances_equal_naive_count(n_bits):
    rng = np.random.default_rng(n_bits)
    q = rng.integers(0, 256, (9, n_bits // 8), dtype=np.uint8)
    d = rng.integers(0, 256, (50, n_bits // 8), dtype=np.uint8)
    dist = hamming_distances(q, d)
    assert dist.dtype == np.int32 and dist.shape == (9, 50)
    np.testing.assert_array_equal(dist, naive_distances(q, d))


def brute_topk(q, d, k, ids):
    dist = naive_distances(q, d)
    out_ids, out_dist = [], []
    for row in dist:
        order = sorted(range(len(ids)), key=lambda j: (row[j], ids[j]))[:k]
        out_ids.append([ids[j] for j in order])
        out_dist.append([row[j] for j in order])
    return np.array(out_ids), np.array(out_dist)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_topk_equals_brute_force_with_ties_broken_by_id(k):
    rng = np.random.default_rng(k)
    d = rng.integers(0, 4, (40, 1), dtype=np.uint8)  # 8-bit codes with few values: many ties
    q = rng.integers(0, 256, (6, 1), dtype=np.uint8)
    ids = rng.permutation(1000)[:40].astype(np.int64)
    res = hamming_topk(q, d, k, ids=ids)
    exp_ids, exp_dist = brute_topk(q, d, k, ids.tolist())
    np.testing.assert_array_equal(res.ids, exp_ids)
    np.testing.assert_array_equal(res.distances, exp_dist)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.int32


def test_topk_pads_when_k_exceeds_database():
    d = np.array([[1], [3]], dtype=np.uint8)
    res = hamming_topk(np.array([[0]], dtype=np.uint8), d, 4)
    np.testing.assert_array_equal(res.ids, [[0, 1, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(res.distances, [[1, 2, PAD_DISTANCE, PAD_DISTANCE]])


def test_topk_bad_input():
    d = np.zeros((3, 2), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match="k: expected a positive int"):
        hamming_topk(d, d, 0)
    with pytest.raises(InvalidInputError, match="ids: expected 3 ids"):
        hamming_topk(d, d, 1, ids=[1, 2])
    with pytest.raises(InvalidInputError, match="database: expected 2 bytes per code"):
        hamming_topk(d, np.zeros((3, 1), dtype=np.uint8), 1)


def test_range_returns_everything_within_radius_inclusive():
    rng = np.random.default_rng(3)
    d = rng.integers(0, 256, (200, 2), dtype=np.uint8)
    q = d[:4]
    ids = np.arange(1000, 1200)
    hits = hamming_range(q, d, 5, ids=ids)
    dist = naive_distances(q, d)
    for i, h in enumerate(hits):
        expected = sorted((dist[i, j], ids[j]) for j in range(200) if dist[i, j] <= 5)
        assert [(int(a), int(b)) for a, b in zip(h.distances, h.ids)] == [(int(a), int(b)) for a, b in expected]
    with pytest.raises(InvalidInputError, match="radius"):
        hamming_range(q, d, -1)


@pytest.mark.parametrize("n_bits,n_sel", [(64, 16), (20000, 64), (1024, 8)])
def test_select_bits_equals_unpack_index_pack(n_bits, n_sel):
    rng = np.random.default_rng(n_sel)
    codes = rng.integers(0, 256, (25, n_bits // 8), dtype=np.uint8)
    pos = rng.choice(n_bits, size=n_sel, replace=False)
    np.testing.assert_array_equal(select_bits(codes, pos), pack_bits(unpack_bits(codes)[:, pos]))


def test_select_bits_bad_positions():
    codes = np.zeros((2, 8), dtype=np.uint8)
    with pytest.raises(InvalidInputError, match=r"positions: expected bit positions in \[0, 64\)"):
        select_bits(codes, np.arange(56, 72))
    with pytest.raises(InvalidInputError, match="len\\(positions\\)"):
        select_bits(codes, np.arange(12))


def test_bytes_round_trip_accepts_pymilvus_wrapping():
    codes = np.random.default_rng(0).integers(0, 256, (5, 4), dtype=np.uint8)
    raw = codes_to_bytes(codes)
    assert all(isinstance(b, bytes) and len(b) == 4 for b in raw)
    np.testing.assert_array_equal(bytes_to_codes(raw, 4), codes)
    np.testing.assert_array_equal(bytes_to_codes([[b] for b in raw], 4), codes)


@pytest.mark.unit
def test_merged_search_result_keeps_each_id_at_its_smallest_distance():
    from milvus_hash.store.records import SearchResult

    res = SearchResult(ids=np.array([[5, 7, 9], [7, 3, -1]]), distances=np.array([[1, 4, 6], [2, 4, 2**31 - 1]]),
                       fields=[[{"l": "a"}, {"l": "b"}, {"l": "c"}], [{"l": "b"}, {"l": "d"}]])
    ids, dist, fields = res.merged(exclude=[9])
    assert ids.tolist() == [5, 7, 3] and dist.tolist() == [1, 2, 4]
    assert [f["l"] for f in fields] == ["a", "b", "d"] and ids.dtype == np.int64 and dist.dtype == np.int32
    assert SearchResult(ids=res.ids, distances=res.distances).merged()[2] is None
