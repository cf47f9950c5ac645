"""Model configs: defaults, the canonical parameter set, and its hash (the identity of a config version).

Same parameters in a project -> same config id; any change (``seed``, ``temperature``, a tool, a template
message) -> a new version. ``name`` and ``description`` are labels, not parameters, so they do not split
versions; nor does an empty ``tools`` list, which is the same as none.
"""

import hashlib
from enum import Enum
from typing import Any

import orjson

from loopgate.schemas.common import ModelConfigChatRequest
from loopgate.schemas.model_configs import ModelConfigCompletionRequest

_LABELS = ("name", "description")


def config_body(
    config: ModelConfigChatRequest | ModelConfigCompletionRequest, *, seed: int | None
) -> dict[str, Any]:
    """The config as stored: every parameter with defaults filled in; the request's deprecated top-level
    ``seed`` applies when the config has none."""
    body = config.model_dump(mode="json", exclude_none=True)
    if config.seed is None and seed is not None:
        body["seed"] = seed
    return body


def config_hash(body: dict[str, Any]) -> str:
    # An empty tool list is no tools. TypeScript SDK 0.5.x's completeDeployedNoProxy logs its call with the
    # deployed config as read back (``tools: []`` included), which must stay that config's version.
    parameters = {
        key: value for key, value in body.items() if key not in _LABELS and (value or key != "tools")
    }
    return hashlib.sha256(orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)).hexdigest()


# A config sent inline with every request is usually the same few parameter sets over and over; their
# body and hash are remembered (bounded, for configs made only of plain values) so a request does not
# re-derive them: together they were ~5% of a /v4/chat's event-loop time.
_IDENTITIES: dict[tuple[Any, ...], tuple[dict[str, Any], str]] = {}
_MAX_IDENTITIES = 1024
_PLAIN = (str, int, float, bool, type(None), Enum)


def identity(
    config: ModelConfigChatRequest | ModelConfigCompletionRequest, *, seed: int | None
) -> tuple[dict[str, Any], str]:
    """``(config_body, config_hash)`` of an inline config. The body is shared: callers must not change it."""
    key = _plain_key(config, seed)
    if key is not None:
        known = _IDENTITIES.get(key)
        if known is not None:
            return known
    body = config_body(config, seed=seed)
    found = body, config_hash(body)
    if key is not None:
        if len(_IDENTITIES) >= _MAX_IDENTITIES:
            _IDENTITIES.clear()  # many distinct configs: start over rather than grow without bound
        _IDENTITIES[key] = found
    return found


def _plain_key(config: ModelConfigChatRequest | ModelConfigCompletionRequest, seed: int | None) -> Any:
    """The config's field values as a hashable key, or None when one of them is a container (templates,
    tools, stop lists, ``other``): those configs are not remembered. pydantic has coerced every field to
    its declared type, so equal keys mean equal configs (no 1 / 1.0 / True ambiguity within a field)."""
    values: list[Any] = [type(config), seed]
    for value in config.__dict__.values():
        if type(value) is float and not value:
            values.append(str(value))  # 0.0 == -0.0 as keys, but they are stored (and hashed) apart
        elif isinstance(value, _PLAIN):
            values.append(value)
        elif isinstance(value, dict) and not value:
            values.append(_EMPTY)
        else:
            return None
    return tuple(values)


_EMPTY = object()  # an empty ``other`` (its default), distinct from every plain value
