"""Evaluation: scorers (numpy and through Milvus give the same numbers), protocols, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_digit_pngs
from ingestion.cli import cli
from milvus_hash.codes import hamming_topk, pack_bits
from milvus_hash.eval import average_precisions, precision_within_radius
from milvus_hash.eval.scoring import MilvusScorer, NumpyScorer, ap_from_ranking


def _clustered_codes(n, n_bits, n_classes, seed):
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (n_classes, n_bits))
    y = rng.integers(0, n_classes, n)
    flips = rng.random((n, n_bits)) < 0.2
    return pack_bits(centres[y] ^ flips), y


@pytest.mark.unit
def test_ap_from_a_ranking_equals_the_metric():
    db, ydb = _clustered_codes(3000, 16, 5, 0)
    q, yq = _clustered_codes(50, 16, 5, 1)
    full = hamming_topk(q, db, len(db)).ids
    assert np.allclose(ap_from_ranking(full, yq, ydb), average_precisions(q, yq, db, ydb))
    assert np.allclose(ap_from_ranking(full, yq, ydb, top=100), average_precisions(q, yq, db, ydb, top=100))


def test_milvus_scorer_gives_the_numpy_numbers(store):
    """Full rankings of a database larger than Milvus's top-k limit (merged id ranges) and top-k."""
    db, ydb = _clustered_codes(MilvusScorer.SHARD + 3000, 16, 6, 2)  # 16 bits: many ties
    q, yq = _clustered_codes(40, 16, 6, 3)
    ms = MilvusScorer(store)
    full = ms.score(q, yq, db, ydb, top=None, radius=2)
    assert full == NumpyScorer().score(q, yq, db, ydb, top=None, radius=2)
    assert full["p_r2"] == precision_within_radius(q, yq, db, ydb, radius=2)
    top = ms.score(q, yq, db[:5000], ydb[:5000], top=500, radius=None)
    assert top == NumpyScorer().score(q, yq, db[:5000], ydb[:5000], top=500, radius=None)
    assert ms.queries == 80 and ms.build_s > 0 and ms.search_s > 0
    assert not [c for c in store.list_collections() if c.startswith("milvus_hash_eval")]  # dropped


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    return write_digit_pngs(tmp_path_factory.mktemp("eval") / "digits", 40)


ARGS = ["--backbone", "pixels", "--size", "8", "--rounds", "12", "--queries", "60", "--shots", "1,5",
        "--lengths", "8,16", "--draws", "2", "--seeds", "0,1", "--top", "50", "--workers", "0", "--quiet"]


def _numbers(results: dict) -> dict:
    out = {}
    for proto in ("fewshot", "unsupervised"):
        for group in ("by_shots", "by_length"):
            for x, rows in (results[proto] or {}).get(group, {}).items():
                for method, vals in rows.items():
                    for k, v in vals.items():
                        if k not in ("fit_s", "encode_per_s"):
                            out[(proto, group, x, method, k)] = v
    return out


@pytest.mark.lite
def test_eval_writes_the_report_and_milvus_gives_the_same_numbers(digits_folder, tmp_path):
    db = str(tmp_path / "m.db")
    res = CliRunner().invoke(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "numpy"), "--uri", db] + ARGS)
    assert res.exit_code == 0, res.output
    # third-party warnings are summed up once at the end, never printed between the tables
    assert "warnings.warn(" not in res.output and "site-packages" not in res.output
    out = tmp_path / "numpy"
    report = (out / "report.md").read_text()
    for heading in ("## Few-shot protocol", "## Unsupervised protocol", "## Figures", "## Speed and memory",
                    "| UGH default (CCA codes) |", "| PCA-ITQ |", "| CCA-ITQ (labeled) |", "| random library bits |",
                    "| LSH |", "UGH default (CCA codes) / best baseline", "Milvus top-k equals numpy's | True"):
        assert heading in report, heading
    pngs = ["fewshot_map_vs_shots.png", "fewshot_map_vs_length.png", "fewshot_pr_curves.png",
            "ugh_bits_montage.png", "unsupervised_map_vs_length.png", "unsupervised_pr_curves.png"]
    for name in pngs:
        assert f"]({name})" in report
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 300
            assert np.asarray(im.convert("L")).std() > 10  # something is drawn
    results = json.loads((out / "results.json").read_text())
    numbers = _numbers(results)
    assert len(numbers) > 100 and all(0.0 <= v <= 1.0 for k, v in numbers.items() if not k[-1].endswith("_std"))
    assert results["fewshot"]["scorer"] == "numpy"
    assert set(results["fewshot"]["by_shots"]) == {"1", "5"} and set(results["unsupervised"]["by_length"]) == {"8", "16"}
    # every query through Milvus Lite: the same numbers, exactly
    res = CliRunner().invoke(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "milvus"), "--uri", db,
                                   "--through-milvus"] + ARGS[:-1])  # not --quiet: it shows its progress
    assert res.exit_code == 0, res.output
    assert "few-shot protocol: shots 1, 5, 2 draw(s)" in res.output and "unsupervised protocol: 8 bits, 16 bits" \
        in res.output and "warnings.warn(" not in res.output
    through = json.loads((tmp_path / "milvus" / "results.json").read_text())
    assert through["fewshot"]["scorer"] == "milvus"
    assert _numbers(through) == numbers


