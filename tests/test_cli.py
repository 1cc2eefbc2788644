"""The milvus-hash CLI, run as a user would (click's CliRunner, real Milvus Lite)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ingestion.cli import EXIT_RETRY, cli
from milvus_hash.local_server import free_port

pytestmark = pytest.mark.lite


def test_demo_round_trip_on_embedded_lite_and_rerun_is_idempotent(tmp_path):
    db = str(tmp_path / "demo.db")
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--uri", db])
    assert first.exit_code == 0, first.output
    assert "1797 codes of 64 bits written" in first.output
    assert "Milvus top-k equals exact numpy top-k: yes" in first.output
    again = runner.invoke(cli, ["demo", "--uri", db, "--json"])
    report = json.loads(again.output)
    assert report["matches_numpy"] and report["written"] == 1797
    assert report["mean_precision"] > 0.5  # LSH on digits finds mostly the same digit
    info = json.loads(runner.invoke(cli, ["info", "--uri", db, "--json"]).output)
    assert info["collections"] == [{
        "collection": "demo_digits", "count": 1797, "n_bits": 64, "index": "BIN_FLAT",
        "encoder": info["collections"][0]["encoder"]}]
    assert info["collections"][0]["encoder"]["kind"] == "lsh"


def test_uri_from_environment(tmp_path):
    db = str(tmp_path / "env.db")
    result = CliRunner().invoke(cli, ["info"], env={"MILVUS_URI": db})
    assert result.exit_code == 0, result.output
    assert db in result.output and "0 collection(s)" in result.output


def test_errors_and_exit_codes(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["info", "nope", "--uri", str(tmp_path / "x.db")])
    assert missing.exit_code == 1 and "no collection 'nope'" in missing.output
    bad_bits = runner.invoke(cli, ["demo", "--uri", str(tmp_path / "x.db"), "--bits", "12"])
    assert bad_bits.exit_code == 1 and "n_bits: expected a positive multiple of 8" in bad_bits.output
    bad_uri = runner.invoke(cli, ["info", "--uri", "store.sqlite"])
    assert bad_uri.exit_code == 1 and "ends in .db" in bad_uri.output
    down = runner.invoke(cli, ["info", "--uri", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == EXIT_RETRY and "a retry may help" in down.output


def test_help_has_examples():
    out = CliRunner().invoke(cli, ["demo", "--help"]).output
    assert "Examples:" in out and "milvus-hash demo --uri http://localhost:19530" in out


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
