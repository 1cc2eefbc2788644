"""docker/ and deploy/ checked offline: the compose file against the compose specification's JSON
schema, the Kubernetes manifests against Kubernetes' own schemas, the Helm values against
deploy/helm/values.schema.json; and what they say agrees with the code (exit codes, CLI options,
the Milvus release that has HNSW on binary codes)."""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import compose_milvus_image

from ingestion.cli import cli
from ingestion.cli.options import EXIT_ERROR, EXIT_RETRY
from milvus_hash.store.hash_store import HNSW_BINARY_SINCE, parse_version

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "docker-compose.yml"
JOB = ROOT / "deploy" / "k8s" / "ingest-job.yaml"
VOLUME = ROOT / "deploy" / "k8s" / "corpus-volume.yaml"
VALUES = ROOT / "deploy" / "helm" / "milvus-values.yaml"
VALUES_SCHEMA = ROOT / "deploy" / "helm" / "values.schema.json"
KUBERNETES = "1.33.0"  # the oldest release with backoffLimitPerIndex and podFailurePolicy FailIndex GA


def validate(instance, schema) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in cls(schema).iter_errors(instance)]


def compose_schema() -> dict:
    return json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())


# ---------------------------------------------------------------- docker compose
def test_compose_file_is_valid_against_the_compose_specification():
    compose = yaml.safe_load(COMPOSE.read_text())
    assert validate(compose, compose_schema()) == []
    broken = copy.deepcopy(compose)
    broken["services"]["milvus"]["healthchek"] = broken["services"]["milvus"].pop("healthcheck")
    assert any("healthchek" in e for e in validate(broken, compose_schema()))  # the check does bite


def test_compose_runs_a_milvus_with_hnsw_on_binary_codes_healthy_and_with_volumes():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"etcd", "minio", "milvus"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert any(v.startswith("${MILVUS_HASH_VOLUMES:-./volumes}/") for v in service["volumes"]), name
        assert service["restart"] == "unless-stopped", name
    milvus = services["milvus"]
    assert {d: c["condition"] for d, c in milvus["depends_on"].items()} == {"etcd": "service_healthy",
                                                                           "minio": "service_healthy"}
    image = compose_milvus_image()
    assert image.startswith("milvusdb/milvus:") and parse_version(image) >= HNSW_BINARY_SINCE, image
    assert "19530:19530" in milvus["ports"]


# ---------------------------------------------------------------- Kubernetes
def k8s_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", [JOB, VOLUME], ids=lambda p: p.name)
def test_manifests_are_valid_kubernetes_objects(path):
    import kubernetes_validate

    docs = k8s_documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises on any error or unknown field
    broken = copy.deepcopy(docs[-1])
    broken["spec"]["completionz" if broken["kind"] == "Job" else "accesModes"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_ingest_job_shards_the_corpus_and_its_failure_policy_follows_the_exit_codes():
    config, job = k8s_documents(JOB)
    env = dict(config["data"])
    spec = job["spec"]
    shards = int(env["SHARDS"])
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == shards
    rules = {tuple(r["onExitCodes"]["values"]): r["action"] for r in spec["podFailurePolicy"]["rules"]
             if "onExitCodes" in r}
    assert rules[(EXIT_RETRY, 130)] == "Ignore"        # retry later, interrupted: restart, not a failure
    assert rules[(EXIT_ERROR, 2)] == "FailIndex"       # bad input, usage: the same on every retry
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    envs = {e["name"] for e in container["env"]}
    assert "MILVUS_TOKEN" in envs and "MILVUS_TOKEN" not in env  # the token comes from a Secret only
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "milvus-hash-token"
    # the arguments, as Kubernetes expands them in pod 3, are a valid `milvus-hash ingest` call
    values = {**env, "JOB_COMPLETION_INDEX": "3"}
    argv = container["command"][1:] + [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a)
                                       for a in container["args"]]
    ctx = cli.make_context("milvus-hash", argv)
    sub = cli.get_command(ctx, argv[0])
    params = sub.make_context("ingest", argv[1:]).params
    assert params["shard"] == f"3/{shards}" and params["collection"] == env["COLLECTION"]
    assert params["source"] == env["SOURCE"] and params["encoder_path"] == env["ENCODER"]
    claim = {v["name"]: v for v in pod["volumes"]}["corpus"]["persistentVolumeClaim"]["claimName"]
    pv, pvc = k8s_documents(VOLUME)
    assert claim == pvc["metadata"]["name"] == pv["spec"]["claimRef"]["name"]
    assert pvc["metadata"]["namespace"] == job["metadata"]["namespace"] == pv["spec"]["claimRef"]["namespace"]
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"] and "read-only" in pv["spec"]["mountOptions"]


# ---------------------------------------------------------------- sizing
def test_the_sizing_table_in_the_docs_is_what_the_sizing_model_prints(capsys):
    import runpy

    runpy.run_path(str(ROOT / "benchmarks" / "sizing.py"))["main"]([])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    docs = (ROOT / "docs" / "deployment.md").read_text().splitlines()
    start = docs.index(printed[0])
    assert docs[start:start + len(printed)] == printed and len(printed) == 10


# ---------------------------------------------------------------- Helm
def test_helm_values_match_their_schema_and_the_schema_bites():
    values = yaml.safe_load(VALUES.read_text())
    schema = json.loads(VALUES_SCHEMA.read_text())
    assert validate(values, schema) == []
    for path, bad in [(("queryNod",), {"replicas": 4}),                       # a misspelt component
                      (("queryNode", "resources", "requests", "memory"), "24GB"),  # not a Kubernetes quantity
                      (("image", "all", "tag"), "latest")]:                    # a moving tag
        broken = copy.deepcopy(values)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        assert validate(broken, schema), path


def test_helm_values_run_the_compose_files_milvus_in_cluster_mode_without_index_nodes():
    values = yaml.safe_load(VALUES.read_text())
    tag = compose_milvus_image().split(":")[1]
    assert values["image"]["all"]["tag"] == tag  # one Milvus release everywhere
    assert values["cluster"]["enabled"] and not values["indexNode"]["enabled"]
    assert values["streaming"]["enabled"] and values["woodpecker"]["enabled"]
    assert not values["pulsarv3"]["enabled"] and not values["kafka"]["enabled"]
