"""One typed Settings object, read once at start from ``LOOPGATE_*`` environment variables.

| variable | default | meaning |
|---|---|---|
| LOOPGATE_DATABASE_URL | sqlite+aiosqlite:///./loopgate.db | SQLite, or ``postgresql+asyncpg://...`` |
| LOOPGATE_DATABASE_POOL_SIZE | 10 | PostgreSQL connections each server process keeps open |
| LOOPGATE_DATABASE_MAX_OVERFLOW | 10 | extra connections a process may open under load, closed when idle |
| LOOPGATE_HOST / LOOPGATE_PORT | 127.0.0.1 / 8000 | where ``loopgate serve`` listens |
| LOOPGATE_WORKERS | 1 | server processes |
| LOOPGATE_OPENAI_API_KEY | (none) | fallback key for provider ``openai`` |
| LOOPGATE_OPENAI_BASE_URL | https://api.openai.com/v1 | any OpenAI-compatible server |
| LOOPGATE_UPSTREAMS | {} | named OpenAI-compatible servers, JSON; model ``NAME/m`` goes to NAME as ``m`` |
| LOOPGATE_GROQ_API_KEY | (none) | key for provider ``groq`` (v4 requests cannot carry one) |
| LOOPGATE_GROQ_BASE_URL | https://api.groq.com/openai/v1 | groq's OpenAI-compatible API |
| LOOPGATE_GOOGLE_API_KEY | (none) | key for provider ``google`` (v4 requests cannot carry one) |
| LOOPGATE_GOOGLE_BASE_URL | https://generativelanguage.googleapis.com | Gemini API (``/v1beta/models/...``) |
| LOOPGATE_COHERE_API_KEY | (none) | fallback key for provider ``cohere`` |
| LOOPGATE_COHERE_BASE_URL | https://api.cohere.com | Cohere API (``/v2/chat``) |
| LOOPGATE_ANTHROPIC_API_KEY | (none) | fallback key for provider ``anthropic`` |
| LOOPGATE_ANTHROPIC_BASE_URL | https://api.anthropic.com | Anthropic Messages API (``/v1/messages``) |
| LOOPGATE_OPENAI_AZURE_API_KEY | (none) | fallback key for provider ``openai_azure`` |
| LOOPGATE_OPENAI_AZURE_ENDPOINT | (none) | Azure OpenAI resource, e.g. ``https://NAME.openai.azure.com`` |
| LOOPGATE_OPENAI_AZURE_API_VERSION | 2024-10-21 | ``api-version`` query parameter of Azure OpenAI calls |
| LOOPGATE_OPENAI_AZURE_ENDPOINT_HOSTS | (none: any) | hosts a request's Azure endpoint may name |
| LOOPGATE_REPLICATE_API_KEY | (none) | key for provider ``replicate`` (v4 requests cannot carry one) |
| LOOPGATE_REPLICATE_BASE_URL | https://api.replicate.com | Replicate predictions API (``/v1/...``) |
| LOOPGATE_REPLICATE_POLL_INTERVAL | 0.5 | seconds between polls of an unfinished Replicate prediction |
| LOOPGATE_BEDROCK_ACCESS_KEY_ID | (none) | AWS access key for provider ``bedrock`` (fallback) |
| LOOPGATE_BEDROCK_SECRET_ACCESS_KEY | (none) | AWS secret key for provider ``bedrock`` (fallback) |
| LOOPGATE_BEDROCK_SESSION_TOKEN | (none) | AWS session token, for temporary credentials |
| LOOPGATE_BEDROCK_REGION | us-east-1 | AWS region of the Bedrock runtime |
| LOOPGATE_BEDROCK_BASE_URL | (none) | override of ``https://bedrock-runtime.{region}.amazonaws.com`` |
| LOOPGATE_PROVIDER_CONNECT_TIMEOUT | 10 | seconds to open an upstream connection |
| LOOPGATE_PROVIDER_TIMEOUT | 600 | seconds for a whole upstream call |
| LOOPGATE_PROVIDER_CONNECT_TIMEOUTS | {} | per-provider connect timeouts, JSON, e.g. ``{"anthropic": 5}`` |
| LOOPGATE_PROVIDER_TIMEOUTS | {} | per-provider call timeouts, JSON, e.g. ``{"anthropic": 120}`` |
| LOOPGATE_PROVIDER_MAX_RETRIES | 2 | retries of an upstream call on 408/429/5xx or a failed connection |
| LOOPGATE_PROVIDER_RETRY_BASE_DELAY | 0.5 | seconds before the first retry; doubles each time, with jitter |
| LOOPGATE_PROVIDER_RETRY_MAX_DELAY | 8 | longest wait; a longer Retry-After is sent to the client instead |
| LOOPGATE_WRITER_MAX_BATCH | 512 | most logs committed in one group commit |
| LOOPGATE_SQLITE_SYNCHRONOUS | FULL | SQLite ``synchronous`` pragma (FULL survives power loss) |
| LOOPGATE_AUTH_CACHE_SECONDS | 30 | how long a verified API key is remembered in-process |
| LOOPGATE_MAX_REQUEST_BYTES | 33554432 | largest request body (32 MiB); a larger one is refused with 413 |
| LOOPGATE_LOG_LEVEL | info | log level (uvicorn's and loopgate's): critical ... info, debug, trace |
| LOOPGATE_ENVIRONMENTS | (none) | extra environments per organization, e.g. ``staging,development`` |
| LOOPGATE_PYTHON_EVALUATORS | false | run python evaluators in generated evaluations (trusted keys only) |
| LOOPGATE_OTLP_ENDPOINT | (none: off) | OTLP/HTTP collector, ``http://HOST:4318``; posts to ``/v1/traces`` |
| LOOPGATE_OTLP_TRACES_ENDPOINT | (none) | the whole traces URL, used as it is (instead of the above) |
| LOOPGATE_OTLP_HEADERS | (none) | headers of every export, ``k=v,k2=v2`` (percent-decoded); never logged |
| LOOPGATE_OTLP_SERVICE_NAME | loopgate | the spans' ``service.name`` |
| LOOPGATE_OTLP_RESOURCE_ATTRIBUTES | (none) | more resource attributes, ``k=v,k2=v2`` |
| LOOPGATE_OTLP_CAPTURE_CONTENT | false | also export messages and outputs (span events) |
| LOOPGATE_OTLP_BATCH_SIZE | 512 | most spans per export request |
| LOOPGATE_OTLP_TIMEOUT | 10 | seconds for one export request |
| LOOPGATE_OTLP_COMPRESSION | none | ``gzip`` compresses each export request's body |

A ``sqlite://`` database URL is read as ``sqlite+aiosqlite://``, a ``postgresql://`` or ``postgres://`` one as
``postgresql+asyncpg://``. Values loopgate cannot use (out of range, a URL that is not http(s), an unknown
provider in the timeout maps) stop every command, with a message that names the variable, never its value.

Each LOOPGATE_OTLP_* variable that is unset falls back to its OpenTelemetry counterpart:
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` (only when neither loopgate endpoint is set; ignored with a
warning when not an http(s) URL or when ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` is ``grpc``),
``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``, ``OTEL_SERVICE_NAME`` (else ``service.name`` in
``OTEL_RESOURCE_ATTRIBUTES``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION``.
"""

