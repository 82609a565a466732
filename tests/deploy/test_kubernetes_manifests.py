"""deploy/kubernetes, checked offline: rendered (tests/deploy/kustomize.py, kustomize's subset it uses),
every object valid against the schemas of a pinned Kubernetes version (kubernetes-validate, strict:
no unknown field), and the manifests agree with the code: the commands, ports and probes the services
serve, every environment variable a setting of the process it is given to, every consumer scaled on
its consumer lag under the metric name and label the services publish."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.ingest.config import Settings as IngestSettings
from services.notifier.config import Settings as NotifierSettings
from services.response_time.config import Settings as ResponseTimeSettings
from services.scoring.config import Settings as ScoringSettings
from shared.kafka import TOPIC_SPECS
from shared.settings import CommonSettings
from tests.deploy.kustomize import KustomizeError, json_patch, render

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the oldest version the manifests promise to fit (deploy/README.md)
NEWEST_KNOWN = "1.37.0"  # the newest kubernetes-validate 1.37 has schemas of: no API the manifests use is gone
KUSTOMIZATIONS = {"base": DEPLOY / "base", "production": DEPLOY / "overlays" / "production"}
SECRET = "csp-triage-secrets"
LAG_METRIC = "csp_consumer_lag"

# Deployment name -> (module run, its Settings, the setting of its HTTP port).
SERVICES: dict[str, tuple[str, type[CommonSettings], str]] = {
    "ingest": ("services.ingest", IngestSettings, "ingest_port"),
    "scoring": ("services.scoring", ScoringSettings, "read_api_port"),
    "response-time": ("services.response_time", ResponseTimeSettings, "response_time_port"),
    "notifier": ("services.notifier", NotifierSettings, "notifier_port"),
}


def objects_of(name: str) -> list[dict[str, Any]]:
    return render(KUSTOMIZATIONS[name])


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def served_name(module: str) -> str:
    """The service name a process gives ``serve`` in its ``__main__`` (its logs' and metrics' ``service``)."""
    tree = ast.parse((REPO / module.replace(".", "/") / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "serve"]
    assert len(calls) == 1
    return calls[0].args[2].value


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, NEWEST_KNOWN])
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_object_is_valid_kubernetes(name, version):
    objects = objects_of(name)
    assert len(objects) >= 18  # 4 x (Deployment, Service, PDB, HPA), 2 ConfigMaps, the Job
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_a_broken_manifest_is_refused_by_the_validation():
    # The validation has teeth: a field Kubernetes does not know, a probe with no port.
    deployment = by_kind(objects_of("base"), "Deployment")["scoring"]
    for operation in ({"op": "add", "path": "/spec/template/spec/containers/0/readinessprobe", "value": {}},
                      {"op": "remove", "path": "/spec/template/spec/containers/0/livenessProbe/httpGet/port"}):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(json_patch(deployment, [operation]), KUBERNETES_VERSION, strict=True)


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="commonLabels"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match="does not exist"):
        render(tmp_path)


def test_the_production_overlay_sets_its_namespace_image_and_patches():
    base, production = objects_of("base"), objects_of("production")
    assert len(production) == len(base) + 1  # its Namespace
    namespace = by_kind(production, "Namespace")["csp-triage"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {o["metadata"].get("namespace") for o in production if o["kind"] != "Namespace"} == {"csp-triage"}
    images = {c["image"] for o in production if o["kind"] in ("Deployment", "Job") for c in pod_spec(o)["containers"]}
    assert images == {"registry.example.com/csp-triage:1.0.0"}
    assert by_kind(production, "HorizontalPodAutoscaler")["scoring"]["spec"]["minReplicas"] == 3
    config = by_kind(production, "ConfigMap")["csp-triage-config"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2
    assert by_kind(base, "ConfigMap")["csp-triage-config"]["data"]["ENVIRONMENT"] == "production"


def test_one_image_runs_each_service_with_its_command_and_port():
    objects = objects_of("base")
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == set(SERVICES)
    # The Dockerfile builds one image for every process; the migration Job runs it too.
    images = {c["image"] for o in objects if o["kind"] in ("Deployment", "Job") for c in pod_spec(o)["containers"]}
    assert images == {"csp-triage"}
    for name, (module, settings, port_field) in SERVICES.items():
        assert served_name(module) == name  # the name its logs and metrics carry
        (container,) = pod_spec(deployments[name])["containers"]
        assert container["command"] == ["python", "-m", module]
        importlib.import_module(f"{module}.__main__")
        (port,) = container["ports"]
        assert port["name"] == "http"
        env = {e["name"]: e.get("value") for e in container["env"]}
        # The port set explicitly, the one the code defaults to (docs/configuration.md), and exposed.
        assert int(env[port_field.upper()]) == settings.model_fields[port_field].default == port["containerPort"]
        service = by_kind(objects, "Service")[name]
        assert service["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("http", port["containerPort"], "http")]
    assert {"ingest": 8081, "scoring": 8082, "response-time": 8083, "notifier": 8084} == {
        name: pod_spec(d)["containers"][0]["ports"][0]["containerPort"] for name, d in deployments.items()}


def test_every_deployment_has_probes_resources_and_runs_unprivileged():
    objects = objects_of("base")
    for obj in [o for o in objects if o["kind"] in ("Deployment", "Job")]:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        pod = pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name  # the Dockerfile's user
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, name  # a writable /tmp on the read-only root
            if obj["kind"] == "Deployment":
                assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}, name
                assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}, name
                assert container["startupProbe"]["httpGet"]["path"] == "/health/live", name
        if obj["kind"] == "Deployment":
            assert "replicas" not in obj["spec"], f"{name}: the HPA owns the replica count"


def test_the_probed_and_scraped_paths_are_the_ones_every_process_serves():
    source = (REPO / "shared" / "http.py").read_text()
    assert '@app.get("/health/live"' in source and '@app.get("/health/ready"' in source
    assert 'add_api_route("/metrics"' in (REPO / "shared" / "metrics.py").read_text()


def test_every_environment_variable_is_a_setting_of_its_process():
    objects = objects_of("base")
    config_maps = by_kind(objects, "ConfigMap")
    readme = (REPO / "deploy" / "README.md").read_text()
    for obj in [o for o in objects if o["kind"] in ("Deployment", "Job")]:
        name = obj["metadata"]["name"]
        settings = SERVICES[name][1] if obj["kind"] == "Deployment" else CommonSettings
        fields = {field.upper() for field in settings.model_fields}
        (container,) = pod_spec(obj)["containers"]
        names: list[str] = []
        for source in container.get("envFrom", []):
            assert set(source) == {"configMapRef"}, name  # secrets only by key, below
            names += list(config_maps[source["configMapRef"]["name"]]["data"])
        for env in container.get("env", []):
            names.append(env["name"])
            if "valueFrom" in env:
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET, name
                assert f"`{ref['key']}`" in readme, f"deploy/README.md does not document the secret key {ref['key']}"
        assert len(names) == len(set(names)), f"{name}: a variable set twice"
        assert set(names) <= fields, f"{name}: not settings of {settings.__module__}: {sorted(set(names) - fields)}"
        # Each secret a production process refuses the development default of comes from the Secret.
        secret_env = {e["name"] for e in container.get("env", []) if "valueFrom" in e}
        assert "DATABASE_URL" in secret_env, name
        if obj["kind"] == "Deployment":
            assert {"OPERATOR_API_KEY", "WEBHOOK_SECRET", "SEALING_KEYS", "ACTION_LINK_KEYS"} <= secret_env, name
            assert ("REDIS_URL" in secret_env) == (name == "scoring"), name  # only scoring uses Redis
    # Config values parse as the settings they are (a bad one would stop every process at start).
    data = config_maps["csp-triage-config"]["data"]
    CommonSettings(**{k.lower(): v for k, v in data.items()}, operator_api_key="k" * 24,
                   webhook_secret="whsec_" + "QUJD" * 8, sealing_keys="A" * 43 + "=", action_link_keys="a" * 32)


def test_the_migration_job_runs_what_docker_compose_runs_with_the_topic_settings():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    objects = objects_of("base")
    (job,) = by_kind(objects, "Job").values()
    assert pod_spec(job)["containers"][0]["command"] == compose["services"]["init"]["command"]
    assert pod_spec(job)["restartPolicy"] == "OnFailure" and job["spec"]["ttlSecondsAfterFinished"] > 0
    # `python -m shared.kafka ensure-topics` reads the topic settings from the environment the Job gets.
    kafka_cli = (REPO / "shared" / "kafka.py").read_text()
    config = by_kind(objects, "ConfigMap")["csp-triage-config"]["data"]
    for name in ("KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS"):
        assert f'os.environ.get("{name}"' in kafka_cli and name in config
    assert int(config["KAFKA_MIN_INSYNC_REPLICAS"]) < int(config["KAFKA_REPLICATION_FACTOR"])  # a broker may go


def test_every_consumer_scales_on_cpu_and_its_consumer_lag():
    objects = objects_of("base")
    hpas, deployments = by_kind(objects, "HorizontalPodAutoscaler"), by_kind(objects, "Deployment")
    pdbs = by_kind(objects, "PodDisruptionBudget")
    # A consumer's replicas beyond its topics' partitions idle: the topics the Job creates have the
    # ConfigMap's KAFKA_PARTITIONS each, or their own counts.
    config = by_kind(objects, "ConfigMap")["csp-triage-config"]["data"]
    most_partitions = int(config.get("KAFKA_PARTITIONS") or max(spec.partitions for spec in TOPIC_SPECS))
    consumers = {name for name, (_, settings, _) in SERVICES.items() if settings.consumer_group_name}
    assert consumers == set(SERVICES)  # the write API consumes too (deliveries)
    # The metric the HPAs read is the one the services publish (shared/metrics.py).
    assert re.search(rf'"{LAG_METRIC}"', (REPO / "shared" / "metrics.py").read_text())
    for name in consumers:
        hpa = hpas[name]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= most_partitions, name
        metrics = {m["type"]: m for m in hpa["metrics"]}
        assert metrics["Resource"]["resource"]["name"] == "cpu"
        assert metrics["Resource"]["resource"]["target"]["type"] == "Utilization"
        lag = metrics["External"]["external"]
        assert lag["metric"]["name"] == LAG_METRIC
        # Selected by the `service` label each process gives its metrics: the name it serves under.
        assert lag["metric"]["selector"] == {"matchLabels": {"service": served_name(SERVICES[name][0])}}
        assert lag["target"]["type"] == "AverageValue"
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector
        assert pdbs[name]["spec"]["maxUnavailable"] == 1


def test_the_optional_monitoring_scrapes_each_service_and_serves_the_lag_to_the_autoscalers():
    # A ServiceMonitor is a CRD the schemas do not know: its structure is checked here instead.
    (monitor,) = render(DEPLOY / "monitoring")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s", "honorLabels": True}
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = by_kind(objects_of("base"), "Service")
    assert set(services) == set(SERVICES)
    for service in services.values():
        assert wanted.items() <= service["metadata"]["labels"].items()
        assert "http" in {p["name"] for p in service["spec"]["ports"]}
    adapter = yaml.safe_load((DEPLOY / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    assert rule["name"]["as"] == LAG_METRIC and rule["seriesQuery"].startswith(LAG_METRIC + "{")
    assert "by (namespace, service)" in rule["metricsQuery"]
