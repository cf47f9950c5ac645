"""``.prompt`` files: a model config as text (``/model-configs/serialize``, ``deserialize``, ``{id}/export``).

    ---
    model: gpt-4o
    temperature: 0.7
    ...                       one ``key: value`` line per parameter; lists and objects as JSON flow values
    ---
    <system>
      You are {{persona}}.    each message a tag at column 0, its content indented two spaces
    </system>
    <user>
      <text>
        What is in this image?
      </text>
      <image url="https://..." detail="low"/>
    </user>
    <assistant>
      <tool name="get_weather" id="call_1">
        {"city": "Paris"}
      </tool>
    </assistant>
    <tool name="get_weather" id="call_1">
      22 degrees
    </tool>

A completion config has its ``prompt_template`` verbatim after the header instead of tags.

Writing is done here, line by line, so the output is deterministic; every value is plain YAML or JSON,
which YAML reads as flow style. Reading uses PyYAML's ``safe_load`` for the header, so hand-written headers
in ordinary YAML work too. Content is indented, so a closing tag at column 0 always ends a message:
``serialize`` then ``deserialize`` gives back the same config, whatever the content holds.
"""

import html
import json
import math
import re
from typing import Any

import orjson
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with uvicorn[standard]; no stubs

from loopgate.errors import RequestInvalid

_HEADER_KEYS = (
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "provider",
    "endpoint",
    "stop",
    "seed",
    "response_format",
    "other",
    "tools",
    "name",
    "description",
)
_ROLES = ("system", "user", "assistant", "tool")
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
# Characters YAML will not read back literally inside a double-quoted scalar (line separators, C1
# controls, BOM): written as \\u escapes. JSON already escapes the C0 controls.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_OPEN = re.compile(r"<(system|user|assistant|tool)((?:\s+\w+=\"[^\"]*\")*)\s*>")
_INLINE = re.compile(r"<(system|user|assistant|tool)((?:\s+\w+=\"[^\"]*\")*)\s*>(.*)</\1>")
_IMAGE = re.compile(r"<image((?:\s+\w+=\"[^\"]*\")*)\s*/>")
_TOOL = re.compile(r"<tool((?:\s+\w+=\"[^\"]*\")*)\s*>")
_ATTRIBUTE = re.compile(r"(\w+)=\"([^\"]*)\"")


def _loc(*path: str | int) -> list[str | int]:
    return ["body", "config", *path]


# -- writing -----------------------------------------------------------------------------------------------


def _string(value: str) -> str:
    encoded = json.dumps(value, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


def _number(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    # YAML 1.1 reads "1e-05" as a string; it needs a dot in the mantissa.
    return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else text


def _value(value: Any, *, top: bool = False) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        plain = top and _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        return value if plain else _string(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(str(k))}: {_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_value(item) for item in value) + "]"


def _attributes(**values: str | None) -> str:
    return "".join(
        f' {key}="{html.escape(value, quote=True)}"' for key, value in values.items() if value is not None
    )


def _indented(text: str, depth: int) -> list[str]:
    pad = "  " * depth
    return [pad + line if line else "" for line in text.split("\n")]


def _message_lines(message: dict[str, Any]) -> list[str]:
    role = message["role"]
    if role == "tool":
        opening = f"<tool{_attributes(name=message.get('name'), id=message.get('tool_call_id'))}>"
    else:
        opening = f"<{role}{_attributes(name=message.get('name'))}>"
    lines = [opening]
    content = message.get("content")
    if isinstance(content, str):
        lines += _indented(content, 1)
    elif isinstance(content, list):
        for part in content:
            if part.get("type") == "image_url":
                image = part.get("image_url") or {}
                lines.append(f"  <image{_attributes(url=image.get('url'), detail=image.get('detail'))}/>")
            else:
                lines += ["  <text>", *_indented(part.get("text", ""), 2), "  </text>"]
    calls = [(c.get("function") or {}, c.get("id")) for c in message.get("tool_calls") or ()]
    if not calls and message.get("tool_call"):
        calls = [(message["tool_call"], None)]  # the deprecated single call has no id
    for function, call_id in calls:
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        lines += [
            f"  <tool{_attributes(name=function.get('name'), id=call_id)}>",
            *_indented(text, 2),
            "  </tool>",
        ]
    lines.append(f"</{role}>")
    return lines


def serialize(body: dict[str, Any]) -> str:
    """The ``.prompt`` text of a config body (a chat config's ``chat_template`` wins over a
    ``prompt_template`` when the body has both and its endpoint is ``chat``)."""
    lines = ["---"]
    for key in _HEADER_KEYS:
        value = body.get(key)
        if value is None or (key == "other" and value == {}):
            continue
        lines.append(f"{key}: {_value(value, top=True)}")
    lines.append("---")
    header = "\n".join(lines) + "\n"
    chat_template = body.get("chat_template")
    prompt_template = body.get("prompt_template")
    if chat_template is not None and (prompt_template is None or body.get("endpoint") == "chat"):
        return header + "".join(line + "\n" for m in chat_template for line in _message_lines(m))
    return header + (prompt_template or "")


# -- reading -----------------------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise RequestInvalid(_loc(), "A .prompt file starts with a '---' line opening its front matter")
    for position, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:position]), "\n".join(lines[position + 1 :])
    raise RequestInvalid(_loc(), "The front matter of the .prompt file has no closing '---' line")


