"""HashClient on real Milvus (Lite and the local server): few-shot categories from a few examples,
persisted in Milvus, and their queries checked against numpy."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import clustered

from ingestion.cli import cli
from milvus_hash import EncoderMismatchError, HashClient, HashStore, InvalidInputError, hamming_topk
from milvus_hash.categories.definitions import CategoryNotFoundError
from milvus_hash.encoders.ugh.library import UGHLibrary


@pytest.fixture(scope="module")
def world():
    """Clustered features: a library hyper-trained on 20 clusters, codes of 20 more it never saw."""
    X, y = clustered(1600, 24, 40, spread=0.9, seed=3)
    seen = y < 20
    lib = UGHLibrary(n_rounds=24, n_subset=600, n_categories=12, n_expand=20, random_state=0).fit(X[seen])
    Xn, yn = X[~seen], y[~seen]
    return lib, Xn, yn, lib.transform(Xn), np.arange(1000, 1000 + len(Xn), dtype=np.int64)


@pytest.fixture(params=[pytest.param("lite", marks=pytest.mark.lite),
                        pytest.param("server", marks=pytest.mark.server)])
def filled(request, tmp_path, world):
    lib, Xn, yn, codes, ids = world
    uri = str(tmp_path / "c.db") if request.param == "lite" else request.getfixturevalue("milvus_server")
    name = f"lib_{uuid.uuid4().hex[:8]}"
    with HashStore(uri) as store:
        spec = lib.encoder_spec()
        store.create_collection(name, encoder=spec)
        store.upsert(name, ids=ids, codes=codes, encoder=spec, labels=[str(v) for v in yn],
                     sources=[f"item/{i}" for i in ids])
    yield uri, name
    with HashStore(uri) as store:
        for c in store.list_collections():
            if c.startswith(name):
                store.drop_collection(c)


def lite_library(path, world) -> str:
    """A Milvus Lite file at ``path`` with the world's library codes in the collection ``lib``."""
    lib, _, yn, codes, ids = world
    with HashStore(str(path)) as store:
        spec = lib.encoder_spec()
        store.create_collection("lib", encoder=spec)
        store.upsert("lib", ids=ids, codes=codes, encoder=spec, labels=[str(v) for v in yn])
    return str(path)


def pick(yn, ids, classes, n, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(yn == c), n, replace=False) for c in classes])
    return ids[idx], [str(v) for v in yn[idx]]


def test_task_results_equal_numpy_and_survive_a_restart(filled, world):
    lib, Xn, yn, codes, ids = world
    uri, name = filled
    classes = np.unique(yn)[:6]
    ex_ids, ex_labels = pick(yn, ids, classes, 5)
    with HashClient(uri, collection=name, library=lib) as client:
        cat = client.define("task", ids=ex_ids, labels=ex_labels, n_bits=16)
        assert cat.classes == sorted(str(c) for c in classes) and cat.example_ids == ex_ids.tolist()
        task_codes = cat.transform(codes)
        task = client.materialize("task").collection
        q = ids[:7]
        got = client.search("task", ids=q, k=10, mode="materialized", ties="id")
        ref = hamming_topk(cat.transform(codes[:7]), task_codes, 10, ids=ids)
        np.testing.assert_array_equal(got.ids, ref.ids)
        np.testing.assert_array_equal(got.distances, ref.distances)
        # instant mode: exact on what it returns; with every item as a candidate, equal to numpy
        inst = client.search("task", ids=q, k=10, mode="instant", candidates=len(ids))
        np.testing.assert_array_equal(inst.ids, ref.ids)
        # the default mode searches the materialized collection (exact) once there is one
        auto = client.search("task", ids=q, k=10, ties="id")
        np.testing.assert_array_equal(auto.ids, ref.ids)
        np.testing.assert_array_equal(auto.distances, ref.distances)
        assert [f["source"] for f in inst.fields[0]] == [f"item/{i}" for i in ref.ids[0]]
        # queries as features and as library codes give the same answer as ids
        np.testing.assert_array_equal(client.search("task", features=Xn[:7], k=10, mode="materialized", ties="id").ids, ref.ids)
        np.testing.assert_array_equal(client.search("task", codes=codes[:7], k=10, mode="materialized", ties="id").ids, ref.ids)
        assert client.store.count(task) == len(ids)
        # the few-shot code retrieves its classes better than 16 random library bits
        from milvus_hash.codes import select_bits
        from milvus_hash.eval import mean_average_precision

        keep = np.isin(yn, classes)
        m_cat = mean_average_precision(task_codes[keep][:200], yn[keep][:200], task_codes[keep], yn[keep])
        pos = np.random.default_rng(0).choice(lib.n_bits_, 16, replace=False)
        rnd = select_bits(codes[keep], pos)
        m_rnd = mean_average_precision(rnd[:200], yn[keep][:200], rnd, yn[keep])
        assert m_cat > m_rnd + 0.05
    # another client (a restart) sees the definition and the same codes, without the library
    with HashClient(uri, collection=name) as again:
        assert again.categories() == ["task"]
        stored = again.category("task")
        assert stored.fingerprint == cat.fingerprint
        np.testing.assert_array_equal(stored.transform(codes), task_codes)
        assert again.describe("task")["example_ids"] == ex_ids.tolist()


