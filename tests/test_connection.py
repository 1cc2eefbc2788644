"""Unreachable and silent servers give a typed, retryable error within the stated timeout. (A server
that goes away mid-ingest and comes back with its data: tests/test_ingest.py, failed write.)"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from milvus_hash import HashStore, InvalidInputError, MilvusUnavailableError
from milvus_hash.store.local_server import free_port


def test_refused_port_fails_fast_and_is_retryable():
    start = time.monotonic()
    with pytest.raises(MilvusUnavailableError, match="a retry may help") as err:
        HashStore(f"http://127.0.0.1:{free_port()}", timeout=3)
    assert err.value.retryable
    assert time.monotonic() - start < 3 + 2


def test_credentials_inside_a_uri_are_used_and_never_shown(monkeypatch):
    from click.testing import CliRunner

    from ingestion.cli import cli
    from milvus_hash.store.connection import resolve_uri, split_credentials

    port = free_port()
    assert split_credentials(f"http://alice:s%40cret@127.0.0.1:{port}/db") == (f"http://127.0.0.1:{port}/db",
                                                                               "alice:s@cret")
    assert split_credentials("http://127.0.0.1:19530") == ("http://127.0.0.1:19530", None)
    target = resolve_uri(f"http://alice:s3cret@127.0.0.1:{port}")
    assert target.credentials == "alice:s3cret" and "s3cret" not in f"{target} {target!r} {target.uri}"
    with pytest.raises(MilvusUnavailableError) as err:
        HashStore(f"http://alice:s3cret@127.0.0.1:{port}", timeout=2)
    assert "s3cret" not in str(err.value) and "alice" not in str(err.value)
    out = CliRunner().invoke(cli, ["info", "--uri", f"http://alice:s3cret@127.0.0.1:{port}", "--timeout", "2"])
    assert out.exit_code == 75 and "s3cret" not in out.output, out.output
    with pytest.raises(InvalidInputError) as err:
        HashStore("ftp://alice:s3cret@host/x")
    assert "s3cret" not in str(err.value)


def test_silent_server_does_not_hang_beyond_the_timeout():
    """A port that accepts connections and never answers (a hung proxy, say)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        with pytest.raises(MilvusUnavailableError) as err:
            HashStore(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        elapsed = time.monotonic() - start
        assert err.value.retryable
        assert elapsed < 2 + 3, f"took {elapsed:.1f} s with a 2 s timeout"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize("uri,match", [
    ("milvus.txt", "ends in .db"),
    ("ftp://host:19530", "scheme"),
    ("", "empty"),
    (42, "uri: expected"),
])
def test_bad_uri(uri, match):
    with pytest.raises(InvalidInputError, match=match):
        HashStore(uri)


def test_bad_timeout_and_options(tmp_path):
    with pytest.raises(InvalidInputError, match="timeout"):
        HashStore(str(tmp_path / "a.db"), timeout=0)
    with pytest.raises(InvalidInputError, match="keyword arguments"):
        HashStore(str(tmp_path / "a.db"), verify=True)


@pytest.mark.server
def test_a_restarted_local_server_keeps_its_port_unless_another_program_took_it(tmp_path):
    """The data directory's port is taken again on a restart, even while its last connections are in
    TIME_WAIT (milvus-server's own check moved to the next port on every quick restart); a port
    another program listens on is left to it."""
    from milvus_hash.store.local_server import LocalMilvusServer

    server = LocalMilvusServer(tmp_path / "srv", stop_grace=5)
    ports = []
    for _ in range(2):
        server.start()
        store = HashStore(server.uri, timeout=10)
        store.list_collections()
        server.stop()  # the server closes first: its end of the connection waits in TIME_WAIT
        store.close()
        ports.append(server.port)
    assert ports[0] == ports[1]
    # another data directory whose recorded port a program listens on now: the server takes another
    (tmp_path / "other").mkdir()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    (tmp_path / "other" / "ports.json").write_text(json.dumps({"proxy-port": taken}))
    try:
        with LocalMilvusServer(tmp_path / "other", stop_grace=5) as other:
            assert other.port != taken
            with HashStore(other.uri, timeout=10) as store:
                assert isinstance(store.list_collections(), list)
    finally:
        squatter.close()
