"""End-to-end scenarios for real provider adapters driven by the official ``humanloop`` Python SDK (0.7.35):
``hl.chat`` and ``hl.chat_stream`` with ``model_config.provider`` ``anthropic`` (the Messages API) and
``openai`` (an OpenAI-compatible upstream), the keys travelling as the SDK sends them (its
``anthropic_api_key`` / ``openai_api_key`` configuration becomes the request's ``provider_api_keys``).

The upstream is fakellm (``tests/fakellm.yaml``), which answers both API shapes; each message carries the
marker word of the fakellm rule it is meant to hit. Same contract as ``sdk_scenarios.py`` (whose Context and
helpers it reuses): runs with the SDK's own interpreter, imports nothing from loopgate, and prints one JSON
object ``{scenario: {"ok": true, "result": ...}}`` that ``test_sdk_providers.py`` asserts on.

    python sdk_providers_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO ...
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from humanloop import Humanloop
from sdk_scenarios import WEATHER_TOOL, Context, _collect, api_error, dump, run, user

MODELS = {"anthropic": "claude-3-5-haiku-latest", "openai": "gpt-4o-mini"}
UPSTREAM_KEY = "sk-e2e-upstream"


def exchange(ctx: Context, provider: str) -> dict[str, Any]:
    """One provider through every generation path: a plain chat, a stream, two samples (plain and
    streamed), a tool call, and a request that brings no key to a server that has none."""
    keyed = Humanloop(api_key=ctx.api_key, host=ctx.host, **{f"{provider}_api_key": UPSTREAM_KEY})
    keyless = Humanloop(api_key=ctx.api_key, host=ctx.host)
    config = {
        "provider": provider,
        "model": MODELS[provider],
        "max_tokens": 200,
        "chat_template": [{"role": "system", "content": "You are {{persona}}."}],
    }

    def params(label: str, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "project": ctx.name(f"{provider}-{label}"),
            "messages": user(text),
            "model_config": config,
            "inputs": {"persona": "a fox"},
            **extra,
        }

    plain = keyed.chat(**params("plain", "fk-plain hello"))
    chunks = asyncio.run(_collect(keyed.chat_stream(**params("stream", "fk-stream go"))))
    samples = keyed.chat(**params("samples", "fk-samples twice", num_samples=2))
    sample_chunks = asyncio.run(
        _collect(keyed.chat_stream(**params("samples-stream", "fk-samples twice", num_samples=2)))
    )
    tools = keyed.chat(
        **{
            **params("tools", "What is the weather in Paris?"),
            "model_config": {**config, "tools": [WEATHER_TOOL]},
        }
    )
    first = plain.data[0]
    return {
        "plain": dump(plain),
        "attributes": {
            "output": first.output,
            "finish_reason": first.finish_reason,
            "usage": {
                "prompt_tokens": plain.usage.prompt_tokens,
                "generation_tokens": plain.usage.generation_tokens,
                "total_tokens": plain.usage.total_tokens,
            },
        },
        "chunks": chunks,
        "samples": dump(samples),
        "sample_chunks": sample_chunks,
        "tools": dump(tools),
        "missing_key": api_error(lambda: keyless.chat(**params("keyless", "fk-plain hello"))),
    }


def anthropic(ctx: Context) -> dict[str, Any]:
    return exchange(ctx, "anthropic")


def openai(ctx: Context) -> dict[str, Any]:
    return exchange(ctx, "openai")


SCENARIOS: dict[str, Callable[[Context], Any]] = {"anthropic": anthropic, "openai": openai}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
