"""The deployment files in deploy/ agree with the code: they parse, every backbone service is there with health
checks, probes and resource limits, image and ports are the code's, every EDI_* variable they set is a setting
the code reads, and the topics script creates the topics of edi.schemas.topics."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shlex
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

import edi
from edi.cli.up import up as edi_up
from edi.schemas.topics import ALL_TOPICS
from edi.services.host import SERVICES, ServiceName

DEPLOY = Path(__file__).parents[2] / "deploy"
SRC = Path(edi.__file__).parent
IMAGE = f"edi-backbone:{version('edi-backbone')}"

# Every process of the backbone that runs on its own, by the name compose and Kubernetes give it.
PROCESSES = {*SERVICES, "gateway", "objects-janitor", "registry-api"}
HTTP_APIS = {"gateway", "registry-api"}  # answer on their HTTP port; the others on the ops port


@cache
def settings_fields() -> dict[str, Any]:
    """EDI_<FIELD> of every settings class in the package, with the field's default."""
    for module in pkgutil.walk_packages(edi.__path__, "edi."):
        if ".migrations" not in module.name:  # Alembic's env scripts run when imported
            importlib.import_module(module.name)
    found: dict[str, Any] = {}
    classes: list[type[BaseSettings]] = [BaseSettings]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.__module__.startswith("edi.") and cls.model_config.get("env_prefix") == "EDI_":
            for name, field in cls.model_fields.items():
                found[f"EDI_{name.upper()}"] = field.default
    return found


