"""The category loop on real Milvus (Lite and the local server): define, look, mark right and wrong,
refine; marks kept in Milvus, visible to another process, equal to a numpy reference of the same
method; the merged plain search from several pictures equal to numpy."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from test_client import filled, world  # noqa: F401 (fixtures)

from ingestion.cli import cli
from milvus_hash import HashClient, InvalidInputError, hamming_distances
from milvus_hash.categories.category import BACKGROUND, learn_category
from milvus_hash.categories.background_sample import read_background


def _five(yn, ids, c=0, seed=0):
    rng = np.random.default_rng(seed)
    cls = np.unique(yn)[c]
    return ids[rng.choice(np.flatnonzero(yn == cls), 5, replace=False)], cls


def test_refine_removes_marked_negatives_keeps_rounds_and_equals_numpy(filled, world):
    lib, Xn, yn, codes, ids = world
    uri, name = filled
    ex, cls = _five(yn, ids)
    with HashClient(uri, collection=name, library=lib) as client:
        client.define("c", ids=ex)
        first = client.members("c", k=50)
        assert first.examples[np.isin(first.ids, ex)].all() and not first.examples[~np.isin(first.ids, ex)].any()
        row = {r["id"]: r for r in first.rows()}
        assert all(row[int(i)]["example"] for i in ex if int(i) in row)
        wrong = [int(i) for i, lab in zip(first.ids, first.labels) if lab != str(cls)][:3]
        wrong += [int(i) for i in ids[yn != cls][:3] if int(i) not in wrong][:6 - len(wrong)]
        right = [int(i) for i, lab, e in zip(first.ids, first.labels, first.examples) if lab == str(cls) and not e][:4]
        cat = client.refine("c", negative_ids=wrong, positive_ids=right)
        after = client.members("c", k=200)
        assert not set(after.ids.tolist()) & set(wrong), "a marked negative is still a member"
        assert after.examples[np.isin(after.ids, right)].all()
        new = client.members("c", k=50, new_only=True)
        assert not set(new.ids.tolist()) & (set(wrong) | set(right) | set(ex.tolist()))
        d = client.describe("c")
        assert d["positives"] == 5 + len(right) and d["negatives"] == len(wrong)
        assert len(d["rounds"]) == 1 and d["rounds"][0]["negatives"] == len(wrong) and d["rounds"][0]["at"] > 0

        # numpy reference of the same method: the same background, the same marks, every item scored
        _, bg = read_background(client.store, name, client.background_size, client.seed)
        pos = np.isin(ids, np.r_[ex, right])
        neg = np.isin(ids, wrong)
        order = np.r_[np.flatnonzero(np.isin(ids, ex)), np.flatnonzero(np.isin(ids, right))]
        ref_cat = learn_category("c", np.vstack([codes[order], codes[neg]]),
                                 [cls.astype(str)] * pos.sum() + [BACKGROUND] * neg.sum(), background=bg, n_bits=16,
                                 method="cca", library=lib.encoder_spec(), seed=client.seed)
        np.testing.assert_allclose(cat.member_scores(codes, 0), ref_cat.member_scores(codes, 0), rtol=1e-5, atol=1e-4)
        full = client.members("c", k=len(ids), exhaustive=True)
        keep = ~neg  # members ranks every item but the marked negatives, by the same rule
        ref = ref_cat.ranking_scores(codes[keep], 0)
        ref_order = ids[keep][np.lexsort((ids[keep], -ref))]
        np.testing.assert_array_equal(full.ids, ref_order)

        # undo: a forgotten negative may come back; forgetting an id never marked is an error
        client.refine("c", forget_ids=[wrong[0]])
        assert client.describe("c")["negatives"] == len(wrong) - 1
        assert wrong[0] in client.members("c", k=len(ids), exhaustive=True).ids.tolist()
        with pytest.raises(InvalidInputError, match="forget_ids: expected ids marked"):
            client.refine("c", forget_ids=[int(ids[-1]) + 10_000])
        with pytest.raises(InvalidInputError, match="marks: expected"):
            client.refine("c")
        # the latest mark wins: a negative marked right becomes a positive
        client.refine("c", positive_ids=[wrong[1]])
        d = client.describe("c")
        assert d["negatives"] == len(wrong) - 2 and d["positives"] == 5 + len(right) + 1


@pytest.mark.server
def test_refine_is_seen_by_another_process(milvus_server, world):
    """Another process refines on the server while this one has the category open."""
    from milvus_hash import HashStore

    lib, Xn, yn, codes, ids = world
    uri, name = milvus_server, f"lib_{uuid.uuid4().hex[:8]}"
    with HashStore(uri) as store:
        store.create_collection(name, encoder=lib.encoder_spec())
        store.upsert(name, ids=ids, codes=codes, encoder=lib.encoder_spec(), labels=[str(v) for v in yn])
    ex, cls = _five(yn, ids, c=1)
    with HashClient(uri, collection=name, library=lib, stale_check=0) as client:
        client.define("c2", ids=ex)
        wrong = [int(i) for i, lab in zip(client.members("c2", k=60).ids, client.members("c2", k=60).labels)
                 if lab != str(cls)][:3] or [int(ids[yn != cls][0])]
    script = ("import sys, json; from milvus_hash import HashClient\n"
              "with HashClient(sys.argv[1], collection=sys.argv[2]) as c:\n"
              "    c.refine('c2', negative_ids=json.loads(sys.argv[3]))\n"
              "    print(json.dumps(c.describe('c2')['negatives']))\n")
    out = subprocess.run([sys.executable, "-c", script, uri, name, json.dumps(wrong)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == len(wrong)
    with HashClient(uri, collection=name, stale_check=0) as client:
        assert client.describe("c2")["negatives"] == len(wrong)
        got = client.members("c2", k=len(ids), exhaustive=True)
        assert not set(got.ids.tolist()) & set(wrong)
        client.drop("c2")
        client.store.drop_collection(name)


@pytest.mark.lite
def test_a_refinement_is_kept_in_the_lite_file_for_the_next_program(tmp_path, world):
    """Milvus Lite serves one program a file: one program defines and refines, the next one finds the marks."""
    lib, Xn, yn, codes, ids = world
    data = tmp_path / "world.npz"
    np.savez(data, codes=codes, ids=ids, labels=yn.astype(str))
    db = str(tmp_path / "two.db")
    ex, cls = _five(yn, ids, c=1)
    wrong = [int(i) for i in ids[yn != cls][:3]]
    first = ("import sys, json, numpy as np; from milvus_hash import HashClient, HashStore, EncoderSpec\n"
             "z = np.load(sys.argv[2]); spec = EncoderSpec(**json.loads(sys.argv[3]))\n"
             "with HashStore(sys.argv[1]) as s:\n"
             "    s.create_collection('lib', encoder=spec)\n"
             "    s.upsert('lib', ids=z['ids'], codes=z['codes'], encoder=spec, labels=list(z['labels']))\n"
             "with HashClient(sys.argv[1], collection='lib') as c:\n"
             "    c.define('c2', ids=json.loads(sys.argv[4])); c.refine('c2', negative_ids=json.loads(sys.argv[5]))\n")
    second = ("import sys, json; from milvus_hash import HashClient\n"
              "with HashClient(sys.argv[1], collection='lib') as c:\n"
              "    m = c.members('c2', k=10_000, exhaustive=True)\n"
              "    print(json.dumps({'negatives': c.describe('c2')['negatives'], 'ids': m.ids.tolist()}))\n")
    spec = lib.encoder_spec()
    spec_json = json.dumps({"kind": spec.kind, "fingerprint": spec.fingerprint, "n_bits": spec.n_bits})
    out = subprocess.run([sys.executable, "-c", first, db, str(data), spec_json, json.dumps(ex.tolist()),
                          json.dumps(wrong)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-c", second, db], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["negatives"] == 3 and not set(got["ids"]) & set(wrong) and len(got["ids"]) == len(ids) - 3


def test_define_from_ids_and_codes_together_and_refine_refuses_a_task(filled, world):
    lib, Xn, yn, codes, ids = world
    uri, name = filled
    ex, cls = _five(yn, ids, c=2)
    with HashClient(uri, collection=name, library=lib) as client:
        cat = client.define("mix", ids=ex[:3], codes=codes[np.isin(ids, ex[3:])])
        assert cat.describe()["positives"] == 5 and cat.example_ids == ex[:3].tolist()
        pos_ids, _ = cat.marked_ids()
        assert pos_ids.tolist() == ex[:3].tolist() + [-1, -1]
        got = client.members("mix", k=30)
        assert got.examples[np.isin(got.ids, ex)].all()  # the code-given examples are flagged by their code too
        client.define("task", ids=ids[:4], labels=["a", "a", "b", "b"])
        with pytest.raises(InvalidInputError, match="a category of one class"):
            client.refine("task", negative_ids=[int(ids[5])])


def test_merged_plain_search_from_several_pictures_equals_numpy(filled, world):
    lib, Xn, yn, codes, ids = world
    uri, name = filled
    q = np.flatnonzero(yn == np.unique(yn)[3])[:4]
    with HashClient(uri, collection=name, library=lib) as client:
        got = client.similar(ids=ids[q], k=25, merge="min", ties="id")
        per = client.similar(ids=ids[q], k=25)
        assert got.ids.shape == (1, 25) and per.ids.shape == (4, 25)
        both = client.similar(ids=ids[q[:2]], features=Xn[q[2:]], k=25, merge="min", ties="id")
        with pytest.raises(InvalidInputError, match="merge"):
            client.similar(ids=ids[q], merge="max")
    d = hamming_distances(codes[q], codes).min(0)
    order = np.lexsort((ids, d))[:25]
    np.testing.assert_array_equal(got.ids[0], ids[order])
    np.testing.assert_array_equal(got.distances[0], d[order])
    np.testing.assert_array_equal(both.ids[0], ids[order])
    assert [f["source"] for f in got.fields[0]] == [f"item/{i}" for i in ids[order]]


@pytest.mark.lite
def test_refine_and_merged_search_from_the_command_line(tmp_path, world):
    from test_client import lite_library

    lib, Xn, yn, codes, ids = world
    db = lite_library(tmp_path / "r.db", world)
    ex, cls = _five(yn, ids, c=4)
    runner = CliRunner()
    base = ["--collection", "lib", "--uri", db]
    out = runner.invoke(cli, ["category", "define", "k", "--ids", ",".join(map(str, ex)), *base])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in runner.invoke(cli, ["category", "members", "k", "-k", "40", "--json",
                                                             *base]).output.splitlines() if line.startswith("{")]
    assert {r["id"] for r in rows if r["example"]} == set(ex.tolist()) & {r["id"] for r in rows}
    wrong = [r["id"] for r in rows if r["label"] != str(cls)][:2] or [int(ids[yn != cls][0])]
    right = [r["id"] for r in rows if r["label"] == str(cls) and not r["example"]][:2]
    args = ["category", "refine", "k", *base]
    for i in wrong:
        args += ["--negative", str(i)]
    for i in right:
        args += ["--positive", str(i)]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert f"{len(wrong)} wrong" in out.output and f"{len(right)} right" in out.output
    rows = [json.loads(line) for line in runner.invoke(cli, ["category", "members", "k", "-k", "200", "--json",
                                                             "--new-only", *base]).output.splitlines()
            if line.startswith("{")]
    got = {r["id"] for r in rows}
    assert not got & set(wrong) and not got & set(right) and not got & set(ex.tolist())
    assert not any(r["example"] for r in rows)
    out = runner.invoke(cli, ["category", "refine", "k", "--forget", str(wrong[0]), *base])
    assert out.exit_code == 0 and "forgot 1" in out.output, out.output
    out = runner.invoke(cli, ["category", "refine", "k", "--forget", "999999999", *base])
    assert out.exit_code == 1 and "forget_ids" in out.output, out.output
    out = runner.invoke(cli, ["category", "refine", "k", *base])
    assert out.exit_code == 2 and "--positive" in out.output, out.output
    # the merged plain search: several stored ids as one ranking
    q = [str(i) for i in ex[:3]]
    out = runner.invoke(cli, ["search", "--collection", "lib", "--uri", db, "--id", q[0], "--id", q[1], "--id", q[2],
                              "-k", "10", "--json"])
    assert out.exit_code == 0, out.output
    hits = json.loads(out.output)
    d = hamming_distances(codes[np.isin(ids, ex[:3])], codes).min(0)
    assert [h["distance"] for h in hits["hits"]] == sorted(d.tolist())[:10]


def test_one_name_on_two_collections_of_one_milvus_is_two_categories(filled, world):
    """A process that defines a category on one collection and then one of the same name on another
    collection of the same Milvus: the second is new, not "defined already" (the process's memory of
    what it wrote is per collection)."""
    from milvus_hash import HashStore

    lib, Xn, yn, codes, ids = world
    uri, name = filled
    other = f"{name}_b"
    with HashStore(uri) as store:
        spec = lib.encoder_spec()
        store.create_collection(other, encoder=spec)
        store.upsert(other, ids=ids, codes=codes, encoder=spec, labels=[str(v) for v in yn])
    ex, _ = _five(yn, ids)
    with HashClient(uri, collection=name, library=lib) as a, HashClient(uri, collection=other, library=lib) as b:
        a.define("same", ids=ex)
        b.define("same", ids=ex[:3])
        assert a.describe("same")["positives"] == 5 and b.describe("same")["positives"] == 3
        a.drop("same")
        assert b.categories() == ["same"] and a.categories() == []
