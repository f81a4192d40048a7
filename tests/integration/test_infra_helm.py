"""infra/helm/bulwark: Helm's own engine lints and renders the chart for every region's values
file, and every rendered manifest is valid Kubernetes (the OpenAPI schemas of
``kubernetes-validate``, offline, strict). Then what the deployment relies on: the scale-out
topology (API Deployment with HPA and PDB, workers, a migrations hook Job), probes on /healthz and
/readyz, unprivileged pods, default-deny network policies, and settings Bulwark accepts, confined
to the region.

The engine is Helm v4's Go SDK through PyPI ``helm-python-sdk`` (no ``helm`` binary is packaged
for Debian bookworm). Each check is also shown failing on a broken chart or manifest.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from kernel.settings import Settings

CHART = Path(__file__).parents[2] / "infra" / "helm" / "bulwark"
REGION_VALUES = sorted(CHART.glob("values-*.yaml"))
KUBERNETES_VERSION = "1.30"
RELEASE = "bulwark"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("BULWARK_"):
            monkeypatch.setenv(key, value)
    return Settings()


def _values(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def render(values: dict[str, Any], *, release: str = RELEASE) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace=release, is_install=True)
    documents = []
    for template, text in sorted(manifests.items()):
        if not template.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document["__template"] = template
                documents.append(document)
    return documents


def validate(document: dict[str, Any]) -> None:
    manifest = {k: v for k, v in document.items() if k != "__template"}
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def named(documents: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    """The one ``kind`` named ``RELEASE + suffix`` (the release name is the chart's full name)."""
    (found,) = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == RELEASE + suffix]
    return found


