"""Writes that outlive pymilvus's ORM: the row path, and bulk import on a real server (and its refusal on Lite)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import S3_KEYS, make_spec, random_codes, write_digit_pngs
from ingestion.cli import cli
from milvus_hash import (BucketStage, HashStore, InvalidInputError, MilvusServerError, StorageUnavailableError,
                         hamming_topk)
from milvus_hash.store.local_server import free_port


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
    from pymilvus import CollectionSchema
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
    # built again from its fields: pymilvus 2.5.0's BulkWriter finds no primary field in a schema made
    # by MilvusClient.create_schema (which names it only when a collection is created)
    schema = CollectionSchema(fields=list(_schema(make_spec(64)).fields), auto_id=False, enable_dynamic_field=False)
    writer = LocalBulkWriter(schema=schema, local_path=str(tmp_path / "theirs"),
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
        with pytest.raises(InvalidInputError, match=r"^stage: expected a directory the Milvus server reads, or "
                                                    r"s3://BUCKET/PREFIX, "
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


# ---------------------------------------------------------------- a server on S3 / MinIO: the bucket stage


def _objects(s3_milvus, prefix: str) -> list[str]:
    client = _bucket_stage(s3_milvus, "").client()
    return [o.object_name for o in client.list_objects(s3_milvus["bucket"], prefix=prefix, recursive=True)]


def _bucket_stage(s3_milvus, prefix: str, *, bucket: str | None = None) -> BucketStage:
    """A stage under ``prefix`` in the test server's bucket (or ``bucket``), with the test credentials."""
    return BucketStage(f"s3://{bucket or s3_milvus['bucket']}/{prefix}", endpoint=s3_milvus["endpoint"], **_keys())


def _keys() -> dict:
    return {"access_key": S3_KEYS["AWS_ACCESS_KEY_ID"], "secret_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"]}


@pytest.mark.server
def test_bulk_import_through_the_servers_bucket_counts_every_row_and_leaves_nothing_behind(s3_milvus):
    """The files are uploaded to the bucket the server stores its data in, imported from there,
    counted exactly, equal numpy's top-k, and removed; a rerun upserts and writes nothing twice."""
    spec = make_spec(128)
    ids, codes = _rows(3000, 128, 11)
    prefix = f"stage-{uuid.uuid4().hex[:8]}"
    stage = _bucket_stage(s3_milvus, prefix)
    seen = []
    with HashStore(s3_milvus["uri"]) as store:
        store.create_collection("via_bucket", encoder=spec)
        out = store.bulk_import("via_bucket", ids=ids[:2000], codes=codes[:2000], encoder=spec, stage=stage,
                                sources=[f"img/{i}.png" for i in range(2000)], progress=lambda p, r: seen.append(r))
        assert out == {"imported": 2000, "upserted": 0}
        assert store.count("via_bucket") == 2000
        assert seen and seen[-1] == 2000
        assert _objects(s3_milvus, prefix) == []  # the uploaded files are removed
        assert len(_objects(s3_milvus, "files/")) > 0  # while the server's own data is in the same bucket
        # half stored, half new: 1000 upserted, 1000 imported, nothing twice
        assert store.bulk_import("via_bucket", ids=ids[1000:], codes=codes[1000:], encoder=spec, stage=stage) == \
            {"imported": 1000, "upserted": 1000}
        assert store.count("via_bucket") == 3000
        res = store.search("via_bucket", codes=codes[:5], k=10, ties="id")
        order = np.argsort(ids)  # ties go to the smaller id, as in hamming_topk over rows sorted by id
        ref = hamming_topk(codes[:5], codes[order], 10)
        np.testing.assert_array_equal(res.ids, ids[order][ref.ids])
        np.testing.assert_array_equal(res.distances, ref.distances)
        assert store.get("via_bucket", ids=ids[:2]).sources == ["img/0.png", "img/1.png"]
        assert _objects(s3_milvus, prefix) == []


