"""Milvus Lite serves one program a file: a file another program holds is refused (exit 75, the holder's
PID), never opened a second time, and the holder's lock and data are left as they were. A file that is
not a Milvus Lite database is said to be one, at once (exit 1). With a real second process holding it."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from ingestion.cli import cli
from ingestion.cli.options import EXIT_ERROR, EXIT_RETRY
from milvus_hash import FileHeldError, HashStore, InvalidInputError
from milvus_hash.store.lite import lock_holder, lock_path

pytestmark = pytest.mark.lite

HOLDER = """
import sys
import numpy as np
from milvus_hash import EncoderSpec, HashStore
spec = EncoderSpec("test", "fp-held", 64)
with HashStore(sys.argv[1]) as store:
    if not store.has_collection("c"):
        store.create_collection("c", encoder=spec)
    print("holding", flush=True)
    for line in sys.stdin:                      # "write N": N more rows; then print the count
        n = int(line.split()[1])
        start = store.count("c")
        store.upsert("c", ids=np.arange(start, start + n), codes=np.zeros((n, 8), np.uint8), encoder=spec)
        print(store.count("c"), flush=True)
"""


def lite_servers_of(db) -> list[int]:
    """PIDs of the milvus-lite server processes serving ``db``."""
    from pathlib import Path

    from milvus_hash.store.lite import process_command

    pids = sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [pid for pid in pids if (cmd := process_command(pid)).split(" ")[:2][-1:] == [str(db)]
            and "milvus_lite/lib/milvus" in cmd]


@pytest.fixture
def held(tmp_path):
    """A Milvus Lite file held by another (real) program, which writes to it on request."""
    db = tmp_path / "held.db"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield db, proc
    finally:
        proc.kill()
        proc.wait()


def _write(proc, n: int) -> int:
    proc.stdin.write(f"write {n}\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def test_a_held_file_is_refused_with_the_holders_pid_and_its_lock_survives(held):
    db, holder = held
    lock = lock_path(db)
    inode = lock.stat().st_ino
    assert lock_holder(lock) == holder.pid
    servers = lite_servers_of(db)
    assert len(servers) == 1
    for attempt in range(3):  # each attempt used to remove the holder's lock; the next one then opened the file
        start = time.monotonic()
        with pytest.raises(FileHeldError) as err:
            HashStore(str(db))
        assert time.monotonic() - start < 3
        assert err.value.retryable and err.value.pid == holder.pid
        assert f"held by another program (PID {holder.pid}" in str(err.value)
        assert lock.exists() and lock.stat().st_ino == inode, f"attempt {attempt}: the holder's lock file was removed"
    assert lite_servers_of(db) == servers, "a second Milvus Lite server was started on the held file"
    assert _write(holder, 50) == 50  # the holder's data and server are intact
    assert _write(holder, 25) == 75


STORE_COMMANDS = [
    ["info"],
    ["info", "c", "--json"],
    ["ingest", "{images}", "--collection", "c", "--encoder", "{encoder}"],
    ["search", "--collection", "c", "--id", "1"],
    ["category", "list", "--collection", "c"],
    ["category", "define", "x", "--collection", "c", "--ids", "1,2,3"],
    ["category", "describe", "x", "--collection", "c"],
    ["category", "members", "x", "--collection", "c"],
    ["category", "materialize", "x", "--collection", "c"],
    ["category", "search", "x", "--collection", "c", "--id", "1"],
    ["category", "drop", "x", "--collection", "c"],
]


def test_every_command_that_opens_a_store_refuses_a_held_file(held, tmp_path):
    from milvus_hash import LSHHasher

    db, holder = held
    images = tmp_path / "images"
    images.mkdir()
    encoder = tmp_path / "lsh.npz"
    LSHHasher(n_bits=64, random_state=0).fit(np.random.default_rng(0).standard_normal((50, 784))
                                             .astype(np.float32)).save(encoder)
    inode = lock_path(db).stat().st_ino
    servers = lite_servers_of(db)
    for args in STORE_COMMANDS:
        args = [a.format(images=images, encoder=encoder) for a in args]
        out = CliRunner().invoke(cli, [*args, "--uri", str(db)])
        assert out.exit_code == EXIT_RETRY, (args, out.output)
        assert f"held by another program (PID {holder.pid}" in out.output, (args, out.output)
        assert "Traceback" not in out.output
    assert lock_path(db).stat().st_ino == inode
    assert lite_servers_of(db) == servers
    assert _write(holder, 10) == 10


def test_a_file_that_is_not_a_milvus_lite_database_is_said_to_be_one_at_once(tmp_path):
    text = tmp_path / "text.db"
    text.write_text("hello\n")
    start = time.monotonic()
    with pytest.raises(InvalidInputError, match="uri: expected a Milvus Lite database"):
        HashStore(str(text))
    assert time.monotonic() - start < 1
    out = CliRunner().invoke(cli, ["info", "--uri", str(text)])
    assert out.exit_code == EXIT_ERROR and "not one" in out.output and "retry" not in out.output, out.output
    assert text.read_text() == "hello\n"  # untouched
    empty = tmp_path / "empty.db"  # an empty file becomes a database, as milvus-lite makes it
    empty.touch()
    with HashStore(str(empty)) as store:
        assert store.list_collections() == []


@pytest.mark.parametrize("name", ["my file.db", "a" * 40 + ".db"])
def test_a_file_name_milvus_lite_refuses_is_a_usage_error_naming_uri(tmp_path, name):
    with pytest.raises(InvalidInputError, match="uri: expected a Milvus Lite file name"):
        HashStore(str(tmp_path / name))


def test_a_folder_that_cannot_hold_the_lock_file_names_uri(tmp_path):
    import os

    if os.geteuid() == 0:
        target = "/proc/milvus-hash-test.db"  # not writable even by root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "x.db")
    out = CliRunner().invoke(cli, ["ingest", str(tmp_path), "--collection", "c", "--encoder", "none.npz",
                                   "--uri", target])
    assert out.exit_code in (EXIT_ERROR, 2) and "uri" in out.output and "Traceback" not in out.output, out.output


def test_the_file_opens_once_its_holder_has_ended(held):
    db, holder = held
    assert _write(holder, 5) == 5
    holder.kill()
    holder.wait()
    deadline = time.monotonic() + 10  # the holder's server exits once it sees the lock go
    while True:
        try:
            with HashStore(str(db)) as store:
                assert store.count("c") == 5
            break
        except FileHeldError:
            assert time.monotonic() < deadline, "the file stayed held after its program ended"
            time.sleep(0.2)
