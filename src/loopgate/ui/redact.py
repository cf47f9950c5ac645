"""Secrets out of provider requests and responses before a page shows them.

A key is secret when one of its words is a secret's name (``token``, ``secret``, ``password``,
``authorization``, ``cookie``, ``apikey``) or it holds ``api`` followed by ``key``: ``x-api-key``,
``Authorization``, ``client_secret``, ``access_token``, ``provider_api_keys``, ``apiKey``. Words are split on
``_ - . space`` and camelCase, so counters such as ``max_tokens`` or ``prompt_tokens`` stay visible.
"""

import re
from itertools import pairwise
from typing import Any

REDACTED = "[redacted]"
_SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "authorization", "cookie", "apikey"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-.\s]+")


def _words(key: str) -> list[str]:
    return [word for word in _SEPARATORS.split(_CAMEL.sub("_", key).lower()) if word]


def is_secret_key(key: str) -> bool:
    words = _words(key)
    if _SECRET_WORDS.intersection(words):
        return True
    return any(a == "api" and b in ("key", "keys") for a, b in pairwise(words))


def redact(value: Any) -> Any:
    """A copy of a JSON document with the value of every secret-named key replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_key(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