@pytest.mark.server
def test_bulk_import_from_a_bucket_the_server_does_not_read_fails_in_one_line_and_cleans_up(s3_milvus):
    spec = make_spec(64)
    ids, codes = _rows(50, 64, 12)
    other = f"not-milvus-{uuid.uuid4().hex[:6]}"
    stage = _bucket_stage(s3_milvus, "stage", bucket=other)
    stage.client().make_bucket(other)
    with HashStore(s3_milvus["uri"]) as store:
        store.create_collection("wrong_bucket", encoder=spec)
        with pytest.raises(MilvusServerError, match=rf"^bulk import into 'wrong_bucket' failed: .*is '{other}' its "
                                                    r"minio.bucketName") as err:
            store.bulk_import("wrong_bucket", ids=ids, codes=codes, encoder=spec, stage=stage, timeout=120)
        assert not err.value.retryable and "\n" not in str(err.value)
        assert list(stage.client().list_objects(other, recursive=True)) == []
        assert store.count("wrong_bucket") == 0


@pytest.mark.server
def test_a_missing_bucket_and_an_unreachable_storage_are_named_before_anything_is_written(s3_milvus):
    spec = make_spec(64)
    ids, codes = _rows(20, 64, 13)
    with HashStore(s3_milvus["uri"]) as store:
        store.create_collection("no_bucket", encoder=spec)
        with pytest.raises(InvalidInputError, match=r"^stage: expected an existing bucket at http://127.0.0.1:\d+ "
                                                    r"\(the Milvus server's own bucket\), received s3://no-such-b"):
            store.bulk_import("no_bucket", ids=ids, codes=codes, encoder=spec,
                              stage=BucketStage("s3://no-such-bucket/x", endpoint=s3_milvus["endpoint"], **_keys()))
        closed = f"http://127.0.0.1:{free_port()}"
        with pytest.raises(StorageUnavailableError, match=rf"^object storage {closed} did not answer while checking "
                                                          r"the bucket s3://closed-bucket/x: \w+") as err:
            store.bulk_import("no_bucket", ids=ids, codes=codes, encoder=spec,
                              stage=BucketStage("s3://closed-bucket/x", endpoint=closed, timeout=2, **_keys()))
        assert err.value.retryable
        assert store.count("no_bucket") == 0


@pytest.mark.unit
def test_a_bucket_stage_reads_the_aws_environment_and_never_shows_its_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    stage = BucketStage("s3://a-bucket/stage/")
    assert (stage.bucket, stage.prefix, stage.endpoint) == ("a-bucket", "stage", "http://minio.internal:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.org")  # the S3-specific one wins
    assert BucketStage("s3://a-bucket").endpoint == "https://s3.example.org"
    assert BucketStage("s3://a-bucket", endpoint="localhost:9000").endpoint == "https://localhost:9000"
    for text in (str(stage), repr(stage), stage.hint()):
        assert "AKIAEXAMPLEKEY" not in text and "s3cr3t" not in text
    with pytest.raises(InvalidInputError, match=r"^stage: expected a directory or s3://BUCKET/PREFIX, "
                                                r"received 's3:///x'$"):
        BucketStage("s3:///x")
    with pytest.raises(InvalidInputError, match=r"^endpoint: expected the object storage as http\(s\)://host\[:port\] "
                                                r"\(no path, no credentials\), received 'ftp://h/p'$"):
        BucketStage("s3://bkt", endpoint="ftp://h/p")
    with pytest.raises(InvalidInputError, match=r"^stage: expected s3://BUCKET/PREFIX with a bucket name of 3-63 "):
        BucketStage("s3://My_Bucket/x")
    with pytest.raises(InvalidInputError, match=r"^endpoint: .*received 'http://h'$") as err:
        BucketStage("s3://bkt", endpoint="http://user:pw@h")
    assert "pw" not in str(err.value)


