from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kernel.settings import Settings, resolve_secret


def test_embedded_default_has_two_regions_under_the_data_dir(
    tmp_path: Path, clean_env: None
) -> None:
    settings = Settings(data_dir=tmp_path)
    assert sorted(settings.regions) == ["eu", "us"]
    eu, us = settings.regions["eu"], settings.regions["us"]
    assert eu.database_url != us.database_url
    for region in (eu, us):
        assert str(tmp_path) in region.database_url
        assert region.vector_store.startswith(str(tmp_path))
        assert region.object_store.startswith(str(tmp_path))
        assert region.kms.provider == "local"
    assert settings.control_url.endswith("control.db")


def test_environment_variables_override_groups(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULWARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BULWARK_SERVER__PORT", "9123")
    monkeypatch.setenv("BULWARK_OBSERVABILITY__OTLP_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.server.port == 9123
    assert settings.observability.otlp_endpoint == "http://127.0.0.1:4318/v1/traces"


def test_config_file_defines_regions(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bulwark.toml"
    config.write_text(
        """
[server]
max_body_bytes = 2048

[regions.ap]
database_url = "postgresql+asyncpg://app@db.ap.internal/bulwark"
vector_store = "http://qdrant.ap.internal:6333"
object_store = "s3://bulwark-ap"

[regions.ap.kms]
provider = "aws-kms"
key_id = "arn:aws:kms:ap-southeast-2:1:key/x"
aws_region = "ap-southeast-2"
"""
    )
    monkeypatch.setenv("BULWARK_CONFIG_FILE", str(config))
    settings = Settings()
    assert list(settings.regions) == ["ap"]  # configured regions replace the defaults
    assert settings.regions["ap"].kms.provider == "aws-kms"
    assert settings.server.max_body_bytes == 2048


def test_invalid_configuration_is_refused(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError):
        Settings(
            data_dir=tmp_path,
            regions={"EU!": {"database_url": "x", "vector_store": "v", "object_store": "o"}},
        )
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, server={"prot": 1})
    monkeypatch.setenv("BULWARK_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="does not exist"):
        Settings()


def test_secrets_are_generated_once_in_development_and_required_in_production(
    tmp_path: Path, clean_env: None
) -> None:
    dev = Settings(data_dir=tmp_path)
    first = resolve_secret(dev, None, "operator_token")
    assert first == resolve_secret(dev, None, "operator_token")
    assert (tmp_path / "operator_token.secret").stat().st_mode & 0o077 == 0
    prod = Settings(data_dir=tmp_path, environment="production")
    with pytest.raises(RuntimeError, match="must be set in production"):
        resolve_secret(prod, None, "operator_token")
