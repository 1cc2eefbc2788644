"""Writes that outlive pymilvus's ORM: the row path, and bulk import on a real server (and its refusal on Lite)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_spec, random_codes, write_digit_pngs
from ingestion.cli import cli
from milvus_hash import HashStore, InvalidInputError, hamming_topk


def _rows(n: int, n_bits: int, seed: int):
    codes = random_codes(n, n_bits, seed)
    ids = np.random.default_rng(seed).permutation(10 * n)[:n].astype(np.int64) + 10**12
    return ids, codes


def test_row_writes_through_milvusclient_equal_column_writes(store, collection):
    """write_path="rows" (what stays when pymilvus 3.1 drops the ORM) stores exactly what columns store."""
    spec = make_spec(64)
    ids, codes = _rows(300, 64, seed=3)
    uri = store.uri
    with HashStore(uri, write_path="rows") as rows_store:
        rows_store.create_collection(collection, encoder=spec)
        rows_store.upsert(collection, ids=ids, codes=codes, encoder=spec, labels=[str(i % 7) for i in range(300)],
                          sources=[f"a/{i}.png" for i in range(300)], metadata=[{"i": i} for i in range(300)])
        rows_store.upsert(collection, ids=ids[:50], codes=codes[:50] ^ 0xFF, encoder=spec)  # replaces, no duplicate
        assert rows_store.count(collection) == 300
        assert rows_store._conn._orm == {}  # no ORM collection was ever made: the rows went through MilvusClient
        got = rows_store.get(collection, ids=ids[45:55])
        np.testing.assert_array_equal(got.codes[:5], codes[45:50] ^ 0xFF)
        np.testing.assert_array_equal(got.codes[5:], codes[50:55])
        assert got.sources[5:] == [f"a/{i}.png" for i in range(50, 55)] and got.metadata[5] == {"i": 50}
        expect = codes.copy()
        expect[:50] ^= 0xFF
        res = rows_store.search(collection, codes=expect[:10], k=5, ties="id")
        ref = hamming_topk(expect[:10], expect, 5, ids=ids)
        np.testing.assert_array_equal(res.ids, ref.ids)
    with pytest.raises(InvalidInputError, match=r"^write_path: expected one of \('auto', 'columns', 'rows'\), "
                                                r"received 'orm'$"):
        HashStore(uri, write_path="orm")


@pytest.mark.unit
def test_bulk_files_are_what_pymilvus_bulkwriter_writes(tmp_path):
    """The import's files equal, array for array, those of pymilvus's LocalBulkWriter (NUMPY) on the same rows."""
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    from milvus_hash.codes import codes_to_bytes
    from milvus_hash.store import bulk
    from milvus_hash.store.hash_store import _schema

    ids, codes = _rows(50, 64, seed=2)
    sources = [f"dir/{i}.png" for i in range(50)]
    labels = ["" if i % 5 == 0 else f"label-{i % 3}" for i in range(50)]
    metadata = [{} if i % 4 else {"i": i, "tags": ["a", "é"]} for i in range(50)]
    where, groups = bulk.write_files({"id": ids, "code": codes, "source": sources, "label": labels,
                                      "metadata": metadata}, tmp_path / "ours")
    writer = LocalBulkWriter(schema=_schema(make_spec(64)), local_path=str(tmp_path / "theirs"),
                             file_type=BulkFileType.NUMPY)
    for row in zip(ids.tolist(), codes_to_bytes(codes), sources, labels, metadata):
        writer.append_row(dict(zip(("id", "code", "source", "label", "metadata"), row)))
    writer.commit()
    theirs = writer.batch_files
    assert len(groups) == len(theirs) == 1
    assert [Path(f).name for f in groups[0]] == [Path(f).name for f in theirs[0]]
    for mine, ref in zip(groups[0], theirs[0]):
        a, b = np.load(mine, allow_pickle=False), np.load(ref, allow_pickle=False)
        assert a.dtype == b.dtype and a.shape == b.shape, (Path(mine).name, a.dtype, b.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a, b)
    bulk.remove(where)
    assert not where.exists()


@pytest.mark.server
def test_bulk_import_counts_every_row_writes_nothing_twice_and_equals_numpy(server_store, bulk_stage):
    store, name = server_store, f"t_{uuid.uuid4().hex[:12]}"
    spec = make_spec(256)
    ids, codes = _rows(3000, 256, seed=5)
    store.create_collection(name, encoder=spec)
    try:
        old = codes[:100] ^ 0x0F  # 100 rows stored before, with other codes: the import replaces them
        store.upsert(name, ids=ids[:100], codes=old, encoder=spec)
        seen = []
        out = store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage,
                                labels=[str(i % 10) for i in range(3000)], sources=[f"s/{i}" for i in range(3000)],
                                metadata=[{"k": i} for i in range(3000)], progress=lambda p, n: seen.append(n))
        assert out == {"imported": 2900, "upserted": 100}
        assert seen and store.count(name) == 3000
        assert list(Path(bulk_stage).iterdir()) == []  # the staged files are removed
        got = store.get(name, ids=ids[95:105])
        np.testing.assert_array_equal(got.codes, codes[95:105])
        assert got.labels == [str(i % 10) for i in range(95, 105)] and got.sources[0] == "s/95"
        assert got.metadata[-1] == {"k": 104}
        queries = np.vstack([codes[:10], random_codes(10, 256, seed=99)])
        res = store.search(name, codes=queries, k=20, ties="id")
        ref = hamming_topk(queries, codes, 20, ids=ids)
        np.testing.assert_array_equal(res.ids, ref.ids)
        np.testing.assert_array_equal(res.distances, ref.distances)
        # a rerun (after a crash, say) imports nothing and duplicates nothing
        assert store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage) == \
            {"imported": 0, "upserted": 3000}
        assert store.count(name) == 3000
        assert store.bulk_import(name, ids=[], codes=np.zeros((0, 32), np.uint8), encoder=spec, stage=bulk_stage) == \
            {"imported": 0, "upserted": 0}
    finally:
        store.drop_collection(name)


@pytest.mark.lite
def test_bulk_import_on_milvus_lite_is_refused_in_one_line(lite_store, tmp_path):
    spec = make_spec(64)
    lite_store.create_collection("c", encoder=spec)
    ids, codes = _rows(10, 64, seed=1)
    with pytest.raises(InvalidInputError, match=r"^uri: expected a Milvus server for a bulk import \(Milvus Lite has "
                                                r"no import.*received Milvus Lite at"):
        lite_store.bulk_import("c", ids=ids, codes=codes, encoder=spec, stage=tmp_path / "stage")
    assert lite_store.count("c") == 0


@pytest.mark.server
def test_bulk_import_bad_arguments_are_named_in_one_line(server_store, bulk_stage):
    store, name = server_store, f"t_{uuid.uuid4().hex[:12]}"
    spec = make_spec(64)
    store.create_collection(name, encoder=spec)
    ids, codes = _rows(10, 64, seed=1)
    try:
        with pytest.raises(InvalidInputError, match=r"^timeout: expected a positive number of seconds, received 0$"):
            store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage, timeout=0)
        with pytest.raises(InvalidInputError, match=r"^stage: expected a directory the Milvus server reads \(a path\), "
                                                    r"received 3$"):
            store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=3)
        with pytest.raises(InvalidInputError, match=r"^ids: expected unique ids, received 1 duplicated$"):
            store.bulk_import(name, ids=np.r_[ids[:9], ids[:1]], codes=codes, encoder=spec, stage=bulk_stage)
        assert store.count(name) == 0
    finally:
        store.drop_collection(name)


@pytest.mark.unit
def test_a_stage_that_cannot_be_written_is_named_in_one_line(tmp_path):
    from milvus_hash.store import bulk

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidInputError, match=r"^stage: expected a directory this process can write and the "
                                                r"Milvus server reads, received .*file \(\w+Error"):
        bulk.write_files({"id": np.arange(2), "code": np.zeros((2, 8), np.uint8), "source": ["", ""],
                          "label": ["", ""], "metadata": [{}, {}]}, blocker)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """120 of scikit-learn's digits as PNGs, one folder per label, and a library on them."""
    root = write_digit_pngs(tmp_path_factory.mktemp("bulk") / "digits", 12)
    lib = root.parent / "lib.npz"
    res = CliRunner().invoke(cli, ["hypertrain", str(root), "--backbone", "pixels", "--size", "8", "--rounds", "4",
                                   "--categories", "10", "--expand", "6", "--out", str(lib), "--quiet"])
    assert res.exit_code == 0, res.output
    return root, lib


