"""Test tiers and the real Milvus back-ends the store tests run against.

Markers: ``unit`` (no Milvus), ``lite`` (embedded Milvus Lite in a temp dir), ``server`` (a real
Milvus standalone server started here from the ``milvus`` PyPI package), ``docker`` (the official
image through testcontainers; skipped without a Docker engine), ``slow`` (left out by default).

``MILVUS_HASH_TEST_URI=http://host:19530`` runs the server tier against an existing server
instead of starting one.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from milvus_hash import EncoderSpec, HashStore
from milvus_hash.store.local_server import LocalMilvusServer

# The command lines the tests run decode images in the test process (--workers 0): DataLoader worker
# processes can be killed under memory pressure on a loaded 2-core CI machine ("DataLoader worker
# exited unexpectedly"), which is not what these tests check. A test that needs workers says --workers.
os.environ.setdefault("MILVUS_HASH_WORKERS", "0")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("lite", "server", "docker")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """URI of a real Milvus standalone server for the whole test session."""
    uri = os.environ.get("MILVUS_HASH_TEST_URI")
    if uri:
        yield uri
        return
    server = LocalMilvusServer(tmp_path_factory.mktemp("milvus-server"), stop_grace=5)
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def bulk_stage(milvus_server, tmp_path):
    """A directory the test server imports files from: any local directory for the server started
    here (its storage is local); for ``MILVUS_HASH_TEST_URI``, ``MILVUS_HASH_TEST_STAGE`` or a skip."""
    if os.environ.get("MILVUS_HASH_TEST_URI"):
        stage = os.environ.get("MILVUS_HASH_TEST_STAGE")
        if not stage:
            pytest.skip("MILVUS_HASH_TEST_STAGE names no directory the server at MILVUS_HASH_TEST_URI reads")
        return stage
    return str(tmp_path / "stage")


S3_KEYS = {"AWS_ACCESS_KEY_ID": "milvus-hash-test", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-7f3a"}


@pytest.fixture(scope="session")
def s3_milvus(tmp_path_factory):
    """A real Milvus server whose storage is an S3 bucket, as on a MinIO-backed deployment.

    The S3 endpoint is moto's S3 server (``moto_server``, an implementation of the S3 API for
    tests: no MinIO binary installs here); the Milvus server is the real 2.3.5 standalone, storing
    its segments in bucket ``milvus-hash-bucket`` and importing from it. Yields
    ``{"uri", "endpoint", "bucket"}``; the credentials are :data:`S3_KEYS`.
    """
    import shutil
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from milvus_hash.store.local_server import free_port

    exe = Path(sys.executable).with_name("moto_server")
    exe = str(exe) if exe.exists() else shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server not found: it comes with the test extras (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("s3-milvus")
    port = free_port()
    log = open(root / "moto.log", "wb")
    moto = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    server = None
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"moto_server did not answer at {endpoint}: {(root / 'moto.log').read_text()[-500:]}")
        bucket = "milvus-hash-bucket"
        server = LocalMilvusServer(root / "milvus", stop_grace=5, config={
            "common.storageType": "minio", "minio.address": "127.0.0.1", "minio.port": port,
            "minio.accessKeyID": S3_KEYS["AWS_ACCESS_KEY_ID"],
            "minio.secretAccessKey": S3_KEYS["AWS_SECRET_ACCESS_KEY"], "minio.bucketName": bucket})
        server.start()
        yield {"uri": server.uri, "endpoint": endpoint, "bucket": bucket}
    finally:
        if server is not None:
            server.stop()
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(timeout=30)
        log.close()


@pytest.fixture
def lite_store(tmp_path):
    with HashStore(str(tmp_path / "test.db")) as store:
        yield store


@pytest.fixture
def server_store(milvus_server):
    with HashStore(milvus_server) as store:
        yield store


@pytest.fixture(params=[pytest.param("lite", marks=pytest.mark.lite),
                        pytest.param("server", marks=pytest.mark.server)])
def store(request):
    """The same tests on Milvus Lite and on the real server."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def collection(store):
    """A fresh collection name, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    store.drop_collection(name)


def compose_milvus_image() -> str:
    """The Milvus image docker/docker-compose.yml runs by default (``${MILVUS_IMAGE:-...}``): the one
    place the project's Milvus release is written."""
    import re
    from pathlib import Path

    import yaml

    compose = Path(__file__).resolve().parents[1] / "docker" / "docker-compose.yml"
    image = yaml.safe_load(compose.read_text())["services"]["milvus"]["image"]
    m = re.fullmatch(r"\$\{MILVUS_IMAGE:-([^}]+)\}", image)
    return m.group(1) if m else image


def make_spec(n_bits: int, kind: str = "test", seed: int = 0) -> EncoderSpec:
    return EncoderSpec(kind, f"fp{seed:04d}{n_bits}", n_bits)


def write_digit_pngs(root, per_class: int):
    """The first ``per_class`` of each of scikit-learn's digits as PNGs in ``root/<label>/<index>.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(d.target == c)[:per_class]:
            Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(root / str(c) / f"{i:04d}.png")
    return root


def random_codes(n: int, n_bits: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, n_bits // 8), dtype=np.uint8)


def clustered(n=3000, d=32, k=40, spread=1.0, seed=0):
    """Unit-norm features around ``k`` random centres, and their cluster labels."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2
    y = rng.integers(0, k, n)
    X = (centers[y] + spread * rng.standard_normal((n, d))).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def terminal_sigint() -> None:
    """In the child: SIGINT as in a terminal's foreground program (a test run started in the
    background of a shell without job control ignores it, and its children inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