import json
import logging
import os
import typing
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo

from loopgate.schemas.common import ModelProviders

_PREFIX = "LOOPGATE_"
_log = logging.getLogger("loopgate.config")


class DeclaredUpstream(BaseModel):
    """An OpenAI-compatible server declared in ``LOOPGATE_UPSTREAMS`` under a name: a request whose provider
    is ``provider`` and whose model is ``NAME/MODEL`` goes to ``base_url`` with model ``MODEL``. Only
    ``api_key`` is sent to it (none when unset): a request's provider key is never forwarded."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl
    api_key: str | None = None
    provider: ModelProviders = ModelProviders.OPENAI


# An upstream's name is the model prefix before the first "/", so it cannot contain one.
UpstreamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


_PROVIDER_NAMES = tuple(provider.value for provider in ModelProviders)


def _provider_name(name: str) -> str:
    if name not in _PROVIDER_NAMES:
        raise ValueError(f"not a provider; the providers are {', '.join(_PROVIDER_NAMES)}")
    return name


# The keys of the per-provider maps: a misspelt name would otherwise be an override that never applies.
ProviderName = Annotated[str, AfterValidator(_provider_name)]
Seconds = Annotated[float, Field(gt=0)]

# The database URL forms accepted, and the driver each is read with: the async drivers loopgate runs on.
_DATABASE_SCHEMES = {
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class InvalidEnvironment(ValueError):
    """A variable that cannot be read at all (bad JSON); the message names it and never echoes its value."""


class Settings(BaseModel):
    """Each field not passed to the constructor comes from ``LOOPGATE_<FIELD>`` (the name in any case; JSON
    for the dict fields), else its default. Read with ``os.environ`` rather than pydantic-settings, which
    took 30-45 ms of every start to import."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        super().__init__(**{**_otel_environment(), **_from_environment(fields), **values})

    database_url: str = "sqlite+aiosqlite:///./loopgate.db"
    # Per process: N workers hold up to N x (pool_size + max_overflow) connections. SQLite ignores both.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port
    workers: int = Field(default=1, ge=1)
    # uvicorn's level names; cli.py applies the level to loopgate's own loggers as well as uvicorn's.
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"

    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    upstreams: dict[UpstreamName, DeclaredUpstream] = {}
    groq_api_key: str | None = None
    groq_base_url: str = "https://api.groq.com/openai/v1"
    google_api_key: str | None = None
    google_base_url: str = "https://generativelanguage.googleapis.com"
    cohere_api_key: str | None = None
    cohere_base_url: str = "https://api.cohere.com"
    anthropic_api_key: str | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    openai_azure_api_key: str | None = None
    openai_azure_endpoint: str | None = None
    openai_azure_api_version: str = "2024-10-21"
    # Hosts a request's provider_api_keys.openai_azure_endpoint may name (comma-separated; "*.example.com"
    # matches its subdomains). Empty: any, as v4 had it -- then any key holder can have the server POST to
    # any address it reaches (with the caller's own key, never the server's).
    openai_azure_endpoint_hosts: str = ""
    replicate_api_key: str | None = None
    replicate_base_url: str = "https://api.replicate.com"
    replicate_poll_interval: float = Field(default=0.5, gt=0)
    bedrock_access_key_id: str | None = None
    bedrock_secret_access_key: str | None = None
    bedrock_session_token: str | None = None
    bedrock_region: str = "us-east-1"
    bedrock_base_url: str | None = None
    provider_connect_timeout: float = Field(default=10.0, gt=0)
    provider_timeout: float = Field(default=600.0, gt=0)
    # Per-provider overrides of the two timeouts above, keyed by provider name (a JSON object in the env).
    provider_connect_timeouts: dict[ProviderName, Seconds] = {}
    provider_timeouts: dict[ProviderName, Seconds] = {}
    provider_max_retries: int = Field(default=2, ge=0)
    provider_retry_base_delay: float = Field(default=0.5, ge=0)
    provider_retry_max_delay: float = Field(default=8.0, ge=0)

    # Seconds a stopping server waits for the requests in flight (long streams) before it cuts them short,
    # their partial logs committed: less than a process manager's own wait before SIGKILL (Kubernetes: 30 s).
    shutdown_timeout: float = Field(default=25.0, gt=0)

    # Run python evaluators' code (service/code_evaluators.py) in the evaluations loopgate generates. Off:
    # the code runs as the server's user, so only where every holder of an API key may run code on it.
    python_evaluators: bool = False

    writer_max_batch: int = Field(default=512, ge=1)
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    auth_cache_seconds: float = Field(default=30.0, ge=0)
    # Bodies are buffered before they are parsed: without a bound, one request could take all memory.
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    # Comma-separated names; v4 has no endpoint that creates environments, so the server declares them.
    environments: str = ""

    # OTLP export of every committed log (service/otlp_export.py); off while no endpoint is set.
    otlp_endpoint: str | None = None
    otlp_traces_endpoint: str | None = None
    otlp_headers: str = ""  # may hold credentials: never logged, never echoed in an error
    otlp_service_name: str | None = None
    otlp_resource_attributes: str = ""
    otlp_capture_content: bool = False
    otlp_batch_size: int = Field(default=512, ge=1, le=8192)
    otlp_timeout: float = Field(default=10.0, gt=0)
    otlp_compression: Literal["gzip", "none"] = "none"  # OTLP's own default is none

    # GET /metrics (Prometheus) answers requests that carry it as a bearer token; while unset, nothing is
    # counted and /metrics is a 404. A credential: never logged, never echoed in an error.
    metrics_token: str | None = None

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, token: str | None) -> str | None:
        if token and len(token) < 16:
            raise ValueError("must be at least 16 characters: it guards the server's metrics")
        return token or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case(cls, level: object) -> object:
        return level.lower() if isinstance(level, str) else level

    @field_validator("otlp_endpoint", "otlp_traces_endpoint")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not _is_http_url(url):
            raise ValueError("must be an http:// or https:// URL")
        return url or None

    @field_validator(
        "openai_base_url",
        "groq_base_url",
        "google_base_url",
        "cohere_base_url",
        "anthropic_base_url",
        "replicate_base_url",
        "openai_azure_endpoint",
        "bedrock_base_url",
    )
    @classmethod
    def _upstream_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        """The upstreams' URLs. The optional ones (endpoint, bedrock override) are unset when empty."""
        if url is None or (not url and info.field_name in ("openai_azure_endpoint", "bedrock_base_url")):
            return None
        if not _is_http_url(url):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """``sqlite://`` and ``postgresql://`` / ``postgres://`` (the forms other tools and hosting providers
        hand out) are read with the async driver. Never echoed: the URL may hold a password."""
        scheme, separator, rest = url.partition("://")
        driver = _DATABASE_SCHEMES.get(scheme.lower()) if separator else None
        if driver is None:
            raise ValueError(
                "must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL "
                "(sqlite://, postgresql:// and postgres:// are read as those)"
            )
        return f"{driver}://{rest}"

    @field_validator("otlp_headers", "otlp_resource_attributes")
    @classmethod
    def _pairs(cls, raw: str) -> str:
        _parse_pairs(raw)  # the message says what is wrong, never the value (headers hold credentials)
        return raw

    @property
    def otlp_traces_url(self) -> str | None:
        """Where spans are posted: the traces endpoint as given, else ``{endpoint}/v1/traces``; None when
        export is off."""
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @property
    def otlp_header_map(self) -> dict[str, str]:
        return _parse_pairs(self.otlp_headers)

    @property
    def otlp_resource(self) -> dict[str, str]:
        return _parse_pairs(self.otlp_resource_attributes)

    @property
    def otlp_service(self) -> str:
        return self.otlp_service_name or self.otlp_resource.get("service.name") or "loopgate"

    def timeouts(self, provider: str) -> tuple[float, float]:
        """``(connect, total)`` seconds for calls to ``provider``: its override, else the global default."""
        return (
            self.provider_connect_timeouts.get(provider, self.provider_connect_timeout),
            self.provider_timeouts.get(provider, self.provider_timeout),
        )

    @property
    def environment_names(self) -> list[str]:
        """The extra environments, in the order given, without blanks or repeats."""
        names: list[str] = []
        for raw in self.environments.split(","):
            name = raw.strip()
            if name and name not in names:
                names.append(name)
        return names


