"""HashStore on real Milvus: every test runs on Milvus Lite and on a real standalone server."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_spec, random_codes
from milvus_hash import (
    CollectionNotFoundError,
    EncoderMismatchError,
    HashStore,
    InvalidInputError,
    NotAHashCollectionError,
    hamming_range,
    hamming_topk,
    pack_bits,
    select_bits,
)
from milvus_hash.store.hash_store import parse_version


def fill(store, name, n=500, n_bits=64, seed=0, **extra):
    spec = make_spec(n_bits)
    store.create_collection(name, encoder=spec)
    codes = random_codes(n, n_bits, seed)
    ids = np.random.default_rng(seed).permutation(10 * n)[:n].astype(np.int64) + 10**12
    store.upsert(name, ids=ids, codes=codes, encoder=spec, **extra)
    return spec, ids, codes


def test_milvus_hamming_equals_numpy_on_the_packed_layout(store, collection):
    """Single-bit codes: bit j set alone must be at distance 1 from zero and 2 from bit i set alone."""
    spec = make_spec(16)
    store.create_collection(collection, encoder=spec)
    bits = np.eye(16, dtype=np.uint8)
    store.upsert(collection, ids=np.arange(16), codes=pack_bits(bits), encoder=spec)
    zero = np.zeros((1, 2), dtype=np.uint8)
    res = store.search(collection, codes=zero, k=16)
    assert (res.distances == 1).all()
    first = pack_bits(bits[:1])  # bit 0 = most significant bit of byte 0 = 0x80
    assert first.tolist() == [[0x80, 0x00]]
    res = store.search(collection, codes=first, k=16, ties="id")
    assert res.ids[0, 0] == 0 and res.distances[0, 0] == 0
    np.testing.assert_array_equal(res.ids[0, 1:], np.arange(1, 16))
    assert (res.distances[0, 1:] == 2).all()


@pytest.mark.parametrize("n_bits", [16, 64, 256, 1024])
def test_topk_equals_numpy_reference(store, collection, n_bits):
    spec, ids, codes = fill(store, collection, n=800, n_bits=n_bits, seed=n_bits)
    queries = np.vstack([codes[:10], random_codes(10, n_bits, seed=99)])
    k = 25
    ref = hamming_topk(queries, codes, k, ids=ids)
    exact = store.search(collection, codes=queries, k=k, ties="id", encoder=spec)
    np.testing.assert_array_equal(exact.ids, ref.ids)
    np.testing.assert_array_equal(exact.distances, ref.distances)
    fast = store.search(collection, codes=queries, k=k)
    np.testing.assert_array_equal(fast.distances, ref.distances)
    for row in range(len(queries)):  # below the k-th distance the sets must agree exactly
        strict = ref.distances[row] < ref.distances[row, -1]
        np.testing.assert_array_equal(fast.ids[row][strict], ref.ids[row][strict])
    assert exact.ids.dtype == np.int64 and exact.distances.dtype == np.int32


def test_ties_by_id_beyond_one_answer_of_milvus(store, collection):
    """More codes tied at the k-th distance than one Milvus answer holds (16,384)."""
    spec = make_spec(16)
    store.create_collection(collection, encoder=spec)
    n = 20_000
    codes = np.zeros((n, 2), dtype=np.uint8)
    ids = np.random.default_rng(1).permutation(10 * n)[:n].astype(np.int64)
    store.insert(collection, ids=ids, codes=codes, encoder=spec)
    res = store.search(collection, codes=codes[:1], k=5, ties="id")
    np.testing.assert_array_equal(res.ids[0], np.sort(ids)[:5])


def test_range_search_equals_numpy(store, collection):
    spec, ids, codes = fill(store, collection, n=600, n_bits=32, seed=5)
    queries = codes[:8]
    ref = hamming_range(queries, codes, 9, ids=ids)
    got = store.range_search(collection, codes=queries, radius=9)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.ids, r.ids)
        np.testing.assert_array_equal(g.distances, r.distances)
        assert not g.truncated
    capped = store.range_search(collection, codes=queries[:1], radius=32, limit=10)
    assert capped[0].truncated and len(capped[0].ids) == 10
    np.testing.assert_array_equal(capped[0].distances, hamming_topk(queries[:1], codes, 10, ids=ids).distances[0])


def test_upsert_is_idempotent_and_replaces(store, collection):
    spec, ids, codes = fill(store, collection, n=300, seed=2)
    assert store.count(collection) == 300
    store.upsert(collection, ids=ids, codes=codes, encoder=spec)  # a rerun writes no duplicates
    assert store.count(collection) == 300
    new = random_codes(3, 64, seed=7)
    store.upsert(collection, ids=ids[:3], codes=new, encoder=spec, labels=["a", "b", None])
    assert store.count(collection) == 300
    got = store.get(collection, ids=ids[:3])
    np.testing.assert_array_equal(got.codes, new)
    assert got.labels == ["a", "b", None]


def test_delete_removes_exactly_the_ids_asked(store, collection):
    spec, ids, codes = fill(store, collection, n=2500, seed=4)
    gone = ids[::3]  # 834 ids, more than one request's worth
    assert store.delete(collection, ids=np.concatenate([gone, [123456789]])) == gone.size + 1  # unknown: ignored
    assert store.count(collection) == 2500 - gone.size
    assert set(store.get(collection, ids=ids).missing.tolist()) == set(gone.tolist())
    kept = np.setdiff1d(np.arange(2500), np.arange(0, 2500, 3))
    res = store.search(collection, codes=codes[:4], k=5)
    ref = hamming_topk(codes[:4], codes[kept], k=5, ids=ids[kept])
    np.testing.assert_array_equal(res.distances, ref.distances)
    assert store.delete(collection, ids=[]) == 0 and store.count(collection) == 2500 - gone.size


def test_get_returns_rows_in_order_and_lists_missing(store, collection):
    spec, ids, codes = fill(store, collection, n=50, seed=3,
                            sources=[f"/img/{i}.png" for i in range(50)], labels=list(range(50)),
                            metadata=[{"i": i, "tags": ["x"]} for i in range(50)])
    ask = np.array([ids[7], 42, ids[2]], dtype=np.int64)
    got = store.get(collection, ids=ask)
    np.testing.assert_array_equal(got.ids, [ids[7], ids[2]])
    np.testing.assert_array_equal(got.codes, codes[[7, 2]])
    assert got.sources == ["/img/7.png", "/img/2.png"]
    assert got.labels == ["7", "2"]
    assert got.metadata == [{"i": 7, "tags": ["x"]}, {"i": 2, "tags": ["x"]}]
    np.testing.assert_array_equal(got.missing, [42])
    # Few-shot categories later select bits from fetched library codes: fetched codes are the written ones.
    np.testing.assert_array_equal(select_bits(got.codes, np.arange(0, 64, 8)), select_bits(codes[[7, 2]], np.arange(0, 64, 8)))


def test_iter_codes_streams_every_row_once_by_id(store, collection):
    spec, ids, codes = fill(store, collection, n=2_345, n_bits=32, seed=4)
    seen_ids, seen_codes, sizes = [], [], []
    for batch_ids, batch_codes in store.iter_codes(collection, batch_size=500):
        sizes.append(len(batch_ids))
        seen_ids.append(batch_ids)
        seen_codes.append(batch_codes)
    all_ids = np.concatenate(seen_ids)
    assert max(sizes) <= 500 and len(sizes) == 5
    assert (np.diff(all_ids) > 0).all()
    order = np.argsort(ids)
    np.testing.assert_array_equal(all_ids, ids[order])
    np.testing.assert_array_equal(np.vstack(seen_codes), codes[order])



def test_wide_codes_are_read_in_several_small_answers_and_lose_nothing(store, collection):
    """20,000-bit codes: a read by id and a stream take about 256 KiB an answer (104 rows), in order."""
    from milvus_hash.store.hash_store import _rows_per_answer

    assert _rows_per_answer(20_000, 1000) == 104 and _rows_per_answer(64, 1000) == 1000
    spec, ids, codes = fill(store, collection, n=300, n_bits=20_000, seed=8)
    ask = ids[::-1].copy()
    got = store.get(collection, ids=ask)
    np.testing.assert_array_equal(got.ids, ask)
    np.testing.assert_array_equal(got.codes, codes[::-1])
    batches = list(store.iter_records(collection))
    assert [len(b.ids) for b in batches] == [104, 104, 92]
    order = np.argsort(ids)
    np.testing.assert_array_equal(np.concatenate([b.ids for b in batches]), ids[order])
    np.testing.assert_array_equal(np.vstack([b.codes for b in batches]), codes[order])

def test_search_returns_fields_and_filters(store, collection):
    spec, ids, codes = fill(store, collection, n=200, seed=6, labels=["cat" if i % 2 else "dog" for i in range(200)],
                            sources=[f"s{i}" for i in range(200)])
    res = store.search(collection, codes=codes[:3], k=5, filter='label == "cat"', output_fields=["label", "source"])
    assert all(f["label"] == "cat" for row in res.fields for f in row)
    cats = np.array([i % 2 == 1 for i in range(200)])
    ref = hamming_topk(codes[:3], codes[cats], 5, ids=ids[cats])
    np.testing.assert_array_equal(res.distances, ref.distances)


def test_search_pads_when_collection_is_smaller_than_k(store, collection):
    spec, ids, codes = fill(store, collection, n=3, seed=8)
    res = store.search(collection, codes=codes[:1], k=5)
    assert (res.ids[0, 3:] == -1).all() and sorted(res.ids[0, :3]) == sorted(ids)


def test_encoder_recorded_and_mismatch_refused(store, collection):
    spec, ids, codes = fill(store, collection, n=10, seed=9)
    assert store.describe_collection(collection).encoder == spec
    assert collection in store.list_collections()
    other = make_spec(64, kind="other", seed=1)
    with pytest.raises(EncoderMismatchError) as err:
        store.upsert(collection, ids=ids, codes=codes, encoder=other)
    assert str(spec) in str(err.value) and str(other) in str(err.value)
    assert not err.value.retryable
    with pytest.raises(EncoderMismatchError):
        store.create_collection(collection, encoder=other)
    with pytest.raises(EncoderMismatchError):
        store.search(collection, codes=codes[:1], encoder=other)
    assert store.create_collection(collection, encoder=spec).encoder == spec  # exist_ok
    with pytest.raises(InvalidInputError, match="already exists"):
        store.create_collection(collection, encoder=spec, exist_ok=False)


def test_encoder_record_survives_a_new_store(store, collection):
    spec, ids, codes = fill(store, collection, n=20, seed=10)
    with HashStore(store.uri if not store.embedded else store.uri) as again:
        assert again.describe_collection(collection).encoder == spec
        assert again.count(collection) == 20
        res = again.search(collection, codes=codes[:2], k=3, ties="id")
        np.testing.assert_array_equal(res.ids, hamming_topk(codes[:2], codes, 3, ids=ids).ids)


def test_bad_input(store, collection):
    spec = make_spec(64)
    store.create_collection(collection, encoder=spec)
    ok = random_codes(4, 64, 0)
    with pytest.raises(InvalidInputError, match="codes: expected dtype uint8"):
        store.upsert(collection, ids=np.arange(4), codes=ok.astype(np.int32), encoder=spec)
    with pytest.raises(InvalidInputError, match=r"codes: expected 8 bytes per code \(64 bits\), received 4"):
        store.upsert(collection, ids=np.arange(4), codes=ok[:, :4], encoder=spec)
    with pytest.raises(InvalidInputError, match="ids: expected 4 ids"):
        store.upsert(collection, ids=np.arange(3), codes=ok, encoder=spec)
    with pytest.raises(InvalidInputError, match="ids: expected unique ids"):
        store.upsert(collection, ids=[1, 1, 2, 3], codes=ok, encoder=spec)
    with pytest.raises(InvalidInputError, match="ids: expected a 1-D sequence of integers"):
        store.upsert(collection, ids=np.arange(4) + 0.5, codes=ok, encoder=spec)
    with pytest.raises(InvalidInputError, match=r"labels\[1\]"):
        store.upsert(collection, ids=np.arange(4), codes=ok, encoder=spec, labels=["a", 1.5, "b", "c"])
    with pytest.raises(InvalidInputError, match=r"metadata\[0\]: expected a dict"):
        store.upsert(collection, ids=np.arange(4), codes=ok, encoder=spec, metadata=["x"] * 4)
    with pytest.raises(InvalidInputError, match="sources: expected 4 values"):
        store.upsert(collection, ids=np.arange(4), codes=ok, encoder=spec, sources=["a"])
    with pytest.raises(InvalidInputError, match="encoder: expected the EncoderSpec"):
        store.upsert(collection, ids=np.arange(4), codes=ok, encoder=None)
    with pytest.raises(InvalidInputError, match="k: expected an int of at most 16384"):
        store.search(collection, codes=ok, k=20_000)
    with pytest.raises(InvalidInputError, match="ties"):
        store.search(collection, codes=ok, ties="first")
    with pytest.raises(InvalidInputError, match="output_fields"):
        store.search(collection, codes=ok, output_fields=["code"])
    with pytest.raises(InvalidInputError, match="radius"):
        store.range_search(collection, codes=ok, radius=-2)
    with pytest.raises(InvalidInputError, match="collection: expected a name"):
        store.create_collection("bad name!", encoder=spec)
    assert store.count(collection) == 0


def test_empty_input_is_a_no_op(store, collection):
    spec = make_spec(64)
    store.create_collection(collection, encoder=spec)
    empty = np.empty((0, 8), dtype=np.uint8)
    assert store.upsert(collection, ids=[], codes=empty, encoder=spec) == 0
    assert store.insert(collection, ids=np.empty(0, dtype=np.int64), codes=empty, encoder=spec) == 0
    res = store.search(collection, codes=empty, k=5)
    assert res.ids.shape == (0, 5) and res.distances.shape == (0, 5)
    assert store.range_search(collection, codes=empty, radius=3) == []
    assert len(store.get(collection, ids=[])) == 0
    assert list(store.iter_codes(collection)) == []
    assert store.count(collection) == 0


def test_unknown_collection(store):
    name = "never_created_here"
    store.drop_collection(name)  # dropping what is missing is a no-op
    for call in (lambda: store.count(name), lambda: store.search(name, codes=random_codes(1, 64, 0)),
                 lambda: store.get(name, ids=[1]), lambda: list(store.iter_codes(name)),
                 lambda: store.upsert(name, ids=[1], codes=random_codes(1, 64, 0), encoder=make_spec(64))):
        with pytest.raises(CollectionNotFoundError, match=name) as err:
            call()
        assert not err.value.retryable


def test_collection_not_made_by_milvus_hash_is_refused(store, collection):
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.BINARY_VECTOR, dim=64)
    index = store._client.prepare_index_params()
    index.add_index(field_name="v", index_type="BIN_FLAT", metric_type="HAMMING")
    store._client.create_collection(collection, schema=schema, index_params=index)
    with pytest.raises(NotAHashCollectionError, match="not created by milvus-hash"):
        store.describe_collection(collection)
    assert collection not in store.list_collections()


def test_drop_collection(store, collection):
    fill(store, collection, n=5)
    store.drop_collection(collection)
    assert not store.has_collection(collection)
    with pytest.raises(CollectionNotFoundError):
        store.count(collection)


@pytest.mark.server
def test_ivf_index_on_server(server_store):
    name = "t_ivf_index"
    server_store.drop_collection(name)
    spec = make_spec(64)
    info = server_store.create_collection(name, encoder=spec, index_type="BIN_IVF_FLAT", index_params={"nlist": 8})
    assert info.index_type == "BIN_IVF_FLAT"
    codes = random_codes(3000, 64, 11)
    server_store.insert(name, ids=np.arange(3000), codes=codes, encoder=spec)
    server_store.flush(name)
    res = server_store.search(name, codes=codes[:5], k=10, nprobe=8)  # all lists probed: exact
    np.testing.assert_array_equal(res.distances, hamming_topk(codes[:5], codes, 10).distances)
    with HashStore(server_store.uri) as again:
        described = again.describe_collection(name)
        assert (described.index_type, described.index_params) == ("BIN_IVF_FLAT", {"nlist": 8})
    server_store.drop_collection(name)


@pytest.mark.parametrize("text,version", [("v2.3.5", (2, 3, 5)), ("2.6.4", (2, 6, 4)), ("v2.6.0-rc1", (2, 6, 0)),
                                          ("2.6.12-dev-abc", (2, 6, 12)), ("", None), (None, None), ("lite", None)])
def test_parse_version(text, version):
    assert parse_version(text) == version


@pytest.mark.server
def test_a_server_says_its_version_and_the_binary_indexes_it_builds(server_store):
    """The local server is Milvus 2.3.5: BIN_FLAT and BIN_IVF_FLAT, no HNSW on binary codes (2.6.4+);
    ``auto`` picks the fastest it has; asking for HNSW names the version that has it."""
    assert server_store.server_version == (2, 3, 5)
    assert server_store.index_types() == ("BIN_FLAT", "BIN_IVF_FLAT")
    assert server_store.resolve_index("auto") == "BIN_IVF_FLAT"
    with pytest.raises(InvalidInputError, match=r"index_type: .*2\.3\.5.*needs Milvus 2\.6\.4 or later.*'HNSW'"):
        server_store.create_collection("t_hnsw", encoder=make_spec(64), index_type="HNSW")
    assert not server_store.has_collection("t_hnsw")
    name = "t_auto_index"
    server_store.drop_collection(name)
    info = server_store.create_collection(name, encoder=make_spec(64), index_type="auto")
    assert (info.index_type, info.index_params) == ("BIN_IVF_FLAT", {"nlist": 1024})
    server_store.drop_collection(name)


@pytest.mark.lite
def test_lite_has_only_bin_flat(lite_store):
    assert lite_store.server_version is None and lite_store.index_types() == ("BIN_FLAT",)
    for index_type in ("BIN_IVF_FLAT", "HNSW"):
        with pytest.raises(InvalidInputError, match="index_type: expected one of .'BIN_FLAT',. on Milvus Lite"):
            lite_store.create_collection("t_ivf", encoder=make_spec(64), index_type=index_type)
    with pytest.raises(InvalidInputError, match="index_type: expected 'auto' or one of"):
        lite_store.create_collection("t_ivf", encoder=make_spec(64), index_type="IVF_FLAT")
    assert lite_store.create_collection("t_auto", encoder=make_spec(64), index_type="auto").index_type == "BIN_FLAT"
    with pytest.raises(InvalidInputError, match="ef: expected an int of at least k = 50, received 10"):
        lite_store.search("t_auto", codes=random_codes(1, 64, 0), k=50, ef=10)


def test_neighbours_are_the_union_of_each_querys_k_nearest_with_their_rows(store, collection):
    labels = [f"l{i % 3}" for i in range(400)]
    spec, ids, codes = fill(store, collection, n=400, seed=9, labels=labels, sources=[f"s{i}" for i in range(400)])
    queries, k = codes[[3, 50, 51]], 20
    got = store.neighbours(collection, codes=queries, k=k, encoder=spec)
    assert len(set(got.ids.tolist())) == len(got)  # each item once
    where = {int(i): r for r, i in enumerate(ids.tolist())}
    row = np.array([where[int(i)] for i in got.ids])
    np.testing.assert_array_equal(got.codes, codes[row])  # the stored rows, codes and fields
    assert got.sources == [f"s{r}" for r in row] and got.labels == [labels[r] for r in row]
    ref = hamming_topk(queries, codes, k, ids=ids)
    d = np.stack([np.unpackbits(q ^ codes[row], axis=1).sum(1) for q in queries])  # (3, len(got))
    kth = ref.distances[:, -1:]
    assert np.all((d <= kth).any(0))  # every item is among some query's k nearest (ties at the k-th aside)
    for q in range(3):  # and every item strictly nearer than a query's k-th is there
        assert set(ref.ids[q][ref.distances[q] < kth[q]].tolist()) <= set(got.ids.tolist())
    assert got.ids[0] == ids[3]  # the first query's nearest first
    assert len(store.neighbours(collection, codes=codes[:0], k=5)) == 0


@pytest.mark.server
def test_a_collection_not_loaded_is_one_line_and_exit_75(milvus_server):
    """A released collection (loading, or released by someone): the command line says so in one
    line with exit 75, without pymilvus's logged traceback."""
    import os
    import subprocess
    import sys
    import uuid

    from pymilvus import MilvusClient

    from milvus_hash import EncoderSpec

    name = f"released_{uuid.uuid4().hex[:8]}"
    spec = EncoderSpec("t", "fp", 16)
    with HashStore(milvus_server) as store:
        store.create_collection(name, encoder=spec)
        store.upsert(name, ids=[1, 2], codes=np.zeros((2, 2), np.uint8), encoder=spec)
    client = MilvusClient(uri=milvus_server)
    try:
        client.release_collection(name)
        exe = os.path.join(os.path.dirname(sys.executable), "milvus-hash")
        env = {k: v for k, v in os.environ.items() if k not in ("MILVUS_HASH_DEBUG", "MILVUS_HASH_QUIET_PYMILVUS")}
        done = subprocess.run([exe, "search", "--collection", name, "--id", "1", "--uri", milvus_server, "--timeout", "10"],
                              capture_output=True, text=True, env=env, timeout=120)
    finally:
        client.drop_collection(name)
        client.close()
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 75, done.stderr
    assert len(lines) == 1 and "not loaded" in lines[0] and "Traceback" not in done.stderr, done.stderr
