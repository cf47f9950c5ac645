"""OTLP export settings: off by default, LOOPGATE_OTLP_* first and the standard OTEL_* variables when those
are unset, headers parsed (and never echoed in errors); and the exporter's reading of collector answers."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from loopgate import cli
from loopgate.config import Settings
from loopgate.service import otlp_export


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("LOOPGATE_OTLP", "OTEL_")):
            monkeypatch.delenv(name)


def test_export_is_off_by_default() -> None:
    settings = Settings()
    assert settings.otlp_traces_url is None
    assert settings.otlp_service == "loopgate"
    assert not settings.otlp_capture_content


def test_loopgate_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPGATE_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    monkeypatch.setenv("LOOPGATE_OTLP_HEADERS", "authorization=Bearer%20abc , x-team=ml,")
    monkeypatch.setenv("LOOPGATE_OTLP_SERVICE_NAME", "gateway")
    monkeypatch.setenv("LOOPGATE_OTLP_CAPTURE_CONTENT", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://elsewhere:4318/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-this-one")
    settings = Settings()
    assert settings.otlp_traces_url == "http://127.0.0.1:4318/v1/traces"
    assert settings.otlp_header_map == {"authorization": "Bearer abc", "x-team": "ml"}
    assert settings.otlp_service == "gateway"
    assert settings.otlp_capture_content


def test_standard_variables_when_loopgate_ones_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=key")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=from-resource")
    settings = Settings()
    assert settings.otlp_traces_url == "https://collector.example:4318/v1/traces"
    assert settings.otlp_header_map == {"x-honeycomb-team": "key"}
    assert settings.otlp_resource == {"deployment.environment": "prod", "service.name": "from-resource"}
    assert settings.otlp_service == "from-resource"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector.example/custom/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-traces=only")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    settings = Settings()
    assert settings.otlp_traces_url == "https://collector.example/custom/traces"  # used as it is
    assert settings.otlp_header_map == {"x-traces": "only"}
    assert settings.otlp_service == "from-otel"


def test_bad_values_stop_the_start_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOOPGATE_OTLP_ENDPOINT", "collector:4318")
    assert cli.main(["migrate"]) == 2
    assert (
        "LOOPGATE_OTLP_ENDPOINT: Value error, must be an http:// or https:// URL" in capsys.readouterr().err
    )

    monkeypatch.setenv("LOOPGATE_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("LOOPGATE_OTLP_HEADERS", "supersecretvalue")
    assert cli.main(["migrate"]) == 2
    error = capsys.readouterr().err
    assert "LOOPGATE_OTLP_HEADERS" in error and "not key=value" in error
    assert "supersecretvalue" not in error


def test_standard_endpoints_loopgate_cannot_use_are_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """They may be set for other programs: a warning, and no export, rather than a server that will not
    start."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
    assert Settings().otlp_traces_url is None
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL" in caplog.text

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert Settings().otlp_traces_url is None
    assert "loopgate exports OTLP/HTTP only" in caplog.text
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")  # same port as http/json
    assert Settings().otlp_traces_url == "http://collector:4317/v1/traces"


def test_retry_after_and_partial_success() -> None:
    assert otlp_export._retry_after(None) is None
    assert otlp_export._retry_after("7") == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (otlp_export._retry_after(later) or 0) <= 30
    assert otlp_export._retry_after("soon") is None

    assert otlp_export._rejected(b"", 10) == 0
    assert otlp_export._rejected(b"{}", 10) == 0
    assert otlp_export._rejected(b'{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "x"}}', 10) == 3
    assert otlp_export._rejected(b'{"partialSuccess": {"rejectedSpans": 99}}', 10) == 10
    assert otlp_export._rejected(b"not json", 10) == 0


def test_urls_are_logged_without_credentials() -> None:
    shown = otlp_export._shown("https://user:pw@collector.example:4318/v1/traces?token=abc")
    assert shown == "https://collector.example:4318/v1/traces"


def test_compression_from_either_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert Settings().otlp_compression == "none"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    assert Settings().otlp_compression == "gzip"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none")  # the traces one comes first
    assert Settings().otlp_compression == "none"
    monkeypatch.setenv("LOOPGATE_OTLP_COMPRESSION", "gzip")  # and loopgate's before both
    assert Settings().otlp_compression == "gzip"

    monkeypatch.delenv("LOOPGATE_OTLP_COMPRESSION")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd")  # for other programs: ignored
    assert Settings().otlp_compression == "none"
    assert "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION is neither gzip nor none" in caplog.text
    monkeypatch.setenv("LOOPGATE_OTLP_COMPRESSION", "zstd")  # meant for loopgate: refused
    assert cli.main(["migrate"]) == 2
