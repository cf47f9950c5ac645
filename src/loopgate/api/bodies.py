"""What every JSON request body is held to before a route reads a field of it.

- Parsed by orjson, never ``json.loads``. orjson refuses what no JSON encoder sends and no store can hold:
  bytes that are not UTF-8, and lone surrogate escapes (``"\\udc00"``: JavaScript's ``JSON.stringify`` makes
  one of a string cut inside an emoji). ``json.loads`` let them through to SQLite and PostgreSQL, which
  failed with a 500, and FastAPI answered undecodable bytes with a bare 400; both are now the 422
  ``json_invalid`` that the fast lane and ``POST /logs`` already gave.
- No NUL character (U+0000) in a string or a key: PostgreSQL's ``text`` cannot hold one (its inserts and
  lookups failed with a 500). It is refused on SQLite too, so both backends accept the same requests.
- No integer outside 64 bits (-2**63 to 2**64-1). orjson, which writes every stored document, refuses to
  write one (the fast lane, which validates the body's bytes with pydantic, answered a 500) and reads one
  as a float (the other routes stored ``uuid4().int`` in ``metadata`` as 3.4e+38).

- No nesting deeper than ``MAX_DEPTH``: orjson writes documents at most 254 levels deep, so a body that
  it read (up to 1024) but whose stored log or answer it could not write failed with a 500 -- after the
  provider had been called. The fast lane's pydantic parser stops at 200 levels as well.

Starlette only: the fast lanes (``POST /v4/chat``, ``POST /v1/chat/completions``) use it before FastAPI is
imported; ``api/routing.py`` applies it to every FastAPI route of ``/v4``.
"""

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from loopgate.errors import RequestInvalid

MAX_DEPTH = 200
NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"
DEEP_MESSAGE = f"JSON must not nest objects and arrays more than {MAX_DEPTH} levels deep"
HUGE_INTEGER_MESSAGE = "Integers must lie between -2**63 and 2**64-1 (64 bits)"
_NUL_ESCAPE = b"\\u0000"  # a NUL can only be written this way inside JSON text
_LONG_DIGITS = re.compile(rb"\d{19}")  # an integer outside 64 bits has at least 19 digits


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
    return _first(document, lambda value: isinstance(value, str) and "\x00" in value)


def huge_integer_location(raw: bytes) -> list[str | int] | None:
    """Where the first integer outside 64 bits of a JSON body is, or None. Only a body with a run of 19
    digits can hold one: it alone is parsed again, by ``json.loads``, whose integers are exact."""
    if _LONG_DIGITS.search(raw) is None:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested beyond reading): the route refuses it as such
    return _first(document, lambda value: type(value) is int and not -(2**63) <= value < 2**64)


def too_deep_location(raw: bytes, document: Any) -> list[str | int] | None:
    """Where a JSON body first nests deeper than ``MAX_DEPTH``, or None. Only a body with that many
    brackets can (two counts in C); it alone is parsed, if it was not, and walked."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return None
    if document is None:
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None  # not JSON (or nested beyond reading): the route refuses it as such
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:  # depths only (a long batch is many nodes); the path is found once one is too deep
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            return _first(document, _identical_to(node))
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return None


def _identical_to(wanted: Any) -> Callable[[Any], bool]:
    return lambda value: value is wanted


def _first(document: Any, hit: Callable[[Any], bool]) -> list[str | int] | None:
    """The path of the first value (or key) of a JSON document that ``hit`` accepts, in document order."""
    pending: list[tuple[Any, list[str | int]]] = [(document, [])]
    while pending:  # depth first, without recursion (bodies may nest deeply)
        node, path = pending.pop()
        if hit(node):
            return path
        if isinstance(node, dict):
            for key in node:
                if hit(key):
                    return [*path, key]
            pending.extend((value, [*path, key]) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            pending.extend((value, [*path, index]) for index, value in reversed(list(enumerate(node))))
    return None


def unstorable(raw: bytes, document: Any) -> dict[str, Any] | None:
    """The error (``loc`` within the body, ``msg``, ``type``) of a body with a NUL character, an integer
    outside 64 bits or nesting deeper than ``MAX_DEPTH``, or None. ``document`` is the parsed body, read
    only when the text may hold a NUL or many brackets."""
    nul = nul_location(raw, document)
    if nul is not None:
        return {"loc": nul, "msg": NUL_MESSAGE, "type": "value_error"}
    huge = huge_integer_location(raw)
    if huge is not None:
        return {"loc": huge, "msg": HUGE_INTEGER_MESSAGE, "type": "value_error"}
    deep = too_deep_location(raw, document)
    if deep is not None:
        return {"loc": deep, "msg": DEEP_MESSAGE, "type": "value_error"}
    return None


def refuse_unstorable(raw: bytes, document: Any) -> None:
    """Raises the 422 of ``unstorable``, at ``["body", ...]``."""
    error = unstorable(raw, document)
    if error is not None:
        raise RequestInvalid(["body", *error["loc"]], error["msg"], error["type"])