@pytest.fixture(params=REGION_VALUES, ids=lambda p: p.stem)
def region_values(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _values(request.param)


def test_there_is_a_values_file_per_region() -> None:
    regions = {_values(path)["region"] for path in REGION_VALUES}
    assert regions == {"eu", "us"}
    for path in REGION_VALUES:
        assert path.stem == f"values-{_values(path)['region']}"


def test_helm_lint_passes_for_every_region(region_values: dict[str, Any]) -> None:
    report = helm.lint(
        str(CHART), region_values, strict=True, kube_version=f"v{KUBERNETES_VERSION}.0"
    )
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_every_rendered_manifest_is_valid_kubernetes(region_values: dict[str, Any]) -> None:
    documents = render(region_values)
    assert len(documents) >= 10
    for document in documents:
        validate(document)


def test_the_chart_deploys_the_scale_out_topology(region_values: dict[str, Any]) -> None:
    documents = render(region_values)
    api = named(documents, "Deployment", "-api")
    worker = named(documents, "Deployment", "-worker")
    assert api["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve"]
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    # The HPA owns the API's replica count; the PDB keeps enough of them through disruptions.
    hpa = named(documents, "HorizontalPodAutoscaler", "-api")
    assert "replicas" not in api["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": api["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = named(documents, "PodDisruptionBudget", "-api")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = named(documents, "Service", "-api")
    assert service["spec"]["selector"].items() <= labels.items()
    # Probes: liveness on /healthz, readiness on /readyz, on the container's serving port.
    container = api["spec"]["template"]["spec"]["containers"][0]
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_migrations_run_as_a_hook_before_the_pods_change(region_values: dict[str, Any]) -> None:
    documents = render(region_values)
    job = named(documents, "Job", "-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["args"] == ["migrate"]
    # What the Job reads exists before it runs: hooks of lower weight (or existing Secrets).
    refs = spec["containers"][0]["envFrom"]
    config = refs[0]["configMapRef"]["name"]
    hooked = {
        (d["kind"], d["metadata"]["name"]): int(d["metadata"]["annotations"]["helm.sh/hook-weight"])
        for d in documents
        if "helm.sh/hook" in d["metadata"].get("annotations", {})
    }
    weight = int(annotations["helm.sh/hook-weight"])
    assert hooked["ConfigMap", config] < weight
    assert hooked["ServiceAccount", spec["serviceAccountName"]] < weight
    # The schema owner's credentials reach only the Job.
    migration_secret = refs[1]["secretRef"]["name"]
    for deployment in of_kind(documents, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names = {r.get("secretRef", {}).get("name") for r in container["envFrom"]}
            assert migration_secret not in names


def test_every_pod_runs_unprivileged(region_values: dict[str, Any]) -> None:
    documents = render(region_values)
    pods = [d["spec"]["template"]["spec"] for d in of_kind(documents, "Deployment")]
    pods += [d["spec"]["template"]["spec"] for d in of_kind(documents, "Job")]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/bulwark"} <= mounts  # noqa: S108 - the only writable paths


def test_network_policies_deny_by_default_and_open_only_the_api_port(
    region_values: dict[str, Any],
) -> None:
    documents = render(region_values)
    policies = {
        d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in of_kind(documents, "NetworkPolicy")
    }
    deny = policies["deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    assert "egress" not in deny
    api_in = policies["ingress"]["spec"]
    assert api_in["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    (rule,) = api_in["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    egress = policies["egress"]["spec"]["egress"]
    assert egress[0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert len(egress) > 1  # the region's data plane, listed in its values file


def _env_of(documents: list[dict[str, Any]], secret_env: dict[str, str]) -> dict[str, str]:
    config = named(documents, "ConfigMap", "-config")
    return {**config["data"], **secret_env}


def _secret_env(region: str) -> dict[str, str]:
    r = region.upper()
    return {
        "BULWARK_SECURITY__OPERATOR_TOKEN": "operator-" + "x" * 32,
        "BULWARK_SECURITY__SECRET_KEY": "secret-" + "y" * 32,
        "BULWARK_DATABASE__CONTROL_URL": "postgresql+asyncpg://bulwark_app:p@control.db/bulwark_control",
        f"BULWARK_REGIONS__{r}__DATABASE_URL": f"postgresql+asyncpg://bulwark_app:p@{region}.db/bulwark",
        "BULWARK_JOBS__BROKER_URL": f"amqp://bulwark:p@rabbitmq.{region}:5672/",
    }


@pytest.mark.usefixtures("clean_env")
def test_bulwark_accepts_the_configuration_each_region_renders(
    region_values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    region = region_values["region"]
    documents = render(region_values)
    settings = _settings_from(_env_of(documents, _secret_env(region)), monkeypatch)
    assert settings.environment == "production"
    assert list(settings.regions) == [region]
    plane = settings.regions[region]
    assert plane.vector_store == region_values["dataPlane"]["vectorStore"]
    assert plane.vector_store.startswith("http")  # a Qdrant server, shared by API and workers
    assert plane.object_store.startswith("s3://")
    assert plane.kms.provider == "aws-kms"
    assert plane.kms.aws_region == plane.object_store_region
    assert f":{plane.kms.aws_region}:" in (plane.kms.key_id or "")
    assert [m.tier for m in plane.models] == ["small", "mid", "frontier"]
    assert settings.audit.signing_key_file is not None
    api = named(documents, "Deployment", "-api")
    mounts = api["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    key_dir = next(m["mountPath"] for m in mounts if m["name"] == "audit-signing-key")
    assert settings.audit.signing_key_file.parent == Path(key_dir)
    # Nothing in one region's configuration points into another region.
    others = [r for r in ("eu", "us") if r != region]
    for value in named(documents, "ConfigMap", "-config")["data"].values():
        for other in others:
            assert f"-{other}." not in value and f"{other}-" not in value.replace("us-small", ""), (
                value
            )


@pytest.mark.usefixtures("clean_env")
def test_a_trial_install_makes_its_secrets_and_bulwark_accepts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = _values(CHART / "values-eu.yaml")
    values["secrets"] = {
        "existingSecret": "",
        "existingMigrationSecret": "",
        "existingAuditSigningKeySecret": "",
        "env": _secret_env("eu"),
        "migrationEnv": {
            **{k: v for k, v in _secret_env("eu").items() if "DATABASE" in k},
            "BULWARK_DATABASE__CONTROL_MIGRATE_URL": "postgresql+asyncpg://bulwark_owner:p@control.db/bulwark_control",
            "BULWARK_REGIONS__EU__MIGRATE_DATABASE_URL": "postgresql+asyncpg://bulwark_owner:p@eu.db/bulwark",
        },
        "auditSigningKeyPem": "(a PEM; not read while rendering)",
    }
    documents = render(values)
    for document in documents:
        validate(document)
    secrets = {d["metadata"]["name"]: d for d in of_kind(documents, "Secret")}
    assert set(secrets) == {"bulwark-app", "bulwark-migrations", "bulwark-audit-signing-key"}
    assert secrets["bulwark-migrations"]["metadata"]["annotations"]["helm.sh/hook"]
    settings = _settings_from(_env_of(documents, secrets["bulwark-app"]["stringData"]), monkeypatch)
    assert settings.jobs.broker_url is not None
    migration_env = {
        **named(documents, "ConfigMap", "-migrations-config")["data"],
        **secrets["bulwark-migrations"]["stringData"],
    }
    for key in list(migration_env):
        monkeypatch.delenv(key, raising=False)
    migrating = _settings_from(migration_env, monkeypatch)
    assert migrating.regions["eu"].owner_database_url.startswith(
        "postgresql+asyncpg://bulwark_owner"
    )


def test_the_chart_checks_reject_broken_charts_and_manifests(tmp_path: Path) -> None:
    values = _values(CHART / "values-eu.yaml")
    # Helm refuses to render without a region (and a values file naming one is required).
    with pytest.raises(helm.HelmError, match="region is required"):
        render({**values, "region": ""})
    # Lint reports a template that does not parse.
    broken = tmp_path / "bulwark"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.region | nosuchfunc }}\n")
    report = helm.lint(str(broken), values, strict=True)
    assert report["errors"], report
    # The Kubernetes schema refuses an invalid manifest.
    api = named(render(values), "Deployment", "-api")
    for mutate in (
        lambda d: d["spec"].__setitem__("replicas", "two"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("livenessprobe", {}),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__(
            "containerPort", "http"
        ),
    ):
        bad = copy.deepcopy(api)
        mutate(bad)
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(bad)
