"""Model configs: defaults, the canonical parameter set, and its hash (the identity of a config version).

Same parameters in a project -> same config id; any change (``seed``, ``temperature``, a tool, a template
message) -> a new version. ``name`` and ``description`` are labels, not parameters, so they do not split
versions.
"""

import hashlib
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
    parameters = {key: value for key, value in body.items() if key not in _LABELS}
    return hashlib.sha256(orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)).hexdigest()
