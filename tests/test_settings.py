"""Settings a server cannot use stop every command with status 2 and a message that names the variable,
never its value (docs/configuration.md): bounds, upstream URLs, provider names in the timeout maps, and the
database URL, whose plain ``sqlite://`` / ``postgres[ql]://`` forms are read with the async drivers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from loopgate import cli
from loopgate.config import Settings

from .conftest import LOOPGATE

PASSWORD = "hunter2-secret"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("LOOPGATE_", "OTEL_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOOPGATE_PORT", "99999"),
        ("LOOPGATE_WORKERS", "0"),
        ("LOOPGATE_PROVIDER_TIMEOUT", "-5"),
        ("LOOPGATE_PROVIDER_MAX_RETRIES", "-1"),
        ("LOOPGATE_WRITER_MAX_BATCH", "0"),
        ("LOOPGATE_AUTH_CACHE_SECONDS", "-1"),
        ("LOOPGATE_OPENAI_BASE_URL", "notaurl"),
        # Was a SQLAlchemy traceback (exit 1); the message must not show the password.
        ("LOOPGATE_DATABASE_URL", f"mysql://loopgate:{PASSWORD}@db.internal/loopgate"),
    ],
)
def test_unusable_values_stop_the_command(tmp_path: Path, variable: str, value: str) -> None:
    env = {name: raw for name, raw in os.environ.items() if not name.startswith("LOOPGATE_")}
    env.update({"LOOPGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'loopgate.db'}", variable: value})
    result = subprocess.run([*LOOPGATE, "migrate"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("loopgate: invalid configuration:")
    assert f"{variable}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    if not value.lstrip("-").isdigit():  # a number may well be in the message's bound
        assert value not in result.stderr
    assert not (tmp_path / "loopgate.db").exists()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"port": -1}, "port"),
        ({"port": 65536}, "port"),
        ({"workers": 0}, "workers"),
        ({"provider_connect_timeout": 0}, "provider_connect_timeout"),
        ({"provider_timeout": -5}, "provider_timeout"),
        ({"provider_connect_timeouts": {"anthropic": 0}}, "provider_connect_timeouts"),
        ({"provider_timeouts": {"openai": -1}}, "provider_timeouts"),
        ({"provider_max_retries": -1}, "provider_max_retries"),
        ({"provider_retry_base_delay": -0.1}, "provider_retry_base_delay"),
        ({"provider_retry_max_delay": -1}, "provider_retry_max_delay"),
        ({"replicate_poll_interval": 0}, "replicate_poll_interval"),
        ({"writer_max_batch": 0}, "writer_max_batch"),
        ({"auth_cache_seconds": -1}, "auth_cache_seconds"),
        ({"database_url": "foo"}, "database_url"),
        ({"database_url": "sqlite+pysqlite:///x.db"}, "database_url"),  # a driver loopgate cannot run on
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert [error["loc"][0] for error in refused.value.errors()] == [field]


def test_bounds_themselves_are_accepted() -> None:
    settings = Settings(
        port=0,
        workers=1,
        provider_max_retries=0,
        provider_retry_base_delay=0,
        provider_retry_max_delay=0,
        writer_max_batch=1,
        auth_cache_seconds=0,
        provider_timeouts={"anthropic": 0.5, "mock": 1},
    )
    assert (settings.port, settings.auth_cache_seconds) == (0, 0)
    assert Settings(port=65535).port == 65535


URL_FIELDS = sorted(
    name for name in Settings.model_fields if name.endswith("_base_url") or name == "openai_azure_endpoint"
)


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://host/v1", "http://", "https:///v1", "http://host:99999", "http://host:port/"]
)
def test_upstream_urls_must_be_http_with_a_host(field: str, url: str) -> None:
    with pytest.raises(ValidationError, match="must be an http:// or https:// URL"):
        Settings(**{field: url})


def test_upstream_urls_accepted() -> None:
    settings = Settings(
        openai_base_url="http://127.0.0.1:8080/v1",
        anthropic_base_url="https://proxy.example",
        openai_azure_endpoint="https://name.openai.azure.com/",
        bedrock_base_url="http://localhost:4566",
    )
    assert settings.openai_base_url == "http://127.0.0.1:8080/v1"
    assert settings.bedrock_base_url == "http://localhost:4566"
    # The optional ones stay unset when the variable is set but empty (``VAR=`` in an env file).
    assert Settings(openai_azure_endpoint="", bedrock_base_url="").openai_azure_endpoint is None
    with pytest.raises(ValidationError):
        Settings(openai_base_url="")


def test_unknown_providers_in_the_timeout_maps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOOPGATE_PROVIDER_TIMEOUTS", '{"antropic": 120}')
    assert cli.main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("loopgate: invalid configuration: LOOPGATE_PROVIDER_TIMEOUTS['antropic']: ")
    assert "not a provider; the providers are openai, openai_azure, mock, anthropic, bedrock" in error
    assert "[key]" not in error

    monkeypatch.delenv("LOOPGATE_PROVIDER_TIMEOUTS")
    monkeypatch.setenv("LOOPGATE_PROVIDER_CONNECT_TIMEOUTS", '{"anthropic": 0}')
    assert cli.main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "LOOPGATE_PROVIDER_CONNECT_TIMEOUTS['anthropic']: Input should be greater than 0" in error


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        ("sqlite+aiosqlite:///./loopgate.db", "sqlite+aiosqlite:///./loopgate.db"),
        ("sqlite:///./loopgate.db", "sqlite+aiosqlite:///./loopgate.db"),
        ("sqlite:////var/lib/loopgate/loopgate.db", "sqlite+aiosqlite:////var/lib/loopgate/loopgate.db"),
        ("postgresql+asyncpg://u:p@db:5432/loopgate", "postgresql+asyncpg://u:p@db:5432/loopgate"),
        ("postgresql://u:p@db:5432/loopgate", "postgresql+asyncpg://u:p@db:5432/loopgate"),
        (
            "postgres://u:p%40ss@db/loopgate?ssl=require",
            "postgresql+asyncpg://u:p%40ss@db/loopgate?ssl=require",
        ),
        ("PostgreSQL://db/loopgate", "postgresql+asyncpg://db/loopgate"),
    ],
)
def test_database_urls_are_read_with_the_async_drivers(given: str, read_as: str) -> None:
    assert Settings(database_url=given).database_url == read_as


def test_default_database_url() -> None:
    assert Settings().database_url == "sqlite+aiosqlite:///./loopgate.db"


def test_database_url_refusal_never_shows_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOOPGATE_DATABASE_URL", f"postgresql+psycopg://loopgate:{PASSWORD}@db/loopgate")
    assert cli.main(["migrate"]) == 2
    error = capsys.readouterr().err
    expected = (
        "LOOPGATE_DATABASE_URL: Value error, must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"
    )
    assert expected in error
    assert PASSWORD not in error and "psycopg" not in error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "65536"], "argument --port: must be from 0 to 65535"),
        (["--port", "-1"], "argument --port: must be from 0 to 65535"),
        (["--port", "http"], "argument --port: not a whole number: 'http'"),
        (["--workers", "0"], "argument --workers: must be at least 1"),
    ],
)
def test_serve_flags_have_the_same_bounds(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve", *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_flags_of_zero_are_not_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--port 0`` (any free port) was read as unset, so LOOPGATE_PORT won; the plain ``sqlite://`` URL
    is migrated and served with aiosqlite."""
    import uvicorn

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options, app=app))
    monkeypatch.setenv("LOOPGATE_PORT", "8123")
    monkeypatch.setenv("LOOPGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'loopgate.db'}")
    assert cli.main(["serve", "--port", "0", "--workers", "1"]) == 0
    assert started["port"] == 0
    assert (tmp_path / "loopgate.db").exists()

    assert cli.main(["serve"]) == 0
    assert started["port"] == 8123