def _header(text: str) -> dict[str, Any]:
    try:
        header = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise RequestInvalid(_loc(), f"The front matter is not valid YAML: {exc}") from exc
    if not isinstance(header, dict):
        raise RequestInvalid(_loc(), "The front matter must be a mapping of 'key: value' lines")
    try:
        # YAML's escapes can write what no text may hold: "\udc00" is a lone surrogate, which no JSON
        # encoder (nor store) takes. Anything else YAML makes (dates, sets, ...) is left to the schema.
        orjson.dumps(header, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise RequestInvalid(_loc(), f"The front matter is not valid text: {exc}") from exc
    for key in header:
        if key not in _HEADER_KEYS:
            raise RequestInvalid(_loc(str(key)), f"Unknown front matter key '{key}'", "value_error.extra")
    return header


def _attrs(text: str) -> dict[str, str]:
    return {key: html.unescape(value) for key, value in _ATTRIBUTE.findall(text)}


def _dedent(line: str, depth: int) -> str:
    pad = "  " * depth
    if line.startswith(pad):
        return line[len(pad) :]
    return line.lstrip(" ")


def _block(lines: list[str], start: int, closing: str) -> int:
    """The index of the line that closes the element opened on ``lines[start]``."""
    for position in range(start + 1, len(lines)):
        if lines[position] == closing:
            return position
    raise RequestInvalid(_loc(), f"'{lines[start].strip()}' is never closed by '{closing}'")


def _text(lines: list[str], depth: int) -> str | None:
    return "\n".join(_dedent(line, depth) for line in lines) if lines else None


def _parts(lines: list[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        image = _IMAGE.fullmatch(line)
        if image:
            attrs = _attrs(image.group(1))
            url = {"url": attrs.get("url", ""), **({"detail": attrs["detail"]} if "detail" in attrs else {})}
            parts.append({"type": "image_url", "image_url": url})
        elif line == "<text>":
            end = _block(lines, position, "</text>")
            parts.append({"type": "text", "text": _text(lines[position + 1 : end], 1) or ""})
            position = end
        elif line.strip():
            raise RequestInvalid(
                _loc(), f"Expected <text> or <image/> inside a message, found '{line.strip()}'"
            )
        position += 1
    return parts


def _message(role: str, attrs: dict[str, str], lines: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role}
    if role == "tool":
        message.update(content=_text(lines, 0), name=attrs.get("name"), tool_call_id=attrs.get("id"))
        return {key: value for key, value in message.items() if value is not None}
    if attrs.get("name"):
        message["name"] = attrs["name"]
    if any(line == "<text>" or _IMAGE.fullmatch(line) for line in lines):
        message["content"] = _parts(lines)
        return message
    first_call = next(
        (i for i, line in enumerate(lines) if role == "assistant" and _TOOL.fullmatch(line)), None
    )
    content = _text(lines[:first_call], 0) if first_call is not None else _text(lines, 0)
    if content is not None:
        message["content"] = content
    calls, legacy = [], None
    position = first_call if first_call is not None else len(lines)
    while position < len(lines):
        opening = _TOOL.fullmatch(lines[position])
        if opening is None:
            if lines[position].strip():
                raise RequestInvalid(
                    _loc(), f"Expected <tool> after an assistant's tool call, found '{lines[position]}'"
                )
            position += 1
            continue
        end = _block(lines, position, "</tool>")
        tool = _attrs(opening.group(1))
        function = {"name": tool.get("name", ""), "arguments": _text(lines[position + 1 : end], 1) or ""}
        if "id" in tool:
            calls.append({"id": tool["id"], "type": "function", "function": function})
        else:
            legacy = function
        position = end + 1
    if calls:
        message["tool_calls"] = calls
    if legacy is not None:
        message["tool_call"] = legacy
    return message


def _messages(text: str) -> list[dict[str, Any]] | None:
    """The chat template in ``text``; None when the text is not a sequence of message tags."""
    lines = text.split("\n")
    messages: list[dict[str, Any]] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        inline = _INLINE.fullmatch(line)
        opening = _OPEN.fullmatch(line)
        if inline:
            messages.append(_message(inline.group(1), _attrs(inline.group(2)), [inline.group(3)]))
        elif opening:
            end = _block(lines, position, f"</{opening.group(1)}>")
            body = [_dedent(raw, 1) for raw in lines[position + 1 : end]]
            messages.append(_message(opening.group(1), _attrs(opening.group(2)), body))
            position = end
        elif line.strip():
            if not messages:
                return None
            raise RequestInvalid(
                _loc(), f"Expected a message tag (<system>, <user>, ...), found '{line.strip()}'"
            )
        position += 1
    return messages or None


def deserialize(text: str) -> dict[str, Any]:
    """The config (unvalidated, as a plain dict) written in a ``.prompt`` file. Message tags make a chat
    template whatever the ``endpoint`` says (a registered chat config may keep the default ``complete``);
    anything else after the header is a completion's ``prompt_template``."""
    front, rest = _split(text)
    config = _header(front)
    try:
        chat = _messages(rest)
    except RequestInvalid:
        if config.get("endpoint") != "complete":
            raise
        chat = None  # a completion prompt that merely starts like a tag
    if chat is not None:
        config["chat_template"] = chat
        config.setdefault("endpoint", "chat")
    elif rest.strip() or config.get("endpoint") == "complete":
        config["prompt_template"] = rest
        config.setdefault("endpoint", "complete")
    return config