@pytest.mark.unit
def test_storage_refusals_are_typed_by_whether_a_retry_helps():
    from minio.error import S3Error

    stage = BucketStage("s3://bkt/p", endpoint="http://127.0.0.1:1", access_key="k", secret_key="xyzzy-private")

    def raised(code):
        try:
            with stage._errors("uploading to"):
                raise S3Error(None, code, "msg", "/b/p", "req", "host")
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            return exc

    denied = raised("AccessDenied")
    assert isinstance(denied, InvalidInputError) and str(denied) == (
        "stage: expected credentials that may write to the bucket (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
        "received s3://bkt/p: AccessDenied while uploading to")
    assert isinstance(raised("NoSuchBucket"), InvalidInputError)
    busy = raised("SlowDown")
    assert isinstance(busy, StorageUnavailableError) and busy.retryable
    odd = raised("InvalidObjectState")
    assert isinstance(odd, StorageUnavailableError) and not odd.retryable
    assert all("xyzzy" not in str(e) for e in (denied, busy, odd))


@pytest.mark.server
def test_cli_ingest_bulk_into_a_server_on_s3(images, s3_milvus, monkeypatch):
    """`ingest --bulk s3://BUCKET/PREFIX --s3-endpoint URL` with the AWS environment's credentials:
    what a plain ingest stores; a missing bucket is exit 1 before any work, a closed endpoint 75."""
    root, lib = images
    for k, v in S3_KEYS.items():
        monkeypatch.setenv(k, v)
    uri, name = s3_milvus["uri"], f"t_{uuid.uuid4().hex[:10]}"
    run = CliRunner().invoke
    res = run(cli, ["ingest", str(root), "--collection", name, "--encoder", str(lib), "--uri", uri, "--quiet",
                    "--bulk", f"s3://{s3_milvus['bucket']}/cli-stage", "--s3-endpoint", s3_milvus["endpoint"],
                    "--bulk-rows", "70"])
    assert res.exit_code == 0, res.output
    assert "ingested 120 (new 120, replaced 0), unchanged 0, failed 0 of 120" in res.output
    assert S3_KEYS["AWS_SECRET_ACCESS_KEY"] not in res.output
    with HashStore(uri) as store:
        assert store.count(name) == 120
        rows = [(s, lab) for r in store.iter_records(name) for s, lab in zip(r.sources, r.labels)]
        assert len({s for s, _ in rows}) == 120 and all(s.split("/")[-2] == lab for s, lab in rows)
    assert _objects(s3_milvus, "cli-stage") == []
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_milvus["endpoint"])  # the endpoint from the environment
    res = run(cli, ["ingest", str(root), "--collection", "t_missing", "--encoder", str(lib), "--uri", uri,
                    "--quiet", "--bulk", "s3://no-such-bucket/stage"])
    assert res.exit_code == 1, res.output
    assert "stage: expected an existing bucket at " + s3_milvus["endpoint"] in res.output
    closed = f"http://127.0.0.1:{free_port()}"
    res = run(cli, ["ingest", str(root), "--collection", "t_closed", "--encoder", str(lib), "--uri", uri,
                    "--quiet", "--bulk", "s3://closed-bucket/stage", "--s3-endpoint", closed])
    assert res.exit_code == 75, res.output
    assert f"object storage {closed} did not answer" in res.output
    res = run(cli, ["ingest", str(root), "--collection", "t_bad", "--encoder", str(lib), "--uri", uri,
                    "--bulk", "s3://bkt/stage", "--s3-endpoint", "ftp://x"])
    assert res.exit_code == 2 and "--s3-endpoint" in res.output and "expected the object storage as" in res.output
    with HashStore(uri) as store:
        assert not {"t_missing", "t_closed", "t_bad"} & set(store.list_collections())


class _Killed(BaseException):
    """Raised from a progress callback: the process dies there (no handler runs but `finally`)."""


def _die_when(rows_at_least: int):
    def progress(percent, rows):
        if rows >= rows_at_least:
            raise _Killed
    return progress


STAGED = ["code.npy", "id.npy", "import.json", "label.npy", "metadata.npy", "source.npy"]


