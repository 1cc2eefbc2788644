"""The milvus-hash CLI, run as a user would (click's CliRunner, real Milvus Lite)."""

from __future__ import annotations

import json

import numpy as np

import pytest
from click.testing import CliRunner

from ingestion.cli import cli
from ingestion.cli.options import EXIT_RETRY
from milvus_hash.store.local_server import free_port

pytestmark = pytest.mark.lite


def test_demo_on_real_images_through_embedded_lite_and_rerun_is_idempotent(tmp_path):
    db, work = str(tmp_path / "demo.db"), str(tmp_path / "work")
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--uri", db, "--workdir", work, "--dataset", "digits", "--rounds", "20"])
    assert first.exit_code == 0, first.output
    assert "1. images: 1,797 digits PNG files" in first.output
    assert "3. hyper-trained a UGH library of 200 bits" in first.output
    assert "ingested 1,797, skipped 0 already stored, failed 0" in first.output
    assert "Milvus top-k equals exact numpy top-k: yes" in first.output
    assert "6. \"here are 5 pictures of a" in first.output and "a plain search from the same 5 pictures" in first.output
    again = runner.invoke(cli, ["demo", "--uri", db, "--workdir", work, "--dataset", "digits", "--rounds", "20",
                                "--json"])
    report = json.loads(again.output)
    assert report["matches_numpy"] and report["ingest"]["written"] == 1797 and report["n_bits"] == 200
    assert report["mean_precision"] > 0.6  # the library's codes find mostly the same digit
    assert all(q["label"] == q["image"].split("/")[0] for q in report["queries"])
    cat = report["category"]  # five pictures of one digit find that digit, shown beside a plain search
    assert len(cat["examples"]) == 5 and all(e.split("/")[0] == cat["label"] for e in cat["examples"])
    assert len(cat["members"]) == 10 and not {m["source"] for m in cat["members"]} & set(cat["examples"])
    assert cat["precision_at_k"] >= 0.8 and 0 <= cat["plain_precision_at_100"] <= 1
    assert cat["precision_at_k"] == np.mean([m["label"] == cat["label"] for m in cat["members"]])
    info = json.loads(runner.invoke(cli, ["info", "--uri", db, "--json"]).output)
    assert info["collections"] == [{
        "collection": "demo", "count": 1797, "n_bits": 200, "index": "BIN_FLAT",
        "encoder": info["collections"][0]["encoder"]}]
    assert info["collections"][0]["encoder"]["kind"] == "ugh"


def test_uri_from_environment(tmp_path):
    db = str(tmp_path / "env.db")
    result = CliRunner().invoke(cli, ["info"], env={"MILVUS_URI": db})
    assert result.exit_code == 0, result.output
    assert db in result.output and "0 collection(s)" in result.output


def test_errors_and_exit_codes(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["info", "nope", "--uri", str(tmp_path / "x.db")])
    assert missing.exit_code == 1 and "no collection 'nope'" in missing.output
    bad_rounds = runner.invoke(cli, ["demo", "--uri", str(tmp_path / "x.db"), "--rounds", "0"])
    assert bad_rounds.exit_code == 2 and "--rounds" in bad_rounds.output
    bad_uri = runner.invoke(cli, ["info", "--uri", "store.sqlite"])
    assert bad_uri.exit_code == 1 and "ends in .db" in bad_uri.output
    down = runner.invoke(cli, ["info", "--uri", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == EXIT_RETRY and "a retry may help" in down.output


@pytest.mark.parametrize("command", ["demo", "info", "features", "hypertrain", "ingest", "search"])
def test_every_command_has_examples_in_its_help(command):
    out = CliRunner().invoke(cli, [command, "--help"]).output
    assert "Examples:" in out and f"milvus-hash {command}" in out.split("Examples:")[1]


def test_hypertrain_reads_the_ugh_section_of_the_config_and_flags_win(tmp_path):
    from sklearn.datasets import load_digits

    from milvus_hash.encoders import load_encoder

    X = load_digits().data[:600].astype("float32") / 16
    src = tmp_path / "feats"
    from ingestion.features_folder import FeaturesWriter

    FeaturesWriter(src, {"name": "pixels", "weights": "none", "fingerprint": "f", "dim": 64}).write(
        range(600), X, [str(i) for i in range(600)], [None] * 600)
    conf = tmp_path / "c.yaml"
    conf.write_text("ugh:\n  n_rounds: 4\n  bits_per_round: 6\n  n_categories: 10\n  n_expand: 10\n")
    out = CliRunner().invoke(cli, ["--config", str(conf), "hypertrain", str(src), "--out", str(tmp_path / "a.npz"),
                                   "--quiet"])
    assert out.exit_code == 0, out.output
    lib = load_encoder(tmp_path / "a.npz")
    assert lib.n_bits_ == 24 and lib.n_categories == 10 and lib.n_subset == 600
    out = CliRunner().invoke(cli, ["--config", str(conf), "hypertrain", str(src), "--out", str(tmp_path / "b.npz"),
                                   "--rounds", "8", "--quiet"])
    assert out.exit_code == 0 and load_encoder(tmp_path / "b.npz").n_bits_ == 48
    bad = tmp_path / "bad.yaml"
    bad.write_text("ugh:\n  n_rounds: many\n")
    out = CliRunner().invoke(cli, ["--config", str(bad), "hypertrain", str(src), "--out", str(tmp_path / "c.npz")])
    assert out.exit_code == 2 and "config ugh.n_rounds" in out.output


def test_config_file_supplies_defaults_and_flags_win(tmp_path):
    db_conf, db_flag = tmp_path / "conf.db", tmp_path / "flag.db"
    conf = tmp_path / "store.yaml"
    conf.write_text(f"store:\n  uri: {db_conf}\n  timeout: 12\n")
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(conf), "info"])
    assert out.exit_code == 0 and str(db_conf) in out.output
    out = runner.invoke(cli, ["--config", str(conf), "info", "--uri", str(db_flag)])
    assert out.exit_code == 0 and str(db_flag) in out.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("store:\n  url: x.db\n")
    out = runner.invoke(cli, ["--config", str(bad), "info"])
    assert out.exit_code == 2 and "keys among" in out.output and "'url'" in out.output


def test_shipped_config_loads():
    from pathlib import Path

    from milvus_hash.config import load_config

    conf = load_config(Path(__file__).resolve().parents[1] / "configs" / "store.yaml")
    assert conf["store"]["uri"] == "./milvus_hash.db"
