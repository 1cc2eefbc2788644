"""Ingestion end to end, as users run it: generated PNG folders -> features -> codes -> real Milvus
(Lite and the local server), searched back; interruptions, crashes, shards and bad input."""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_digit_pngs
from ingestion.cli import cli
from ingestion.features_folder import read_features
from ingestion.pipeline import ingest
from ingestion.sources import open_source
from milvus_hash import HashStore, InvalidInputError, hamming_topk
from milvus_hash.encoders import load_encoder
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.features import get_backbone

N_PER_CLASS = 15


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """150 real images (scikit-learn's digits, 15 per class) as PNGs in one folder per label, and a
    corrupt file."""
    root = write_digit_pngs(tmp_path_factory.mktemp("imgs") / "digits", N_PER_CLASS)
    (root / "3" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


@pytest.fixture(scope="module")
def library(digits_folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("lib") / "lib.npz"
    res = CliRunner().invoke(cli, ["hypertrain", str(digits_folder), "--backbone", "pixels", "--size", "8",
                                   "--rounds", "8", "--categories", "10", "--expand", "6", "--out", str(path),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert "n_subset: 150" in res.output and "hyper-trained 80 bits" in res.output
    return path


@pytest.fixture(params=[pytest.param("lite", marks=pytest.mark.lite),
                        pytest.param("server", marks=pytest.mark.server)])
def uri(request, tmp_path):
    return str(tmp_path / "m.db") if request.param == "lite" else request.getfixturevalue("milvus_server")


def run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res


def test_cli_ingest_search_and_rerun(digits_folder, library, uri):
    name = f"t_{uuid.uuid4().hex[:10]}"
    first = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--quiet")
    assert first.exit_code == 0, first.output
    assert "ingested 150 (new 150, replaced 0), unchanged 0, failed 1 of 151" in first.output
    assert "skipped digits/3/corrupt.png" in first.output
    with HashStore(uri) as store:
        assert store.count(name) == 150
        assert store.describe_collection(name).encoder == load_encoder(library).encoder_spec()
    # an image finds itself at distance 0, with its path and label
    query = next((digits_folder / "7").glob("*.png"))
    hits = json.loads(run("search", "--collection", name, "--image", query, "--encoder", library, "--uri", uri,
                          "-k", "5", "--json").output)["hits"]
    mine = [h for h in hits if h["source"] == f"digits/7/{query.name}"]
    assert mine and mine[0]["distance"] == 0 and mine[0]["label"] == "7"
    assert hits[0]["distance"] == 0
    by_id = json.loads(run("search", "--collection", name, "--id", mine[0]["id"], "--uri", uri, "--json").output)
    assert by_id["query"] == {"id": mine[0]["id"]}
    table = run("search", "--collection", name, "--image", query, "--encoder", library, "--uri", uri, "-k", "3").output
    assert f"nearest to image {query}" in table and table.splitlines()[1].split() == ["rank", "distance", "id", "label",
                                                                                        "source"]
    assert by_id["hits"][0]["distance"] == 0 and mine[0]["id"] in [h["id"] for h in by_id["hits"] if h["distance"] == 0]
    # rerun: same ids, no duplicates, unchanged images not encoded again; --resume does not even read them
    again = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--quiet")
    assert again.exit_code == 0 and "ingested 0 (new 0, replaced 0), unchanged 150, failed 1" in again.output
    resumed = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--quiet",
                  "--resume")
    assert "ingested 0 (new 0, replaced 0), unchanged 150" in resumed.output
    with HashStore(uri) as store:
        assert store.count(name) == 150
        store.drop_collection(name)


class InterruptingSource:
    """A real folder source whose n-th open raises ``exc`` (Ctrl-C or a crash mid-run)."""

    def __init__(self, source, at: int, exc: BaseException):
        self.source, self.at, self.exc, self.opened = source, at, exc, 0

    def items(self):
        return self.source.items()

    def open(self, item):
        self.opened += 1
        if self.opened == self.at:
            raise self.exc
        return self.source.open(item)


def test_ingest_index_is_checked_before_any_work_and_auto_picks_what_this_milvus_has(digits_folder, library, uri):
    name = f"t_{uuid.uuid4().hex[:10]}"
    lite = uri.endswith(".db")
    bad = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--index", "HNSW")
    assert bad.exit_code == 2 and "--index" in bad.output and "'HNSW'" in bad.output, bad.output
    assert ("Milvus Lite" if lite else "needs Milvus 2.6.4 or later") in bad.output, bad.output
    bad = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--index", "auto",
              "--index-param", "nlist=many")
    assert bad.exit_code == 2 and "--index-param" in bad.output and "'nlist=many'" in bad.output, bad.output
    with HashStore(uri) as store:
        assert not store.has_collection(name)
    out = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--quiet",
              "--index", "auto", *([] if lite else ["--index-param", "nlist=4"]))
    assert out.exit_code == 0 and "ingested 150" in out.output, out.output
    with HashStore(uri) as store:
        info = store.describe_collection(name)
        assert (info.index_type, info.index_params) == (("BIN_FLAT", {}) if lite else ("BIN_IVF_FLAT", {"nlist": 4}))
    again = run("ingest", digits_folder, "--collection", name, "--encoder", library, "--uri", uri, "--quiet",
                "--index", "BIN_FLAT")
    assert again.exit_code == 0 and "unchanged 150" in again.output, again.output
    assert lite or "exists with index BIN_IVF_FLAT; --index BIN_FLAT applies only to a new collection" in again.output


def test_interrupted_ingest_resumes_and_loses_nothing(digits_folder, library, uri):
    name = f"t_{uuid.uuid4().hex[:10]}"
    src = open_source(digits_folder)
    encoder = load_encoder(library)
    backbone = get_backbone("pixels", weights=None, size=8)
    with HashStore(uri) as store:
        report = ingest(InterruptingSource(src, 70, KeyboardInterrupt()), store=store, collection=name,
                        encoder=encoder, backbone=backbone, batch_size=8, workers=0, write_rows=16, progress=False)
        assert report.interrupted and 0 < report.written < 150
        assert store.count(name) == report.written  # what was computed before Ctrl-C was kept
        rest = ingest(src, store=store, collection=name, encoder=encoder, backbone=backbone, resume=True,
                      workers=0, progress=False)
        assert not rest.interrupted and rest.unchanged == report.written and rest.written == 150 - report.written
        assert store.count(name) == 150
        ids = np.array([it.id for it in src.items() if "corrupt" not in it.key])
        got = store.get(name, ids=ids)
        assert got.missing.size == 0
        X = backbone.extract([src.open(it) for it in src.items() if "corrupt" not in it.key])
        np.testing.assert_array_equal(got.codes, encoder.transform(X))
        store.drop_collection(name)


class FailingEncoder:
    """The real encoder, failing on its n-th call (a crash after some writes)."""

    def __init__(self, encoder, at: int):
        self.encoder, self.at, self.calls = encoder, at, 0
        self.n_features_in_ = encoder.n_features_in_

    def encoder_spec(self):
        return self.encoder.encoder_spec()

    def transform(self, X):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("simulated crash")
        return self.encoder.transform(X)


class StoppingSource(InterruptingSource):
    """A real folder source whose n-th open stops the Milvus server (it goes away mid-run)."""

    def __init__(self, source, at: int, server):
        super().__init__(source, at, None)
        self.server = server

    def open(self, item):
        self.opened += 1
        if self.opened == self.at:
            self.server.stop()
        return self.source.open(item)


@pytest.mark.server
def test_a_failed_write_says_in_one_line_which_write_failed_and_what_is_stored(digits_folder, library, tmp_path):
    """A server that goes away mid-ingest: one line naming the write and what is stored, retryable;
    later calls fail within the timeout, retryable; after a restart the rows and the encoder record
    are there. (This is also the store's test of a server that vanishes and comes back.)"""
    from milvus_hash import MilvusHashError, MilvusUnavailableError
    from milvus_hash.store.local_server import LocalMilvusServer

    src = open_source(digits_folder)
    with LocalMilvusServer(tmp_path / "srv", stop_grace=5) as server:
        with HashStore(server.uri, timeout=5) as store:
            with pytest.raises(MilvusHashError) as err:
                ingest(StoppingSource(src, 100, server), store=store, collection="c", encoder=load_encoder(library),
                       backbone=get_backbone("pixels", weights=None, size=8), batch_size=8, workers=0,
                       write_rows=32, progress=False)
            message = str(err.value)
            assert err.value.retryable and "\n" not in message
            assert "upsert" in message and "collection 'c'" in message  # which write
            stored = re.search(r"; (\d+) of this run's 151 images are stored \(rerun", message)
            assert stored and 0 < int(stored.group(1)) < 150, message
            start = time.monotonic()  # the server is gone: any call is a retryable error within the timeout
            with pytest.raises(MilvusUnavailableError) as gone:
                store.search("c", codes=np.zeros((1, 10), np.uint8), k=3)
            assert gone.value.retryable and time.monotonic() - start < 5 + 10
    # restarted on the same data directory (it asks for the same ports): what it said is stored is there
    with LocalMilvusServer(tmp_path / "srv", stop_grace=5) as again, \
            HashStore(again.uri, consistency_level="Strong") as store:
        for _ in range(60):  # after a restart the collection is loaded again: "not loaded" is retryable
            try:
                count = store.count("c")
                break
            except MilvusHashError as exc:
                assert exc.retryable, exc
                time.sleep(1)
        assert count == int(stored.group(1))
        assert store.describe_collection("c").encoder == load_encoder(library).encoder_spec()


@pytest.mark.lite
def test_crash_then_plain_rerun_writes_no_duplicates(digits_folder, library, tmp_path):
    src = open_source(digits_folder)
    encoder = load_encoder(library)
    backbone = get_backbone("pixels", weights=None, size=8)
    with HashStore(str(tmp_path / "m.db")) as store:
        with pytest.raises(RuntimeError, match="simulated crash"):
            ingest(src, store=store, collection="c", encoder=FailingEncoder(encoder, 3), backbone=backbone,
                   batch_size=16, workers=0, write_rows=32, progress=False)
        landed = store.count("c")
        assert 32 <= landed < 150  # two writes landed before the crash
        report = ingest(src, store=store, collection="c", encoder=encoder, backbone=backbone, workers=2,
                        progress=False)
        # the rerun finds what landed unchanged (its files hashed, not decoded) and writes the rest
        assert report.unchanged == landed and report.written == report.new == 150 - landed
        assert len(report.failed) == 1
        assert store.count("c") == 150


@pytest.mark.lite
def test_shards_together_ingest_everything_once(digits_folder, library, tmp_path):
    db = tmp_path / "m.db"
    written = []
    for shard in ("0/3", "1/3", "2/3"):
        res = run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--shard", shard,
                  "--quiet", "--report", tmp_path / "r.json")
        assert res.exit_code == 0, res.output
        written.append(json.loads((tmp_path / "r.json").read_text())["written"])
    assert sum(written) == 150 and all(w > 20 for w in written)
    with HashStore(str(db)) as store:
        assert store.count("c") == 150