def test_single_category_membership_resume_redefine_and_drop(filled, world):
    lib, Xn, yn, codes, ids = world
    uri, name = filled
    target = np.unique(yn)[0]
    pos, _ = pick(yn, ids, [target], 5, seed=1)
    with HashClient(uri, collection=name, background=500) as client:
        cat = client.define("one", ids=pos)
        assert cat.classes == ["one"]
        client.materialize("one", batch_size=100)
        # members: the numpy reference of the same method (rank every item, best first, ties by id)
        ref_scores = cat.ranking_scores(codes, 0)
        ref = ids[np.lexsort((ids, -ref_scores))]
        every = client.members("one", k=len(ids), exhaustive=True)
        np.testing.assert_array_equal(every.ids, ref)
        np.testing.assert_allclose(every.scores, np.sort(ref_scores)[::-1], rtol=1e-6)
        assert every.candidates == len(ids) and every.sources[0] == f"item/{every.ids[0]}"
        # served from the positives' neighbourhoods: the ranking of that pool, computed in numpy
        top = client.members("one", k=20, candidates=50)
        pool = np.unique(hamming_topk(codes[np.isin(ids, pos)], codes, 50, ids=ids).ids)
        in_pool = np.isin(ids, pool)
        pool_scores = cat.ranking_scores(codes[in_pool], 0)
        np.testing.assert_array_equal(top.ids, ids[in_pool][np.lexsort((ids[in_pool], -pool_scores))][:20])
        assert top.candidates == pool.size and len(top) == 20
        assert np.all(np.diff(top.probabilities) <= 0) and np.all((top.probabilities >= 0) & (top.probabilities <= 1))
        assert (yn[np.isin(ids, top.ids)] == target).mean() > 0.8  # the category, found
        assert top.rows()[0]["id"] == int(top.ids[0]) and top.rows()[0]["rank"] == 1
        sure = client.members("one", k=len(ids), exhaustive=True, min_probability=0.5)
        assert 0 < len(sure) < len(ids) and np.all(sure.probabilities >= 0.5)
        scores = client.score("one", ids=ids)
        assert scores[yn == target].mean() > 0.5 > scores[yn != target].mean()
        for bad, match in ((dict(k=0), "k: expected a positive int"),
                           (dict(min_probability=2), "min_probability: expected a number from 0 to 1"),
                           (dict(candidates=10**6), "candidates: expected a positive int up to 16384")):
            with pytest.raises(InvalidInputError, match=match):
                client.members("one", **bad)
        # materializing again writes nothing; a redefinition replaces the materialization
        again = client.materialize("one")
        assert (again.written, again.deleted, again.rows) == (0, 0, len(ids))
        cat2 = client.define("one", ids=pos, n_bits=24, replace=True)
        assert client.category("one").n_bits == 24 and client.categories() == ["one"]
        with pytest.raises(CategoryNotFoundError, match=r"not materialized for its current definition; "
                                                        r"call materialize\('one'\)"):
            client.search("one", ids=ids[:1], mode="materialized")  # says to re-materialize, not to re-encode
        task = client.materialize("one").collection
        assert client.store.describe_collection(task).n_bits == 24 and client.store.count(task) == len(ids)
        assert cat2.fingerprint != cat.fingerprint
        # the redefinition left exactly its own parts (the old version's were deleted by key)
        defs = client.definitions
        rows = client.store._client.query(defs.definitions, filter=f'collection == "{name}" and name == "one"',
                                          output_fields=["version", "part"], consistency_level="Strong")
        head = defs.describe("one")
        assert sorted(r["part"] for r in rows) == [-1] + list(range(head["n_parts"]))
        assert {r["version"] for r in rows} == {head["version"]}
        client.drop("one")
        assert client.categories() == [] and not client.store.has_collection(task)
        client.define("one", ids=pos)  # a dropped name is free again, without replace=True
        assert client.categories() == ["one"]
        client.drop("one")
        with pytest.raises(CategoryNotFoundError, match="no category 'one'"):
            client.search("one", ids=ids[:1])


