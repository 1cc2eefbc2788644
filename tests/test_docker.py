"""The store against the official Milvus image, through testcontainers (needs a Docker engine)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import compose_milvus_image, make_spec, random_codes
from milvus_hash import HashStore, hamming_topk

MILVUS_IMAGE = compose_milvus_image()


def docker_engine_reason() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # no socket, no daemon, no permission
        return f"no Docker engine reachable ({type(exc).__name__}: {str(exc)[:120]})"
    return None


@pytest.mark.docker
def test_store_on_official_milvus_image():
    """The compose file's Milvus (2.6): exact and IVF searches equal numpy's, HNSW is picked by
    ``auto`` and finds nearly all of the true neighbours."""
    reason = docker_engine_reason()
    if reason:
        pytest.skip(f"testcontainers MilvusContainer needs a Docker engine: {reason}")
    try:
        from testcontainers.community.milvus import MilvusContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.milvus import MilvusContainer

    with MilvusContainer(image=MILVUS_IMAGE) as milvus:
        uri = milvus.get_connection_url()
        with HashStore(uri) as store:
            assert store.server_version >= (2, 6, 4)
            assert store.index_types() == ("BIN_FLAT", "BIN_IVF_FLAT", "HNSW")
            spec = make_spec(256)
            rng = np.random.default_rng(1)  # 500 groups of 10 near-duplicates: a code's 9 mates are its nearest
            bits = np.repeat(rng.integers(0, 2, (500, 256)), 10, axis=0) ^ (rng.random((5000, 256)) < 0.03)
            codes = np.packbits(bits.astype(np.uint8), axis=1)
            info = store.create_collection("docker_hnsw", encoder=spec, index_type="auto")
            assert (info.index_type, info.index_params) == ("HNSW", {"M": 16, "efConstruction": 200})
            store.insert("docker_hnsw", ids=np.arange(5000), codes=codes, encoder=spec)
            store.flush("docker_hnsw")
            with HashStore(uri) as again:
                assert again.describe_collection("docker_hnsw").index_type == "HNSW"
            res = store.search("docker_hnsw", codes=codes[:50], k=10, ef=200)
            ref = hamming_topk(codes[:50], codes, 10)
            assert (res.distances[:, 0] == 0).all()  # every code finds itself
            assert (res.distances >= ref.distances).all()
            recall = np.mean(res.distances == ref.distances)  # by distance: ties make ids ambiguous
            assert recall >= 0.9, recall
            spec = make_spec(128)
            codes = random_codes(1000, 128, 0)
            store.create_collection("docker_ref", encoder=spec, index_type="BIN_IVF_FLAT",
                                    index_params={"nlist": 16})
            store.insert("docker_ref", ids=np.arange(1000), codes=codes, encoder=spec)
            res = store.search("docker_ref", codes=codes[:10], k=10, ties="id", nprobe=16)
            ref = hamming_topk(codes[:10], codes, 10)
            np.testing.assert_array_equal(res.ids, ref.ids)
            np.testing.assert_array_equal(res.distances, ref.distances)


@pytest.mark.docker
def test_compose_servers_bulk_import_goes_through_its_minio_bucket(tmp_path):
    """docker/docker-compose.yml as a user starts it (etcd, MinIO, Milvus 2.6): `bulk_import` with an
    ``s3://a-bucket/...`` stage uploads to the MinIO the server stores its data in, the server
    imports, every row counts and equals numpy, and the staged objects are gone."""
    import os
    import subprocess
    from pathlib import Path

    from milvus_hash import BucketStage

    reason = docker_engine_reason()
    if reason:
        pytest.skip(f"docker compose needs a Docker engine: {reason}")
    compose = [*"docker compose -f".split(), str(Path(__file__).resolve().parents[1] / "docker" / "docker-compose.yml"),
               "-p", "milvus-hash-test"]
    env = dict(os.environ, MILVUS_HASH_VOLUMES=str(tmp_path / "volumes"))
    subprocess.run([*compose, "up", "-d", "--wait", "--wait-timeout", "600"], env=env, check=True)
    try:
        stage = BucketStage("s3://a-bucket/milvus-hash-stage", endpoint="http://127.0.0.1:9000",
                            access_key="minioadmin", secret_key="minioadmin")
        spec = make_spec(256)
        codes = random_codes(20_000, 256, 3)
        ids = np.arange(20_000, dtype=np.int64) * 7 + 1
        with HashStore("http://127.0.0.1:19530") as store:
            assert store.server_version >= (2, 6, 4)
            store.create_collection("compose_bulk", encoder=spec)
            assert store.bulk_import("compose_bulk", ids=ids, codes=codes, encoder=spec, stage=stage) == \
                {"imported": 20_000, "upserted": 0}
            assert store.count("compose_bulk") == 20_000
            res = store.search("compose_bulk", codes=codes[:10], k=10, ties="id")
            ref = hamming_topk(codes[:10], codes, 10)
            np.testing.assert_array_equal(res.ids, ids[ref.ids])
            np.testing.assert_array_equal(res.distances, ref.distances)
        assert list(stage.client().list_objects("a-bucket", prefix="milvus-hash-stage", recursive=True)) == []
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, check=False)
