"""``{{name}}`` templates, rendered from a request's ``inputs``.

Whitespace inside the braces is allowed (``{{ name }}``). A placeholder whose name is not in ``inputs`` is
an error naming the variable, so a typo never reaches the model as literal braces. Template-tool calls
(``{{tool(arg)}}``) do not match the pattern and are left as written. Non-string values are JSON-encoded.
"""

import json
import re
from typing import Any

from loopgate.errors import RequestInvalid

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render_text(template: str, inputs: dict[str, Any]) -> str:
    if "{{" not in template:
        return template

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in inputs:
            raise RequestInvalid(
                ["body", "inputs", name],
                f"Template variable '{name}' is used by the template but missing from inputs",
                "value_error.missing",
            )
        return _value(inputs[name])

    return _PLACEHOLDER.sub(substitute, template)


def render_messages(template: list[dict[str, Any]], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = []
    for message in template:
        content = message.get("content")
        if isinstance(content, str):
            message = {**message, "content": render_text(content, inputs)}
        elif isinstance(content, list):
            parts = [
                {**part, "text": render_text(part["text"], inputs)} if part.get("type") == "text" else part
                for part in content
            ]
            message = {**message, "content": parts}
        rendered.append(message)
    return rendered
