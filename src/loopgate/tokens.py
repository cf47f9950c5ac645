"""Token counts for upstreams that do not report usage (most streams, many OpenAI-compatible servers).

No tokenizer files can be fetched at run time, so this is an estimate calibrated on BPE tokenizers of the
GPT family: a word of up to six letters is one token (longer words one per six letters), digits go three
to a token, each punctuation mark is one token, and every chat message costs four tokens of framing (three
for the reply priming). Counts reported by an upstream
always take precedence.
"""

import re
from collections.abc import Iterable
from typing import Any

_PIECES = re.compile(r"\w+|[^\w\s]")
_MESSAGE_OVERHEAD = 4
_REPLY_PRIMING = 3


def count_text(text: str) -> int:
    tokens = 0
    for piece in _PIECES.findall(text):
        tokens += (len(piece) + 2) // 3 if piece.isdigit() else (len(piece) + 5) // 6
    return tokens


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_messages(messages: Iterable[dict[str, Any]]) -> int:
    tokens = _REPLY_PRIMING
    for message in messages:
        tokens += _MESSAGE_OVERHEAD + count_text(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            tokens += count_text(str(function.get("name", ""))) + count_text(
                str(function.get("arguments", ""))
            )
    return tokens


def count_output(text: str, tool_calls: list[dict[str, Any]] | None) -> int:
    count = count_text(text)
    for call in tool_calls or ():
        function = call.get("function") or {}
        count += count_text(f"{function.get('name', '')} {function.get('arguments', '')}")
    return count
