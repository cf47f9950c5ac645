"""What every JSON request body is held to before a route reads a field of it.

- Parsed by orjson, never ``json.loads``. orjson refuses what no JSON encoder sends and no store can hold:
  bytes that are not UTF-8, and lone surrogate escapes (``"\\udc00"``: JavaScript's ``JSON.stringify`` makes
  one of a string cut inside an emoji). ``json.loads`` let them through to SQLite and PostgreSQL, which
  failed with a 500, and FastAPI answered undecodable bytes with a bare 400; both are now the 422
  ``json_invalid`` that the fast lane and ``POST /logs`` already gave.
- No NUL character (U+0000) in a string or a key: PostgreSQL's ``text`` cannot hold one (its inserts and
  lookups failed with a 500). It is refused on SQLite too, so both backends accept the same requests.

Starlette only: the fast lanes (``POST /v4/chat``, ``POST /v1/chat/completions``) use it before FastAPI is
imported; ``api/routing.py`` applies it to every FastAPI route of ``/v4``.
"""

from typing import Any

import orjson
from starlette.requests import Request

from loopgate.errors import RequestInvalid

NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"
_NUL_ESCAPE = b"\\u0000"  # a NUL can only be written this way inside JSON text


class JSONRequest(Request):
    """A request whose ``json()`` is parsed by orjson. ``orjson.JSONDecodeError`` is a
    ``json.JSONDecodeError``, so FastAPI answers a body it refuses with its 422 ``json_invalid``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


def may_hold_nul(raw: bytes) -> bool:
    """Whether a JSON body's text can hold a NUL character: one substring search, so only the rare body
    with the escape is walked (and, on the FastAPI routes, parsed before its route parses it)."""
    return _NUL_ESCAPE in raw


def nul_location(raw: bytes, document: Any) -> list[str | int] | None:
    """Where the first NUL character of a parsed JSON body is (its path, a key's included), or None."""
    if not may_hold_nul(raw):
        return None
    pending: list[tuple[Any, list[str | int]]] = [(document, [])]
    while pending:  # depth first, in document order, without recursion (bodies may nest deeply)
        node, path = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
        elif isinstance(node, dict):
            for key in node:
                if "\x00" in key:
                    return [*path, key]
            pending.extend((value, [*path, key]) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            pending.extend((value, [*path, index]) for index, value in reversed(list(enumerate(node))))
    return None


def refuse_nul(raw: bytes, document: Any) -> None:
    """Raises the 422 for a body with a NUL character, naming where it is."""
    path = nul_location(raw, document)
    if path is not None:
        raise RequestInvalid(["body", *path], NUL_MESSAGE)