@pytest.mark.server
def test_a_bulk_import_interrupted_after_the_server_has_it_keeps_its_files_for_the_rerun(server_store, bulk_stage):
    """Ctrl-C while the server imports: the import goes on, so its files stay staged; the rerun waits
    for its rows, stores nothing twice and removes the files."""
    spec = make_spec(64)
    ids, codes = _rows(2500, 64, 24)
    name = f"t_{uuid.uuid4().hex[:10]}"
    server_store.create_collection(name, encoder=spec)

    def ctrl_c(percent, rows):
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            server_store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage, progress=ctrl_c)
        left = [p for p in Path(bulk_stage).rglob("*") if p.is_file()]
        assert sorted(p.name for p in left) == STAGED  # the files, and the marker naming the server's task
        assert server_store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage) == \
            {"imported": 0, "upserted": 2500}
        assert server_store.count(name) == 2500
        assert list(Path(bulk_stage).rglob("*")) == []
    finally:
        server_store.drop_collection(name)


@pytest.mark.server
def test_rows_of_a_killed_runs_finished_import_that_show_late_are_not_imported_twice(server_store, bulk_stage):
    """Killed once the server has read every row (its rows show seconds after it reports the import
    complete): the marker left beside the files tells the rerun which import and which ids to wait
    for; they are then stored (upserted), and the files removed. Another collection's leftovers
    are left alone."""
    spec = make_spec(64)
    ids, codes = _rows(2000, 64, 22)
    name, other = f"t_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:10]}"
    server_store.create_collection(name, encoder=spec)
    server_store.create_collection(other, encoder=spec)
    try:
        with pytest.raises(_Killed):
            server_store.bulk_import(other, ids=ids[:10], codes=codes[:10], encoder=spec, stage=bulk_stage,
                                     progress=_die_when(0))
        with pytest.raises(_Killed):
            server_store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage,
                                     progress=_die_when(2000))
        assert server_store.bulk_import(name, ids=ids, codes=codes, encoder=spec, stage=bulk_stage) == \
            {"imported": 0, "upserted": 2000}
        assert server_store.count(name) == 2000
        assert sorted(p.name for p in Path(bulk_stage).rglob("*") if p.is_file()) == STAGED  # other's, untouched
        assert server_store.bulk_import(other, ids=ids[:10], codes=codes[:10], encoder=spec, stage=bulk_stage) == \
            {"imported": 0, "upserted": 10}
        assert [p for p in Path(bulk_stage).rglob("*")] == []
    finally:
        server_store.drop_collection(name)
        server_store.drop_collection(other)


@pytest.mark.server
def test_a_killed_runs_files_in_the_bucket_are_waited_for_and_removed_by_the_rerun(s3_milvus):
    spec = make_spec(64)
    ids, codes = _rows(1500, 64, 23)
    prefix = f"killed-{uuid.uuid4().hex[:8]}"
    stage = _bucket_stage(s3_milvus, prefix)
    with HashStore(s3_milvus["uri"]) as store:
        store.create_collection("killed_bucket", encoder=spec)
        with pytest.raises(_Killed):
            store.bulk_import("killed_bucket", ids=ids, codes=codes, encoder=spec, stage=stage,
                              progress=_die_when(1500))
        assert sorted(k.rsplit("/", 1)[1] for k in _objects(s3_milvus, prefix)) == STAGED
        assert store.bulk_import("killed_bucket", ids=ids, codes=codes, encoder=spec, stage=stage) == \
            {"imported": 0, "upserted": 1500}
        assert store.count("killed_bucket") == 1500
        assert _objects(s3_milvus, prefix) == []


@pytest.mark.unit
def test_an_s3_stage_without_the_minio_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "minio", None)  # import minio -> ImportError
    with pytest.raises(InvalidInputError, match=r"^stage: expected the minio package for an s3:// stage "
                                                r"\(pip install 'milvus-hash\[bulk\]'\), received s3://bkt/x without it$"):
        BucketStage("s3://bkt/x", endpoint="http://127.0.0.1:1").check()
