"""Pure functions: templates, config identity, content addressing, token estimates, finish reasons, the
ASCII encoding of stream events."""

from __future__ import annotations

import orjson
import pytest

from loopgate import tokens
from loopgate.errors import RequestInvalid
from loopgate.providers.base import normalise_finish_reason
from loopgate.schemas.common import ModelConfigChatRequest
from loopgate.service import model_configs
from loopgate.service.streaming import ascii_json
from loopgate.service.templates import render_messages, render_text
from loopgate.store import content


def test_render_text_variants() -> None:
    assert render_text("Hi {{name}} / {{ name }}", {"name": "Ann"}) == "Hi Ann / Ann"
    assert render_text("n={{n}} l={{l}}", {"n": 3, "l": [1, "a"]}) == 'n=3 l=[1, "a"]'
    assert render_text("tool {{search(q)}} stays", {}) == "tool {{search(q)}} stays"
    with pytest.raises(RequestInvalid) as caught:
        render_text("{{missing}}", {})
    assert caught.value.loc == ["body", "inputs", "missing"]


def test_render_messages_renders_text_parts_only() -> None:
    template = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "{{a}}"},
                {"type": "image_url", "image_url": {"url": "{{a}}"}},
            ],
        }
    ]
    (message,) = render_messages(template, {"a": "x"})
    assert message["content"][0]["text"] == "x"
    assert message["content"][1]["image_url"]["url"] == "{{a}}"


def test_config_hash_ignores_labels_and_empty_tools_and_sees_parameters() -> None:
    base = ModelConfigChatRequest(model="m", provider="mock")
    named = ModelConfigChatRequest(model="m", provider="mock", name="nice", description="d")
    hotter = ModelConfigChatRequest(model="m", provider="mock", temperature=0.2)
    assert model_configs.config_hash(model_configs.config_body(base, seed=None)) == model_configs.config_hash(
        model_configs.config_body(named, seed=None)
    )
    assert model_configs.config_hash(model_configs.config_body(base, seed=None)) != model_configs.config_hash(
        model_configs.config_body(hotter, seed=None)
    )
    no_tools = ModelConfigChatRequest(model="m", provider="mock", tools=[])
    assert model_configs.config_body(no_tools, seed=None)["tools"] == []  # stored as sent...
    assert model_configs.config_hash(model_configs.config_body(base, seed=None)) == model_configs.config_hash(
        model_configs.config_body(no_tools, seed=None)
    )  # ...but the same version as a config without the key
    seeded = model_configs.config_body(base, seed=5)
    assert seeded["seed"] == 5
    assert model_configs.config_hash(seeded) != model_configs.config_hash(
        model_configs.config_body(base, seed=None)
    )


def test_config_identity_is_remembered_only_when_exact() -> None:
    from loopgate.schemas.model_configs import ModelConfigCompletionRequest

    variants = [
        ModelConfigChatRequest(model="m", provider="mock"),
        ModelConfigChatRequest(model="m", provider="mock", temperature=0.2),
        ModelConfigChatRequest(model="m", provider="mock", temperature=0.0),
        ModelConfigChatRequest(model="m", provider="mock", temperature=-0.0),
        ModelConfigChatRequest(model="m", provider="mock", name="labelled"),
        ModelConfigChatRequest(model="m", provider="mock", stop="\n"),
        ModelConfigChatRequest(model="m", provider="mock", stop=["a"], other={"k": 1}),  # containers
        ModelConfigCompletionRequest(model="m", provider="mock", prompt_template="{{x}}"),
    ]
    for config in variants:
        for seed in (None, 7):
            expected = model_configs.config_body(config, seed=seed)
            for _ in range(2):  # the second call is answered from memory where the config is plain
                body, digest = model_configs.identity(config, seed=seed)
                assert body == expected and digest == model_configs.config_hash(expected)
    remembered = model_configs.identity(variants[1], seed=None)
    assert model_configs.identity(variants[1].model_copy(), seed=None) is remembered
    with_containers = variants[6]
    assert with_containers.other == {"k": 1}
    assert model_configs.identity(with_containers, seed=None) is not model_configs.identity(
        with_containers, seed=None
    )
    for temperature in range(2000):  # a flood of distinct configs does not grow memory without bound
        model_configs.identity(ModelConfigChatRequest(model="m", temperature=temperature / 1000), seed=None)
    assert len(model_configs._IDENTITIES) <= model_configs._MAX_IDENTITIES


def test_content_interning_round_trips_and_deduplicates() -> None:
    prompt = "You are a helpful assistant. " * 10
    document = {
        "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": "short"}],
        "request": {"messages": [{"content": prompt}]},
    }
    blobs: dict[str, str] = {}
    interned = content.intern(document, blobs)
    assert list(blobs.values()) == [prompt]  # stored once although it appears twice
    assert interned["messages"][1]["content"] == "short"
    assert content.references(interned, set()) == set(blobs)
    assert content.expand(interned, blobs) == document


def test_interning_copies_only_what_changes() -> None:
    from enum import StrEnum

    class Role(StrEnum):
        SYSTEM = "system"

    prompt = "p" * content.MIN_LENGTH
    short = {"role": Role.SYSTEM, "content": "short", "n": 1, "x": 1.5, "ok": True, "none": None}
    document = {"short": short, "list": [1, "a", [2]], "long": [{"content": prompt}], "key": Role.SYSTEM}
    blobs: dict[str, str] = {}
    interned = content.intern(document, blobs)
    assert interned is not document and document["long"] == [{"content": prompt}]  # the input is untouched
    assert interned["short"] is short and interned["list"] is document["list"]  # nothing long: not copied
    assert interned["long"] == [{"content": {"$blob": content.content_hash(prompt)}}]
    assert interned["key"] is Role.SYSTEM and blobs == {content.content_hash(prompt): prompt}
    assert content.intern("x" * 63, {}) == "x" * 63


def test_token_estimates_are_plausible() -> None:
    assert tokens.count_text("") == 0
    assert 8 <= tokens.count_text("The quick brown fox jumps over the lazy dog.") <= 12
    assert tokens.count_messages([{"role": "user", "content": "hi"}]) == 3 + 4 + 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("stop", "stop"), ("tool_calls", "tool_call"), ("length", "length"), ("end_turn", "stop"), (None, None)],
)
def test_finish_reasons_normalised(raw: str | None, expected: str | None) -> None:
    assert normalise_finish_reason(raw) == expected


def test_ascii_json_escapes_every_non_ascii_character_and_means_the_same() -> None:
    value = {"text": "naïve ☃ 日本語 🚀 \u2028 end", "ctrl": "a\x00b\n", "n": 1.5, "ok": "plain"}
    encoded = ascii_json(orjson.dumps(value))
    assert encoded.isascii()
    assert orjson.loads(encoded) == value
    # beyond the BMP a character is a surrogate pair, as JSON (and JavaScript) spell it
    assert ascii_json(orjson.dumps("🚀")) == b'"\\ud83d\\ude80"'
    assert ascii_json(orjson.dumps("é")) == b'"\\u00e9"'
    plain = orjson.dumps({"text": "only ascii"})
    assert ascii_json(plain) is plain  # ASCII goes through untouched, not copied