def _from_environment(fields: dict[str, FieldInfo]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable, raw in os.environ.items():
        if not variable.upper().startswith(_PREFIX):
            continue
        name = variable[len(_PREFIX) :].lower()
        if name not in fields:
            continue
        if typing.get_origin(fields[name].annotation) is not dict:
            values[name] = raw
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError as exc:
            raise InvalidEnvironment(f"{_PREFIX}{name.upper()} (setting {name}) is not valid JSON") from exc
    return values


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it raises ValueError for a port that is not a number 0-65535)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _parse_pairs(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` (the OTel form of headers and resource attributes): values percent-decoded, blanks
    around entries ignored."""
    pairs: dict[str, str] = {}
    for position, entry in enumerate(raw.split(",")):
        if not entry.strip():
            continue
        key, separator, item = entry.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"entry {position + 1} is not key=value")
        pairs[key.strip()] = unquote(item.strip())
    return pairs


# LOOPGATE_OTLP_* field -> the standard OpenTelemetry variables it falls back to, in order.
_OTEL_FALLBACKS = {
    "otlp_headers": ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
    "otlp_service_name": ("OTEL_SERVICE_NAME",),
    "otlp_resource_attributes": ("OTEL_RESOURCE_ATTRIBUTES",),
}


def _otel_environment() -> dict[str, Any]:
    """Values from the standard ``OTEL_*`` variables; the ``LOOPGATE_*`` ones, read after, replace them.
    The endpoints come from OTEL_* only when neither loopgate endpoint is set, so that a generic
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT cannot override an explicit LOOPGATE_OTLP_ENDPOINT.

    An OTEL_* endpoint loopgate cannot use (not an http(s) URL, or meant for gRPC) is ignored with a
    warning rather than stopping the server: the standard variables may be set for other programs. Bad
    LOOPGATE_* values do stop it (they are meant for loopgate)."""
    environment = {name.upper(): raw for name, raw in os.environ.items()}
    values: dict[str, Any] = {}
    if not {"LOOPGATE_OTLP_ENDPOINT", "LOOPGATE_OTLP_TRACES_ENDPOINT"} & environment.keys():
        for field, variable, protocol in (
            (
                "otlp_traces_endpoint",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ),
            ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ):
            url = environment.get(variable)
            if not url:
                continue
            if not _is_http_url(url):
                _log.warning("%s is not an http(s) URL: OTLP export ignores it", variable)
            elif (environment.get(protocol) or environment.get("OTEL_EXPORTER_OTLP_PROTOCOL")) == "grpc":
                _log.warning(
                    "%s is for gRPC (%s=grpc); loopgate exports OTLP/HTTP only: set LOOPGATE_OTLP_ENDPOINT "
                    "to the collector's HTTP port (4318) to export",
                    variable,
                    protocol,
                )
            else:
                values[field] = url
    for field, variables in _OTEL_FALLBACKS.items():
        found = next((environment[v] for v in variables if environment.get(v)), None)
        if found is not None:
            values[field] = found
    compression = next(
        (
            (variable, environment[variable])
            for variable in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
            if environment.get(variable)
        ),
        None,
    )
    if compression is not None:
        variable, value = compression
        if value.strip().lower() in ("gzip", "none"):
            values["otlp_compression"] = value.strip().lower()
        else:
            _log.warning("%s is neither gzip nor none: OTLP export ignores it", variable)
    return values