@cache
def environment_read_directly() -> set[str]:
    """EDI_* variables the code reads from os.environ itself (logging)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        names.update(re.findall(r"""os\.environ(?:\.get\(|\[)\s*["'](EDI_\w+)["']""", path.read_text("utf-8")))
    return names


def ops_port() -> int:
    port = settings_fields()["EDI_OPS_PORT"]
    assert isinstance(port, int)
    return port


def gateway_port() -> int:
    """The HTTP API's port: the gateway's setting, and `edi up --port`'s default."""
    port = settings_fields()["EDI_HTTP_PORT"]
    assert port == inspect.signature(edi_up).parameters["port"].default
    assert isinstance(port, int)
    return port


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return document


@cache
def k8s() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text("utf-8"))
    files = {DEPLOY / "k8s" / name for name in kustomization["resources"]}
    assert files == set((DEPLOY / "k8s").glob("*.yaml")) - {DEPLOY / "k8s" / "kustomization.yaml"}, \
        "every manifest is listed in kustomization.yaml"
    return [doc for path in sorted(files) for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def k8s_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in k8s() if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


# --- compose ------------------------------------------------------------------------------------------------------


def test_compose_runs_every_process_of_the_backbone_on_kafka_postgres_and_minio() -> None:
    services = compose()["services"]
    assert set(services) >= PROCESSES
    assert {"kafka", "postgres", "minio"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, which compose does not define"


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_each_compose_service_uses_the_project_image_with_a_health_check_and_limits(name: str) -> None:
    service = compose()["services"][name]
    assert service["image"] == IMAGE
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and limits["memory"]
    url = service["healthcheck"]["test"][-1]
    port = urlsplit(re.search(r"http://[^'\"]+", url)[0]).port  # type: ignore[index]
    if name in HTTP_APIS:
        assert port == (gateway_port() if name == "gateway" else 8080)
    else:
        assert port == ops_port() == int(service["environment"]["EDI_OPS_PORT"])
        assert url.endswith("/readyz')")


def run_commands() -> dict[str, list[str]]:
    """The `edi run` arguments of every compose service and Kubernetes Deployment."""
    commands = {f"compose {name}": service["command"] for name, service in compose()["services"].items()
                if name in PROCESSES}
    commands |= {f"k8s {name}": container(d)["command"] for name, d in k8s_kind("Deployment").items()}
    return {where: command[2:] for where, command in commands.items() if command[:2] == ["edi", "run"]}


def test_edi_run_knows_every_service_the_deployments_run() -> None:
    for where, names in run_commands().items():
        assert set(names) <= set(ServiceName), where
    assert any(names == ["gateway"] for names in run_commands().values())


def test_compose_services_set_only_known_settings() -> None:
    known = set(settings_fields()) | environment_read_directly()
    for name in PROCESSES:
        service = compose()["services"][name]
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables no settings class reads: {unknown}"


def test_compose_mounts_files_that_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"


# --- Kubernetes ---------------------------------------------------------------------------------------------------


def test_kubernetes_has_one_deployment_and_one_disruption_budget_per_process() -> None:
    deployments = k8s_kind("Deployment")
    assert set(deployments) == PROCESSES
    budgets = k8s_kind("PodDisruptionBudget")
    for name, deployment in deployments.items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        budget = budgets[name]["spec"]
        assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
        assert "maxUnavailable" in budget or "minAvailable" in budget


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_each_deployment_has_resource_requests_and_limits_and_probes_on_its_port(name: str) -> None:
    spec = container(k8s_kind("Deployment")[name])
    assert spec["image"] == IMAGE
    resources = spec["resources"]
    for kind in ("cpu", "memory"):
        assert resources["requests"][kind] and resources["limits"][kind]
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    live, ready = spec["livenessProbe"]["httpGet"], spec["readinessProbe"]["httpGet"]
    assert live["port"] == ready["port"] and live["port"] in ports
    if name == "registry-api":
        assert ports[live["port"]] == 8080
    else:
        assert (live["path"], ready["path"]) == ("/healthz", "/readyz")
        assert ports[live["port"]] == (gateway_port() if name == "gateway" else ops_port())


def test_kubernetes_config_and_secrets_hold_only_known_settings_and_are_what_the_pods_read() -> None:
    known = set(settings_fields()) | environment_read_directly()
    config_maps, secrets = k8s_kind("ConfigMap"), k8s_kind("Secret")
    for config in config_maps.values():
        assert set(config["data"]) <= known, set(config["data"]) - known
    for secret in secrets.values():
        assert set(secret["stringData"]) <= known, set(secret["stringData"]) - known
    assert int(config_maps["edi-config"]["data"]["EDI_OPS_PORT"]) == ops_port()
    for deployment in k8s_kind("Deployment").values():
        for source in container(deployment)["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
            else:
                assert source["secretRef"]["name"] in secrets


def test_kustomization_pins_the_image_to_the_project_version() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text("utf-8"))
    name, tag = IMAGE.split(":")
    assert [(image["name"], str(image["newTag"])) for image in kustomization["images"]] == [(name, tag)]


def test_the_dockerfile_installs_from_the_lock_file_and_exposes_the_ports() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text("utf-8")
    assert "uv sync --locked" in dockerfile
    exposed = {int(port) for line in dockerfile.splitlines() if line.startswith("EXPOSE") for port in line.split()[1:]}
    assert {gateway_port(), ops_port()} <= exposed


# --- topics -------------------------------------------------------------------------------------------------------


def test_the_topics_script_creates_the_topics_of_topics_py() -> None:
    created: dict[str, tuple[int, dict[str, str]]] = {}
    for line in (DEPLOY / "kafka" / "create-topics.sh").read_text("utf-8").splitlines():
        if line.startswith("create "):
            _, name, partitions, *options = shlex.split(line)
            configs = dict(value.split("=", 1) for flag, value in zip(options[::2], options[1::2], strict=True)
                           if flag == "--config")
            created[name] = (int(partitions), configs)
    expected = {}
    for spec in ALL_TOPICS:
        configs = {"cleanup.policy": "compact"} if spec.compacted else {
            "cleanup.policy": "delete", "retention.ms": str(-1 if spec.retention_ms is None else spec.retention_ms)}
        expected[spec.name] = (spec.partitions, configs)
    assert created == expected


def test_the_compose_prometheus_scrapes_every_process_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    targets = {target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]}
    expected = {f"{name}:{ops_port()}" for name in SERVICES} | {f"gateway:{gateway_port()}"}
    assert targets == expected
    assert set(compose()["services"]["prometheus"]["profiles"]) == {"monitoring"}