@pytest.mark.lite
def test_kept_features_retrain_the_same_library_without_the_cnn(digits_folder, library, tmp_path):
    db, feats = tmp_path / "m.db", tmp_path / "feats"
    res = run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--quiet",
              "--keep-features", feats)
    assert res.exit_code == 0, res.output
    ids, X, keys, labels, meta = read_features(feats)
    assert X.shape == (150, 64) and meta["backbone"]["name"] == "pixels"
    assert sorted(set(labels)) == [str(c) for c in range(10)]
    with HashStore(str(db)) as store:
        np.testing.assert_array_equal(store.get("c", ids=ids).codes, load_encoder(library).transform(X))
    out = tmp_path / "lib2.npz"
    res = run("hypertrain", feats, "--rounds", "8", "--categories", "10", "--expand", "6", "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    lib2 = load_encoder(out)
    assert lib2.features_ == load_encoder(library).features_  # the backbone record travels with the features
    ref = UGHLibrary(n_rounds=8, n_subset=150, n_categories=10, n_expand=6).fit(X)
    np.testing.assert_array_equal(lib2.W_, ref.W_)  # the features folder's rows, the configured parameters
    res = run("ingest", digits_folder, "--collection", "c2", "--encoder", out, "--uri", db, "--quiet")
    assert res.exit_code == 0 and "ingested 150" in res.output
    # the features command writes the same folder format and resumes
    res = run("features", digits_folder, "--out", tmp_path / "f2", "--backbone", "pixels", "--size", "8", "--quiet")
    assert "extracted 150" in res.output
    res = run("features", digits_folder, "--out", tmp_path / "f2", "--backbone", "pixels", "--size", "8", "--quiet")
    assert "extracted 0 (new 0, replaced 0), unchanged 150" in res.output
    np.testing.assert_array_equal(read_features(tmp_path / "f2")[1], X)


@pytest.mark.lite
def test_ingest_takes_features_from_a_features_folder_for_unchanged_images_only(digits_folder, library, tmp_path):
    """The README's flow runs `features` then `ingest`: with --features the CNN does not run twice,
    and an image changed since its features were extracted is extracted again."""
    import shutil

    folder = tmp_path / "digits"  # same folder name: same keys as the features
    shutil.copytree(digits_folder, folder)
    feats, db = tmp_path / "feats", str(tmp_path / "m.db")
    assert run("features", folder, "--out", feats, "--backbone", "pixels", "--size", "8", "--quiet").exit_code == 0
    changed = sorted((folder / "5").glob("*.png"))[0]
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(changed)
    res = run("ingest", folder, "--collection", "reused", "--encoder", library, "--uri", db, "--quiet",
              "--features", feats, "--report", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "ingested 150 (new 150, replaced 0)" in res.output
    assert "features of 149 read from the features folder" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["reused"] == 149
    plain = run("ingest", folder, "--collection", "plain", "--encoder", library, "--uri", db, "--quiet")
    assert plain.exit_code == 0 and "read from the features folder" not in plain.output
    with HashStore(db) as store:
        a = dict(zip(*[x.tolist() if i == 0 else list(map(bytes, x)) for i, x in
                       enumerate(next(store.iter_codes("reused", batch_size=1000)))]))
        b = dict(zip(*[x.tolist() if i == 0 else list(map(bytes, x)) for i, x in
                       enumerate(next(store.iter_codes("plain", batch_size=1000)))]))
    assert len(a) == 150 and a == b  # the same codes as running the CNN on every image, the changed one included
    other = tmp_path / "f16"
    assert run("features", folder, "--out", other, "--backbone", "pixels", "--size", "16", "--quiet").exit_code == 0
    res = run("ingest", folder, "--collection", "x", "--encoder", library, "--uri", db, "--quiet", "--features", other)
    assert res.exit_code == 1 and "features: expected a folder of 'pixels' features" in res.output
    assert len(res.output.strip().splitlines()) == 1
    with HashStore(db) as store:
        assert not store.has_collection("x")  # refused before anything is written
    res = run("ingest", folder, "--collection", "x", "--encoder", library, "--uri", db, "--quiet",
              "--report", tmp_path / "no" / "r.json")
    assert res.exit_code == 2 and "--report" in res.output and "does not exist" in res.output
    with HashStore(db) as store:
        assert not store.has_collection("x")  # refused before any work


@pytest.mark.lite
def test_bad_input_gives_clear_errors_and_exit_codes(digits_folder, library, tmp_path):
    db = tmp_path / "m.db"
    res = run("ingest", tmp_path / "nope", "--collection", "c", "--encoder", library, "--uri", db)
    assert res.exit_code == 2 and "expected an existing image folder" in res.output and "SOURCE" in res.output
    res = run("features", digits_folder, "--out", tmp_path / "f", "--backbone", "resnet51")
    assert res.exit_code == 2 and "resnet51" in res.output
    res = run("features", digits_folder, "--out", tmp_path / "f", "--backbone", "small_cnn", "--weights",
              tmp_path / "missing.pt")
    assert res.exit_code == 1 and "weights: expected an existing state_dict file" in res.output
    res = run("features", digits_folder, "--out", tmp_path / "f", "--backbone", "small_cnn", "--weights", "none",
              "--quiet")
    assert res.exit_code == 0 and "WARNING: backbone 'small_cnn' has random weights" in res.output
    res = run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--backbone", "resnet18")
    assert res.exit_code == 2 and "clashes with the encoder" in res.output
    res = run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--size", "9")
    assert res.exit_code == 1 and "fitted on 'pixels' features" in res.output
    res = run("ingest", digits_folder, "--collection", "c", "--encoder", tmp_path / "nolib.npz", "--uri", db)
    assert res.exit_code == 1 and "encoder: expected an existing encoder file" in res.output
    # encoder / collection mismatch
    assert run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--quiet").exit_code == 0
    other = tmp_path / "other.npz"
    assert run("hypertrain", digits_folder, "--backbone", "pixels", "--size", "8", "--rounds", "8", "--seed", "1",
               "--categories", "10", "--expand", "6", "--out", other, "--quiet").exit_code == 0
    res = run("ingest", digits_folder, "--collection", "c", "--encoder", other, "--uri", db, "--quiet")
    assert res.exit_code == 1 and "collection 'c'" in res.output and "ugh:" in res.output
    res = run("search", "--collection", "c", "--image", next((digits_folder / "1").glob("*.png")), "--encoder", other,
              "--uri", db)
    assert res.exit_code == 1 and "was written by" in res.output
    res = run("search", "--collection", "c", "--uri", db)
    assert res.exit_code == 2 and "give one of --image (or --images), --id, --code (received none)" in res.output
    res = run("search", "--collection", "c", "--image", digits_folder / "3" / "corrupt.png", "--encoder", library,
              "--uri", db)
    assert res.exit_code == 2 and "readable image" in res.output
    res = run("search", "--collection", "c", "--code", "zz", "--uri", db)
    assert res.exit_code == 2 and "20 hexadecimal digits" in res.output
    code = "00" * 10
    res = run("search", "--collection", "c", "--code", code, "--uri", db, "-k", "3", "--json")
    assert res.exit_code == 0 and len(json.loads(res.output)["hits"]) == 3 and json.loads(res.output)["query"] == {
        "code": code}
    res = run("search", "--collection", "c", "--image", tmp_path / "missing.png", "--encoder", library, "--uri", db)
    assert res.exit_code == 2 and "--image" in res.output and "does not exist" in res.output


@pytest.mark.lite
def test_client_defines_a_category_from_images_through_the_librarys_backbone(digits_folder, library, tmp_path):
    from milvus_hash import HashClient

    db = tmp_path / "m.db"
    assert run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--quiet").exit_code == 0
    sevens = sorted((digits_folder / "7").glob("*.png"))
    with HashClient(str(db), collection="c", library=library) as client:
        cat = client.define("sevens", images=sevens[:5])
        by_image = client.score("sevens", images=sevens[5:])
        src = open_source(digits_folder)
        ids = {it.key: it.id for it in src.items()}
        by_id = client.score("sevens", ids=[ids[f"digits/7/{p.name}"] for p in sevens[5:]])
        np.testing.assert_allclose(by_image, by_id)  # an image is encoded as it was at ingestion
        client.materialize("sevens")
        got = client.search("sevens", images=[sevens[6]], k=5, mode="materialized")
        assert got.distances[0][0] == 0 and cat.classes == ["sevens"]
        others = [ids[it.key] for it in src.items() if not it.key.startswith("digits/7/") and "corrupt" not in it.key]
        assert by_id.mean() > client.score("sevens", ids=others).mean()
        # images as uint8 arrays (one HxW, a stack n x H x W, a list) and as PIL images: the same codes
        arrays = np.stack([np.asarray(Image.open(p)) for p in sevens[5:]])
        same = dict(rtol=1e-5)  # float32 products over batches of other sizes
        np.testing.assert_allclose(client.score("sevens", images=arrays), by_id, **same)
        np.testing.assert_allclose(client.score("sevens", images=arrays[0]), by_id[:1], **same)
        np.testing.assert_allclose(client.score("sevens", images=[Image.open(p) for p in sevens[5:7]]), by_id[:2], **same)
        # the definition says where its examples came from, and when, readably
        described = client.describe("sevens")
        assert described["examples"] == {"images": [str(p) for p in sevens[:5]]}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", described["created_at"])
        # a plain similarity search from the same image: the library-code neighbours, itself first
        plain = client.similar(images=sevens[6], k=5, ties="id")
        assert plain.ids[0][0] == ids[f"digits/7/{sevens[6].name}"] and plain.distances[0][0] == 0
        lib_ids, lib_codes = map(np.concatenate, zip(*client.store.iter_codes("c")))
        ref = hamming_topk(client.items(ids=plain.ids[0][:1]).codes, lib_codes, k=5, ids=lib_ids)
        np.testing.assert_array_equal(plain.ids, ref.ids)
        # redefining needs replace=True, in Python and on the command line
        with pytest.raises(InvalidInputError, match=r"name: expected a name not defined yet \(or replace=True"):
            client.define("sevens", images=sevens[:3])
        assert client.define("sevens", images=sevens[:3], replace=True).example_sources["images"][2] == str(sevens[2])
    base = ["category", "define", "sevens", "--collection", "c", "--uri", db, "--examples", digits_folder / "7",
            "--library", library]
    refused = run(*base)
    assert refused.exit_code == 1 and "'sevens' is defined on 'c' already: --replace redefines it" in refused.output
    assert run(*base, "--replace").exit_code == 0


FAULT_DRIVER = r"""
import os, signal, sys
from ingestion.sources import FolderSource
opened = [0]
real_open = FolderSource.open

def open_then_fault(self, item):  # the CLI as a user runs it, a fault at its 70th picture
    opened[0] += 1
    if opened[0] == 70:
        {fault}
    return real_open(self, item)

FolderSource.open = open_then_fault
from ingestion.cli import main
sys.argv = ["milvus-hash", *sys.argv[1:]]
main()
"""
#: Ctrl-C in a terminal: SIGINT to the whole process group.
SIGINT_DRIVER = FAULT_DRIVER.replace("{fault}", "os.killpg(os.getpgrp(), signal.SIGINT)")
#: Milvus Lite's server dies before the run's first write.
KILL_DRIVER = FAULT_DRIVER.replace("{fault}", """from milvus_lite.server_manager import server_manager_instance
        for server in server_manager_instance._servers.values():
            os.kill(server._p.pid, signal.SIGKILL)""")


@pytest.mark.lite
def test_ctrl_c_to_the_process_group_keeps_the_rows_on_milvus_lite_and_exits_130(digits_folder, library, tmp_path):
    """The embedded Lite server runs in its own session: the terminal's SIGINT reaches the CLI, which
    flushes what it computed and exits 130, and not the server, which would lose those rows."""
    import subprocess
    import sys
    import time

    db = tmp_path / "sigint.db"
    args = ["ingest", str(digits_folder), "--collection", "c", "--encoder", str(library), "--uri", str(db),
            "--workers", "0", "--batch-size", "8", "--quiet"]
    t0 = time.monotonic()
    from conftest import terminal_sigint

    run_ = subprocess.run([sys.executable, "-c", SIGINT_DRIVER, *args], capture_output=True, text=True, timeout=120,
                          start_new_session=True, preexec_fn=terminal_sigint)
    assert run_.returncode == 130, (run_.returncode, run_.stdout, run_.stderr[-2000:])
    assert time.monotonic() - t0 < 60
    written = int(re.search(r"ingested (\d+)", run_.stdout).group(1))
    assert 0 < written < 150 and "Traceback" not in run_.stderr
    with HashStore(str(db)) as store:
        assert store.count("c") == written  # nothing computed before Ctrl-C was lost
    rest = run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--resume", "--quiet")
    assert rest.exit_code == 0 and f"unchanged {written}," in rest.output, rest.output
    with HashStore(str(db)) as store:
        assert store.count("c") == 150


@pytest.mark.lite
def test_ids_never_merge_two_different_images_and_the_summary_counts_new_unchanged_replaced(library, tmp_path):
    """The issue's case (letters/Q/x.png, then batch2/Q/x.png), two folders of the same name, a file
    changed in place, and content ids that store one image once whatever its path."""

    def picture(path, seed):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(path)

    picture(tmp_path / "letters" / "Q" / "x.png", 1)
    picture(tmp_path / "letters" / "Q" / "y.png", 2)
    picture(tmp_path / "batch2" / "Q" / "x.png", 3)           # same relative path, another image
    picture(tmp_path / "elsewhere" / "letters" / "Q" / "x.png", 4)  # same folder name and path, another image
    db = tmp_path / "ids.db"

    def ingest_(folder, *extra):
        res = run("ingest", folder, "--collection", "c", "--encoder", library, "--uri", db, "--quiet", "--workers", "0",
                  *extra)
        assert res.exit_code == 0, res.output
        return res.output

    assert "ingested 2 (new 2, replaced 0), unchanged 0" in ingest_(tmp_path / "letters")
    assert "ingested 1 (new 1, replaced 0), unchanged 0" in ingest_(tmp_path / "batch2")
    assert "ingested 0 (new 0, replaced 0), unchanged 2" in ingest_(tmp_path / "letters")  # a rerun
    clash = ingest_(tmp_path / "elsewhere" / "letters")
    assert "ingested 0 (new 0, replaced 0), unchanged 0, conflicts 1" in clash
    assert "conflict letters/Q/x.png" in clash and "--source-name" in clash
    assert "ingested 1 (new 1, replaced 0)" in ingest_(tmp_path / "elsewhere" / "letters", "--source-name", "letters-b")
    picture(tmp_path / "letters" / "Q" / "y.png", 5)  # the file changes where it is: its row is replaced
    assert "ingested 1 (new 0, replaced 1), unchanged 1" in ingest_(tmp_path / "letters")
    from ingestion.sources import FolderSource
    from milvus_hash.features import get_backbone

    bb = get_backbone("pixels", weights=None, size=8)
    with HashStore(str(db)) as store:
        assert store.count("c") == 4  # four different images, none merged
        items = FolderSource(tmp_path / "letters").items() + FolderSource(tmp_path / "batch2").items()
        got = store.get("c", ids=[it.id for it in items])
        rows = {source: (meta, code) for source, meta, code in zip(got.sources, got.metadata, got.codes)}
        assert set(rows) == {"letters/Q/x.png", "letters/Q/y.png", "batch2/Q/x.png"}
        y = Image.open(tmp_path / "letters" / "Q" / "y.png")
        np.testing.assert_array_equal(rows["letters/Q/y.png"][1], load_encoder(library).transform(bb.extract([y]))[0])
        assert rows["letters/Q/x.png"][0]["origin"] == str(tmp_path / "letters" / "Q" / "x.png")
        assert len(rows["letters/Q/x.png"][0]["content_sha256"]) == 64
    # content ids: the same image under two paths is one row
    picture(tmp_path / "dups" / "a.png", 7)
    picture(tmp_path / "dups" / "sub" / "b.png", 7)
    picture(tmp_path / "dups2" / "c.png", 7)
    out = ingest_(tmp_path / "dups", "--ids", "content", "--labels", "none")
    assert "ingested 1 (new 1, replaced 0), unchanged 0, duplicates 1" in out
    assert "ingested 0 (new 0, replaced 0), unchanged 1" in ingest_(tmp_path / "dups2", "--ids", "content")
    with HashStore(str(db)) as store:
        assert store.count("c") == 5


@pytest.mark.lite
def test_two_files_with_one_key_are_a_conflict_and_the_rest_is_ingested(digits_folder, library, tmp_path):
    """A file name that is not UTF-8 (b'a\\xff.png') is keyed with its byte written \\xff, which is also
    the key of a file literally named 'a\\xff.png': the second is listed as a conflict, the rest stored."""
    import os

    folder = tmp_path / "names"
    shutil.copytree(digits_folder / "1", folder)
    (folder / "corrupt.png").unlink(missing_ok=True)
    src = next(folder.glob("*.png"))
    shutil.copy(src, os.path.join(os.fsencode(folder), b"a\xff.png"))
    shutil.copy(next((digits_folder / "2").glob("*.png")), folder / "a\\xff.png")
    n = len(list(os.listdir(folder)))
    db = tmp_path / "k.db"
    res = run("ingest", folder, "--collection", "k", "--encoder", library, "--uri", db, "--quiet")
    assert res.exit_code == 0, res.output
    assert f"ingested {n - 1} (new {n - 1}" in res.output and "conflicts 1" in res.output, res.output
    assert "conflict names/a\\xff.png: its key is also the key of" in res.output and "rename one" in res.output
    with HashStore(str(db)) as store:
        assert store.count("k") == n - 1


@pytest.mark.unit
def test_hypertrain_sizes_a_library_for_a_small_set_and_names_the_flags(digits_folder, tmp_path):
    res = run("hypertrain", digits_folder, "--backbone", "pixels", "--size", "8", "--rounds", "4",
              "--out", tmp_path / "small.npz", "--quiet")
    assert res.exit_code == 0, res.output
    assert "a small set (150 points a round): --categories 3 --expand 44, sized automatically" in res.output
    assert "hyper-trained 40 bits" in res.output
    res = run("hypertrain", digits_folder, "--backbone", "pixels", "--size", "8", "--rounds", "4", "--categories",
              "30", "--expand", "50", "--out", tmp_path / "big.npz", "--quiet")
    assert res.exit_code == 2 and "--categories/--expand" in res.output and "30 x (6 + 50) = 1,680" in res.output


@pytest.mark.lite
def test_example_pictures_that_do_not_decode_are_all_listed_and_skipped_or_refused(digits_folder, library, tmp_path):
    db = tmp_path / "e.db"
    assert run("ingest", digits_folder, "--collection", "c", "--encoder", library, "--uri", db, "--quiet").exit_code == 0
    examples = tmp_path / "examples"
    shutil.copytree(digits_folder / "7", examples)
    (examples / "corrupt.png").unlink(missing_ok=True)
    (examples / "bad-1.png").write_bytes(b"\x89PNG\r\n\x1a\n no")
    (examples / "bad-2.jpg").write_bytes(b"not a picture at all")
    base = ["--collection", "c", "--uri", db, "--library", library]
    res = run("category", "define", "sevens", "--examples", examples, "--strict", *base)
    assert res.exit_code == 2 and "received 2 of" in res.output, res.output
    assert "bad-1.png" in res.output and "bad-2.jpg" in res.output
    res = run("category", "define", "sevens", "--examples", examples, *base)
    assert res.exit_code == 0, res.output
    assert "warning: --examples: skipped" in res.output and "bad-1.png" in res.output and "bad-2.jpg" in res.output
    with HashStore(str(db)) as store:
        from milvus_hash import HashClient

        assert len(HashClient(collection="c", store=store).describe("sevens")["examples"]["images"]) == N_PER_CLASS


@pytest.mark.server
def test_when_only_the_final_flush_fails_the_message_says_every_image_was_written(digits_folder, library, tmp_path):
    """The server goes away after the last write, during the final flush: the message says every image
    of the run was written and that a rerun makes them durable, not "rerun to write the rest"."""
    from milvus_hash import MilvusHashError
    from milvus_hash.store.local_server import LocalMilvusServer

    class FlushStops(HashStore):  # a real store whose server stops as the flush begins
        server = None

        def flush(self, collection):
            self.server.stop()
            return super().flush(collection)

    src = open_source(digits_folder)
    with LocalMilvusServer(tmp_path / "srv", stop_grace=5) as server:
        with FlushStops(server.uri, timeout=5) as store:
            store.server = server
            with pytest.raises(MilvusHashError) as err:
                ingest(src, store=store, collection="c", encoder=load_encoder(library),
                       backbone=get_backbone("pixels", weights=None, size=8), batch_size=8, workers=0, progress=False)
    message = str(err.value)
    assert "every image of this run was written (150 of 151" in message and "final flush failed" in message, message
    assert "write the rest" not in message and err.value.retryable



@pytest.mark.server
def test_a_server_frozen_mid_write_is_reported_after_one_timeout_not_two(digits_folder, library, tmp_path,
                                                                         monkeypatch):
    """`ingest --timeout T` against a server that stops answering during a write (SIGSTOP: the port
    stays open, nothing answers) ends with exit 75 about T after the write began: no flush that
    waits out T again (it reported after twice the timeout)."""
    import os
    import signal

    from milvus_hash.store.local_server import LocalMilvusServer

    timeout = 6.0
    frozen: list[float] = []
    server = LocalMilvusServer(tmp_path / "srv", stop_grace=5).start()
    pgid = os.getpgid(server.proc.pid)
    real_upsert = HashStore.upsert

    def upsert_on_a_frozen_server(self, *args, **kwargs):
        if not frozen:
            os.killpg(pgid, signal.SIGSTOP)
            frozen.append(time.monotonic())
        return real_upsert(self, *args, **kwargs)

    monkeypatch.setattr(HashStore, "upsert", upsert_on_a_frozen_server)
    try:
        res = CliRunner().invoke(cli, ["ingest", str(digits_folder), "--collection", "c", "--encoder", str(library),
                                       "--uri", server.uri, "--timeout", str(timeout), "--workers", "0", "--quiet"])
        took = time.monotonic() - frozen[0]
    finally:
        os.killpg(pgid, signal.SIGCONT)
        server.stop()
    assert res.exit_code == 75, res.output
    assert timeout - 0.5 < took < timeout + 4, f"reported {took:.1f} s after the server froze (timeout {timeout} s)"
    assert "of this run's 151 images are stored" in res.output and "Traceback" not in res.output, res.output




@pytest.mark.lite
def test_a_failed_write_is_one_line_and_its_traceback_is_for_debug(digits_folder, library, tmp_path):
    """A write that fails (the server died) is reported in one line with exit 75: none of pymilvus's
    logged tracebacks (148 lines and 8 tracebacks before); `--debug` shows the traceback."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MILVUS_HASH_DEBUG", "MILVUS_HASH_QUIET_PYMILVUS")}
    runs = {}
    for debug in ([], ["--debug"]):
        args = [*debug, "ingest", str(digits_folder), "--collection", "c", "--encoder", str(library), "--uri",
                str(tmp_path / f"w{len(debug)}.db"), "--workers", "0", "--timeout", "5", "--quiet"]
        runs[bool(debug)] = subprocess.run([sys.executable, "-c", KILL_DRIVER, *args], capture_output=True,
                                           text=True, timeout=180, env=env)
    quiet, debug = runs[False], runs[True]
    assert quiet.returncode == 75, quiet.stderr[-3000:]
    lines = [ln for ln in quiet.stderr.splitlines() if ln.strip() and "corrupt.png" not in ln]
    assert len(lines) == 1 and lines[0].startswith("Error: "), quiet.stderr[-3000:]
    assert "0 of this run's 151 images are stored (rerun the same command" in lines[0]
    assert debug.returncode == 75 and "Traceback (most recent call last)" in debug.stderr, debug.stderr[-3000:]
    last = debug.stderr.rstrip().splitlines()[-1]  # the same one line, last
    assert last.startswith("Error: ") and "0 of this run's 151 images are stored (rerun" in last