@pytest.mark.server
def test_cli_ingest_bulk_stores_what_a_plain_ingest_stores(images, milvus_server, bulk_stage):
    root, lib = images
    plain, bulk = f"t_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:10]}"
    run = CliRunner().invoke
    a = run(cli, ["ingest", str(root), "--collection", plain, "--encoder", str(lib), "--uri", milvus_server, "--quiet"])
    assert a.exit_code == 0, a.output
    b = run(cli, ["ingest", str(root), "--collection", bulk, "--encoder", str(lib), "--uri", milvus_server, "--quiet",
                  "--bulk", bulk_stage, "--bulk-rows", "50", "--report", str(Path(bulk_stage).parent / "r.json")])
    assert b.exit_code == 0, b.output
    assert "ingested 120 (new 120, replaced 0), unchanged 0, failed 0 of 120" in b.output
    assert json.loads((Path(bulk_stage).parent / "r.json").read_text())["written"] == 120
    with HashStore(milvus_server) as store:
        try:
            assert store.count(bulk) == 120
            x = {i: (c.tobytes(), s, lab) for r in store.iter_records(plain)
                 for i, c, s, lab in zip(r.ids.tolist(), r.codes, r.sources, r.labels)}
            y = {i: (c.tobytes(), s, lab) for r in store.iter_records(bulk)
                 for i, c, s, lab in zip(r.ids.tolist(), r.codes, r.sources, r.labels)}
            assert x == y
            again = run(cli, ["ingest", str(root), "--collection", bulk, "--encoder", str(lib), "--uri", milvus_server,
                              "--quiet", "--bulk", bulk_stage])
            assert again.exit_code == 0 and "ingested 0 (new 0, replaced 0), unchanged 120" in again.output
            assert store.count(bulk) == 120
        finally:
            store.drop_collection(plain)
            store.drop_collection(bulk)


@pytest.mark.lite
def test_cli_ingest_bulk_on_milvus_lite_is_a_usage_error_before_any_work(images, tmp_path):
    root, lib = images
    db = tmp_path / "m.db"
    res = CliRunner().invoke(cli, ["ingest", str(root), "--collection", "c", "--encoder", str(lib), "--uri", str(db),
                                   "--bulk", str(tmp_path / "stage")])
    assert res.exit_code == 2
    assert "--bulk" in res.output and "expected a Milvus server for a bulk import (Milvus Lite has no import)" \
        in res.output
    with HashStore(str(db)) as store:
        assert "c" not in store.list_collections()