@pytest.mark.lite
def test_paper_method_and_clear_errors(tmp_path, world):
    lib, Xn, yn, codes, ids = world
    db = lite_library(tmp_path / "e.db", world)
    with HashStore(db) as store:
        store.create_collection("empty", encoder=lib.encoder_spec())
    ex_ids, ex_labels = pick(yn, ids, np.unique(yn)[:3], 4)
    with HashClient(db, collection="lib") as client:
        cat = client.define("paper", ids=ex_ids, labels=ex_labels, method="l1", n_bits=16)
        assert cat.arrays["positions"].shape == (16,)
        with pytest.raises(InvalidInputError, match=r"examples \(ids=\): expected at least one id"):
            client.define("x", ids=[])
        with pytest.raises(InvalidInputError, match=r"examples \(ids=\): expected ids stored in 'lib'"):
            client.define("x", ids=[1, 2])
        with pytest.raises(InvalidInputError, match="n_bits"):
            client.define("x", ids=ex_ids, labels=ex_labels, n_bits=2048)
        with pytest.raises(InvalidInputError, match="n_bits"):
            client.define("x", ids=ex_ids, labels=ex_labels, n_bits=12)
        with pytest.raises(InvalidInputError, match="name: expected"):
            client.define("bad name!", ids=ex_ids)
        with pytest.raises(InvalidInputError, match="labels: expected 12 labels"):
            client.define("x", ids=ex_ids, labels=ex_labels[:3])
        with pytest.raises(InvalidInputError, match="library: expected the UGHLibrary"):
            client.define("x", features=Xn[:3])
        # examples by explicit keyword (one or several kinds), queries by exactly one; nothing guessed
        with pytest.raises(InvalidInputError, match=r"examples: expected at least one of ids=, images=, codes=, "
                                                    r"features=, received none of them"):
            client.define("x")
        with pytest.raises(InvalidInputError, match=r"query: expected exactly one of .*, received ids= and codes="):
            client.search("paper", ids=ids[:1], codes=codes[:1])
        with pytest.raises(InvalidInputError, match=r"examples \(ids=\): expected stored ids.*received float32 array"):
            client.define("x", ids=Xn[:3])
        with pytest.raises(InvalidInputError, match=r"examples \(codes=\): expected library codes of \d+ bits"):
            client.define("x", codes=codes[:3].astype(np.uint16))
        with pytest.raises(InvalidInputError, match=r"examples \(images=\)\[0\]: expected an image path, a PIL "
                                                    r"image or a uint8 array HxW or HxWxC, received float64 array"):
            client.define("x", images=[np.zeros((8, 8))])
        with pytest.raises(InvalidInputError, match=r"examples \(images=\)\[0\]: expected an existing image file"):
            client.define("x", images="missing.png")
        with pytest.raises(InvalidInputError, match=r"name: expected a name not defined yet \(or replace=True"):
            client.define("paper", ids=ex_ids, labels=ex_labels)
        with pytest.raises(CategoryNotFoundError, match="no category 'nope'"):
            client.describe("nope")
        with pytest.raises(InvalidInputError, match="mode"):
            client.search("paper", ids=ids[:1], mode="fast")
        with pytest.raises(CategoryNotFoundError, match="not materialized"):
            client.search("paper", ids=ids[:1], mode="materialized")
    with HashClient(db, collection="empty") as client:  # one class with no background
        with pytest.raises(InvalidInputError, match="background"):
            client.define("x", codes=codes[:3])
    other = UGHLibrary(n_rounds=24, n_subset=600, n_categories=12, n_expand=20, random_state=1).fit(Xn)
    with pytest.raises(EncoderMismatchError, match="library"):
        HashClient(db, collection="lib", library=other)


