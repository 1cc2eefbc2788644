"""Materialized categories stay exact as the store changes: ingestion writes their codes in the same
pass, deletes leave them, writes made around milvus-hash are detected, and ``materialize`` brings
them up to date. After every step each category query equals a numpy reference on the current
contents of the library collection (Milvus Lite and the local server)."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ingestion.cli import cli
from ingestion.pipeline import ingest
from ingestion.sources import open_source
from milvus_hash import HashClient, HashStore, hamming_topk
from milvus_hash.categories.materialized import StaleCategoryWarning
from milvus_hash.encoders.ugh.library import UGHLibrary
from milvus_hash.features import get_backbone


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of real images (scikit-learn's digits): 30 a class in ``first``, 15 in ``later``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    roots = {}
    for part, (lo, hi) in {"first": (0, 30), "later": (30, 45)}.items():
        root = tmp_path_factory.mktemp(part)
        for c in range(10):
            (root / str(c)).mkdir()
            for i in np.flatnonzero(d.target == c)[lo:hi]:
                Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(root / str(c) / f"{i:04d}.png")
        roots[part] = root
    return roots


@pytest.fixture(scope="module")
def library(folders):
    backbone = get_backbone("pixels", size=8)
    src = open_source(folders["first"])
    X = backbone.extract([src.open(it) for it in src.items()])
    return backbone, UGHLibrary(n_rounds=8, n_subset=300, n_categories=10, n_expand=8, random_state=0).fit(X)


@pytest.fixture(params=[pytest.param("lite", marks=pytest.mark.lite),
                        pytest.param("server", marks=pytest.mark.server)])
def uri(request, tmp_path):
    return str(tmp_path / "f.db") if request.param == "lite" else request.getfixturevalue("milvus_server")


def check_exact(client: HashClient, name: str, queries: np.ndarray) -> None:
    """The category's collection holds exactly the library's ids with their category codes, and its
    queries equal numpy's on the library collection's current contents."""
    store, cat = client.store, client.category(name)
    lib_ids, lib_codes = map(np.concatenate, zip(*store.iter_codes(client.collection)))
    task_ids, task_codes = map(np.concatenate, zip(*store.iter_codes(client.task_collection(name))))
    np.testing.assert_array_equal(task_ids, lib_ids)
    expected = cat.transform(lib_codes)
    np.testing.assert_array_equal(task_codes, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCategoryWarning)
        client._checked.clear()
        got = client.search(name, codes=queries, k=15, mode="materialized", ties="id")
        ref = hamming_topk(cat.transform(queries), expected, k=15, ids=lib_ids)
        np.testing.assert_array_equal(got.ids, ref.ids)
        np.testing.assert_array_equal(got.distances, ref.distances)
        instant = client.search(name, codes=queries, k=15, mode="instant", candidates=len(lib_ids))  # all candidates
        np.testing.assert_array_equal(instant.ids, ref.ids)
        members = client.members(name, k=len(lib_ids) + 5, exhaustive=True)  # every current item, deleted ones gone
        ref_scores = cat.ranking_scores(lib_codes, 0)
        np.testing.assert_array_equal(members.ids, lib_ids[np.lexsort((lib_ids, -ref_scores))])


def test_categories_stay_exact_through_ingest_upsert_and_delete(folders, library, uri):
    backbone, lib = library
    spec = lib.encoder_spec()
    name = f"c_{uuid.uuid4().hex[:8]}"
    with HashStore(uri) as store:
        first = ingest(open_source(folders["first"]), store=store, collection=name, encoder=lib, backbone=backbone,
                       workers=0, progress=False)
        assert first.written == 300 and first.categories == []
        client = HashClient(store=store, collection=name, stale_check=0)
        rec = next(store.iter_records(name, with_codes=False))
        ids, sevens = rec.ids, rec.ids[np.array(rec.labels) == "7"]
        client.define("sevens", ids=sevens[:5])
        done = client.materialize("sevens")
        assert (done.written, done.deleted, done.rows) == (300, 0, 300)
        queries = store.get(name, ids=sevens[:3]).codes
        check_exact(client, "sevens", queries)

        # 1. ingestion writes the category codes in the same pass (150 new items, ids in any order)
        later = ingest(open_source(folders["later"]), store=store, collection=name, encoder=lib,
                       backbone=backbone, workers=0, progress=False)
        assert later.written == 150 and later.categories == ["sevens"]
        assert "kept 1 materialized category up to date (sevens)" in later.summary()
        assert client.status("sevens").fresh and client.status("sevens").rows == 450
        check_exact(client, "sevens", queries)

        # 2. writes around milvus-hash: 40 new items with ids smaller than every stored one, and 25
        # stored items whose codes change; the new ones are detected, then materialize repairs all
        rng = np.random.default_rng(0)
        new_codes = rng.integers(0, 256, (40, spec.n_bits // 8), dtype=np.uint8)
        store.upsert(name, ids=np.arange(1, 41), codes=new_codes, encoder=spec)
        changed = ids[:25]
        store.upsert(name, ids=changed, codes=rng.integers(0, 256, (25, spec.n_bits // 8), dtype=np.uint8),
                     encoder=spec, labels=["changed"] * 25)
        state = client.status("sevens")
        assert not state.fresh and (state.rows, state.library_rows) == (450, 490) and "stale" in str(state)
        with pytest.warns(StaleCategoryWarning, match="materialize"):
            client.search("sevens", codes=queries, k=5, mode="materialized")
        listed = CliRunner().invoke(cli, ["category", "list", "--collection", name, "--uri", uri])
        assert listed.exit_code == 0 and "stale: 450 items materialized, the library collection holds 490" \
            in listed.output, listed.output
        found = CliRunner().invoke(cli, ["category", "search", "sevens", "--collection", name, "--uri", uri,
                                         "--id", str(sevens[0]), "--mode", "materialized"])
        assert found.exit_code == 0 and "warning: category 'sevens' is stale" in found.stderr, found.output
        done = client.materialize("sevens")
        assert (done.written, done.deleted, done.rows) == (65, 0, 490)
        check_exact(client, "sevens", queries)

        # 3. deletes through the client leave the category too; around it, they are detected and repaired
        assert client.delete(ids=ids[30:50]) == 20
        assert client.status("sevens").fresh and client.status("sevens").rows == 470
        check_exact(client, "sevens", queries)
        store.delete(name, ids=ids[50:60])
        assert not client.status("sevens").fresh
        out = CliRunner().invoke(cli, ["category", "materialize", "sevens", "--collection", name, "--uri", uri])
        assert out.exit_code == 0 and "460 codes (0 written, 10 deleted)" in out.output, out.output
        check_exact(client, "sevens", queries)
        assert client.delete(ids=[]) == 0  # empty input: a no-op
        client.drop("sevens")
        for c in store.list_collections():
            if c.startswith(name):
                store.drop_collection(c)
