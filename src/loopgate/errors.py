"""The error hierarchy, and the one table that turns each class into an HTTP response.

    LoopgateError                      anything loopgate raises on purpose
    ├── AuthenticationError     401    missing or unknown X-API-KEY
    ├── NotFoundError           404    a referenced id or name does not exist in the organization
    ├── ConflictError           409    a name that must be unique is taken (e.g. a project name)
    ├── RequestInvalid          422    input that passed the schema but not the semantics
    ├── RequestTooLarge         413    a request body over LOOPGATE_MAX_REQUEST_BYTES
    ├── StorageUnavailable      503    the database could not commit a log (disk full, I/O error, gone)
    └── ProviderError           4xx/5xx  a model provider could not produce a generation
        ├── ProviderKeyMissing  400    no key for the provider in the request or the server configuration
        ├── UpstreamStatusError        the upstream answered with an error status (status kept)
        ├── UpstreamConnectionError 502  the upstream could not be reached
        └── UpstreamTimeout     504    the upstream did not answer in time

HTTP bodies follow the v4 API: ``{"detail": "..."}`` for 401/404/409/413, FastAPI's
``{"detail": [{"loc", "msg", "type"}]}`` for 422, and ``{"detail": {"type", "message", "code", "origin"}}``
for provider failures.
"""

from typing import Any

_PROVIDER_ERROR_TYPES = {
    400: "bad_request_error",
    401: "authentication_error",
    403: "permission_denied_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
    502: "bad_gateway_error",
    503: "service_unavailable_error",
    504: "gateway_timeout_error",
}


class LoopgateError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"detail": self.message}


class AuthenticationError(LoopgateError):
    status_code = 401


class NotFoundError(LoopgateError):
    status_code = 404


class ConflictError(LoopgateError):
    status_code = 409


class RequestInvalid(LoopgateError):
    """Semantic validation failure, reported in FastAPI's 422 shape so clients parse it like schema errors."""

    status_code = 422

    def __init__(self, loc: list[str | int], message: str, error_type: str = "value_error") -> None:
        super().__init__(message)
        self.loc = loc
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": self.loc, "msg": self.message, "type": self.error_type}]}


class RequestTooLarge(LoopgateError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than {limit:,} bytes, the most this server accepts "
            "(LOOPGATE_MAX_REQUEST_BYTES)"
        )


class StorageUnavailable(LoopgateError):
    """A log could not be committed, so its generation is not returned: a 200 means "on disk", and an
    answer whose log is lost would break that. Nothing of the request is stored; a retry can succeed once
    the database takes writes again (space freed, the disk or the server back)."""

    status_code = 503

    @classmethod
    def refused(cls, reason: str) -> "StorageUnavailable":
        """The database refused a log's commit; ``reason`` is its own words ("database or disk is full")."""
        return cls(
            f"The log could not be stored ({reason}), so the generation is not returned. Nothing was saved "
            "for this request; retry once the database can take writes again."
        )

    @classmethod
    def database(cls, reason: str) -> "StorageUnavailable":
        """Any other request the database could not complete."""
        return cls(f"The database could not complete the request ({reason}); retry once it can again.")


class ProviderError(LoopgateError):
    """A provider failed; ``origin`` is the provider's display name (e.g. ``OpenAI``)."""

    status_code = 502

    def __init__(self, message: str, *, origin: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.origin = origin
        self.log_id: str | None = None  # the error log the generation wrote for this failure, if any
        if status_code is not None:
            self.status_code = status_code

    @property
    def error_type(self) -> str:
        if self.status_code in _PROVIDER_ERROR_TYPES:
            return _PROVIDER_ERROR_TYPES[self.status_code]
        return "internal_server_error" if self.status_code >= 500 else "bad_request_error"

    def body(self) -> dict[str, Any]:
        return {
            "detail": {
                "type": self.error_type,
                "message": self.message,
                "code": self.status_code,
                "origin": self.origin,
            }
        }


class ProviderKeyMissing(ProviderError):
    """``provider`` and ``variable`` name the provider and the server variable that holds its key, so each
    door can say where a key goes in its own terms (v4's ``provider_api_keys``, the OpenAI door's header).
    ``variable`` is empty when the key is there but something else is missing; ``key_format`` is the form
    a key takes when it is more than one string (Bedrock's ``ACCESS_KEY_ID:SECRET``); ``server_only``
    names settings that no request can supply through that door (Azure's endpoint, for the OpenAI door)."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        origin: str,
        provider: str = "",
        variable: str = "",
        key_format: str = "",
        server_only: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, origin=origin)
        self.provider = provider
        self.variable = variable
        self.key_format = key_format
        self.server_only = server_only


class UpstreamStatusError(ProviderError):
    """The upstream's own status is kept (429 stays 429) so clients can back off as they would against it."""

    def __init__(
        self,
        message: str,
        *,
        origin: str,
        status_code: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, origin=origin, status_code=status_code)
        self.upstream_body = body
        self.headers = headers or {}

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


class UpstreamConnectionError(ProviderError):
    status_code = 502


class UpstreamTimeout(ProviderError):
    status_code = 504
