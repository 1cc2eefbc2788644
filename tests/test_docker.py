"""The store against the official Milvus image, through testcontainers (needs a Docker engine)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_spec, random_codes
from milvus_hash import HashStore, hamming_topk

MILVUS_IMAGE = "milvusdb/milvus:v2.5.4"


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
            spec = make_spec(128)
            codes = random_codes(1000, 128, 0)
            store.create_collection("docker_ref", encoder=spec, index_type="BIN_IVF_FLAT",
                                    index_params={"nlist": 16})
            store.insert("docker_ref", ids=np.arange(1000), codes=codes, encoder=spec)
            res = store.search("docker_ref", codes=codes[:10], k=10, ties="id", nprobe=16)
            ref = hamming_topk(codes[:10], codes, 10)
            np.testing.assert_array_equal(res.ids, ref.ids)
            np.testing.assert_array_equal(res.distances, ref.distances)