@pytest.mark.lite
def test_eval_bad_input(digits_folder, tmp_path):
    run = CliRunner().invoke
    res = run(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "r"), "--lengths", "12", "--uri",
                    str(tmp_path / "m.db")])
    assert res.exit_code == 2 and "multiples of 8" in res.output
    res = run(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "r"), "--rounds", "10", "--uri",
                    str(tmp_path / "m.db")])
    assert res.exit_code == 2 and "multiple of 4" in res.output
    unlabeled = tmp_path / "flat"
    unlabeled.mkdir()
    for p in list((digits_folder / "3").iterdir())[:20]:
        (unlabeled / p.name).write_bytes(p.read_bytes())
    res = run(cli, ["eval", str(unlabeled), "--out", str(tmp_path / "r"), "--backbone", "pixels", "--size", "8",
                    "--uri", str(tmp_path / "m.db"), "--workers", "0"])
    assert res.exit_code == 1 and "labeled source" in res.output
    res = run(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "r"), "--shots", "a,b", "--uri",
                    str(tmp_path / "m.db")])
    assert res.exit_code == 2 and "comma-separated integers" in res.output


@pytest.mark.lite
def test_eval_on_a_features_folder_gives_the_numbers_of_the_images(digits_folder, tmp_path):
    db = str(tmp_path / "m.db")
    run = CliRunner().invoke
    res = run(cli, ["features", str(digits_folder), "--out", str(tmp_path / "f"), "--backbone", "pixels", "--size", "8",
                    "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    args = ["--rounds", "12", "--queries", "60", "--protocol", "fewshot", "--shots", "1,5", "--lengths", "16",
            "--draws", "1", "--workers", "0", "--quiet", "--uri", db]
    res = run(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "img"), "--backbone", "pixels", "--size", "8"]
              + args)
    assert res.exit_code == 0, res.output
    res = run(cli, ["eval", str(tmp_path / "f"), "--out", str(tmp_path / "feat")] + args)
    assert res.exit_code == 0, res.output
    a = json.loads((tmp_path / "img" / "results.json").read_text())
    b = json.loads((tmp_path / "feat" / "results.json").read_text())
    assert _numbers(a) == _numbers(b) and len(_numbers(a)) > 20
    report = (tmp_path / "feat" / "report.md").read_text()
    assert "features folders (64-D)" in report and "ugh_bits_montage" not in report  # no images: no montage
    res = run(cli, ["eval", str(tmp_path / "f"), "--out", str(tmp_path / "x"), "--backbone", "pixels"] + args)
    assert res.exit_code == 2 and "features folder" in res.output


@pytest.mark.lite
def test_single_category_protocol_through_milvus_gives_the_numpy_numbers(digits_folder, tmp_path):
    db = str(tmp_path / "s.db")
    args = ["--backbone", "pixels", "--size", "8", "--rounds", "40", "--queries", "200", "--shots", "1,3",
            "--draws", "2", "--protocol", "single", "--workers", "0", "--quiet"]
    res = CliRunner().invoke(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "numpy"), "--uri", db] + args)
    assert res.exit_code == 0, res.output
    report = (tmp_path / "numpy" / "report.md").read_text()
    for heading in ("## Single-category protocol", "| UGH category (members) |",
                    "| cosine to the mean feature |", "| nearest positive (library Hamming) |",
                    "| majority library code (Hamming) |", "| one-class 16-bit code (previous) |",
                    "UGH category (members) / best baseline", "](single_map_vs_shots.png)"):
        assert heading in report, heading
    with Image.open(tmp_path / "numpy" / "single_map_vs_shots.png") as im:
        assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 10
    single = json.loads((tmp_path / "numpy" / "results.json").read_text())["single"]
    assert set(single["by_shots"]) == {"1", "3"} and single["scorer"] == "numpy" and single["draws"] == 2
    rows = single["by_shots"]["3"]
    ugh = rows["UGH category (members)"]
    assert 0.3 < ugh["map"] <= 1 and ugh["p10"] > 0.8  # digits: three pictures of a digit find that digit
    assert ugh["map"] > rows["one-class 16-bit code (previous)"]["map"]
    res = CliRunner().invoke(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "milvus"), "--uri", db,
                                   "--through-milvus"] + args)
    assert res.exit_code == 0, res.output
    through = json.loads((tmp_path / "milvus" / "results.json").read_text())["single"]
    assert through["scorer"] == "milvus"
    assert {n: r["UGH category (members)"] for n, r in through["by_shots"].items()} == \
        {n: r["UGH category (members)"] for n, r in single["by_shots"].items()}


@pytest.mark.unit
def test_feedback_protocol_from_the_command_line(digits_folder, tmp_path):
    args = ["--backbone", "pixels", "--size", "8", "--rounds", "40", "--queries", "200", "--shots", "1,3",
            "--draws", "1", "--protocol", "feedback", "--feedback-rounds", "2", "--per-round", "10", "--workers", "0",
            "--quiet"]
    res = CliRunner().invoke(cli, ["eval", str(digits_folder), "--out", str(tmp_path / "fb")] + args)
    assert res.exit_code == 0, res.output
    report = (tmp_path / "fb" / "report.md").read_text()
    for heading in ("## Feedback protocol", "**n = 3**", "| UGH category (members) |",
                    "| plain search, library codes |", "| Rocchio, float features |", "| round 2 |",
                    "](feedback_map_by_round.png)"):
        assert heading in report, heading
    with Image.open(tmp_path / "fb" / "feedback_map_by_round.png") as im:
        assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 10
    fb = json.loads((tmp_path / "fb" / "results.json").read_text())["feedback"]
    assert set(fb["by_shots"]) == {"1", "3"} and fb["rounds"] == 2 and fb["per_round"] == 10
    ugh = fb["by_shots"]["3"]["UGH category (members)"]
    assert len(ugh) == 3 and ugh[2]["map"] > ugh[0]["map"]  # marks help: digits, 20 marks
    assert all(0 < r["map"] <= 1 for per in fb["by_shots"]["3"].values() for r in per)
