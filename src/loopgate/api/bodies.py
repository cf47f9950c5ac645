"""What every JSON request body is held to before a route reads a field of it.

- Parsed by orjson, never ``json.loads``. orjson refuses what no JSON encoder sends and no store can hold:
  bytes that are not UTF-8, and lone surrogate escapes (``"\\udc00"``: JavaScript's ``JSON.stringify`` makes
  one of a string cut inside an emoji). ``json.loads`` let them through to SQLite and PostgreSQL, which
  failed with a 500, and FastAPI answered undecodable bytes with a bare 400; both are now the 422
  ``json_invalid`` that the fast lane and ``POST /logs`` already gave.

Starlette only; ``api/routing.py`` applies it to every FastAPI route of ``/v4``.
"""

from typing import Any

import orjson
from starlette.requests import Request


class JSONRequest(Request):
    """A request whose ``json()`` is parsed by orjson. ``orjson.JSONDecodeError`` is a
    ``json.JSONDecodeError``, so FastAPI answers a body it refuses with its 422 ``json_invalid``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json