@pytest.mark.lite
def test_category_cli(tmp_path, world):
    lib, Xn, yn, codes, ids = world
    db = lite_library(tmp_path / "cli.db", world)
    ex_ids, ex_labels = pick(yn, ids, np.unique(yn)[:3], 3)
    run = CliRunner().invoke
    base = ["--collection", "lib", "--uri", db]
    out = run(cli, ["category", "define", "t", *base, "--ids", ",".join(map(str, ex_ids)), "--labels",
                    ",".join(ex_labels)])
    assert out.exit_code == 0 and "defined 't': cca, 16 bits" in out.output, out.output
    assert "t: cca, 16 bits" in run(cli, ["category", "list", *base]).output
    out = run(cli, ["category", "materialize", "t", *base])
    assert out.exit_code == 0 and f"{len(ids):,} codes" in out.output
    out = run(cli, ["category", "search", "t", *base, "--id", str(ex_ids[0]), "--mode", "materialized", "-k", "3",
                    "--json"])
    assert out.exit_code == 0 and len(__import__("json").loads(out.output)["hits"]) == 3
    assert run(cli, ["category", "define", "t", *base]).exit_code == 2
    # members of one class of the task: one JSON object per row, in rank order, as the client ranks them
    label = ex_labels[0]
    out = run(cli, ["category", "members", "t", *base, "--label", label, "-k", "15", "--all", "--json"])
    assert out.exit_code == 0, out.output
    rows = [__import__("json").loads(line) for line in out.stdout.splitlines()]
    with HashClient(db, collection="lib") as client:
        want = client.members("t", label=label, k=15, exhaustive=True)
    assert [r["id"] for r in rows] == want.ids.tolist() and [r["rank"] for r in rows] == list(range(1, 16))
    assert all({"id", "source", "probability", "label"} <= set(r) for r in rows)
    assert sum(r["label"] == label for r in rows) >= 12
    out = run(cli, ["category", "members", "t", *base, "--label", label, "-k", "5", "--min-probability", "0.5"])
    assert out.exit_code == 0 and out.stdout.splitlines()[0].split() == ["rank", "probability", "id", "label", "source"]
    out = run(cli, ["category", "members", "t", *base, "-k", "5"])  # a task needs --label
    assert out.exit_code == 1 and "label: expected one of the task's classes" in out.output, out.output
    out = run(cli, ["category", "drop", "nope", *base])
    assert out.exit_code == 1 and "no category 'nope'" in out.output
    assert run(cli, ["category", "drop", "t", *base]).exit_code == 0


@pytest.mark.lite
def test_given_negatives_push_their_class_down_the_members(tmp_path, world):
    lib, Xn, yn, codes, ids = world
    db = lite_library(tmp_path / "neg.db", world)
    classes = np.unique(yn)
    # the target and the class whose items sit nearest to it: the confusion negatives are for
    centres = np.stack([np.unpackbits(codes[yn == c], axis=1).mean(0) for c in classes])
    target = classes[0]
    near = classes[1:][np.argmin(np.abs(centres[1:] - centres[0]).sum(1))]
    pos, _ = pick(yn, ids, [target], 5, seed=2)
    neg, _ = pick(yn, ids, [near], 5, seed=3)
    with HashClient(db, collection="lib", background=300) as client:
        client.define("plain", ids=pos)
        client.define("with-negatives", ids=pos, negatives=neg)
        k = int((yn == target).sum())
        lab = dict(zip(ids.tolist(), yn.tolist()))
        rank_of_near = {}
        for name in ("plain", "with-negatives"):
            got = client.members(name, k=len(ids), exhaustive=True)
            order = got.ids.tolist()
            assert sum(lab[i] == target for i in order[:k]) >= 0.9 * k  # the class first, either way
            rank_of_near[name] = np.mean([r for r, i in enumerate(order) if lab[i] == near])
        assert rank_of_near["with-negatives"] > rank_of_near["plain"] + 5, rank_of_near
        assert client.score("with-negatives", ids=neg).mean() < client.score("plain", ids=neg).mean()


@pytest.mark.lite
def test_another_clients_redefinition_is_seen_by_a_client_that_trusts_its_cache(tmp_path, world):
    lib, _, yn, codes, ids = world
    db = lite_library(tmp_path / "r.db", world)
    with HashStore(db) as store:
        a, b = HashClient(store=store, collection="lib"), HashClient(store=store, collection="lib")
        a.define("x", ids=ids[yn == yn[0]][:5])
        a.materialize("x")
        old = a.category("x")
        a.search("x", codes=codes[:3], k=5)  # a now trusts its definition and the materialization
        b.define("x", ids=ids[yn != yn[0]][:5], n_bits=24, replace=True)
        b.materialize("x")
        assert a.category("x").fingerprint == old.fingerprint  # within stale_check: the cached one
        got = a.search("x", codes=codes[:3], k=5, ties="id")  # the collection changed under it: looks again
        new = b.category("x")
        ref = hamming_topk(new.transform(codes[:3]), new.transform(codes), 5, ids=ids)
        np.testing.assert_array_equal(got.ids, ref.ids)
        np.testing.assert_array_equal(got.distances, ref.distances)
        assert a.category("x").fingerprint == new.fingerprint
        fresh = HashClient(store=store, collection="lib", stale_check=0)
        assert fresh.category("x").fingerprint == new.fingerprint
        b.define("x", ids=ids[:4], replace=True)
        assert fresh.category("x").fingerprint == b.category("x").fingerprint  # stale_check=0: at once
