"""Model configs over HTTP: register (dedup, first becomes active), get, and the ``.prompt`` file endpoints
(export, serialize, deserialize; serialize -> deserialize round-trips)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loopgate.service import prompt_files
from tests.helpers import chat_body, unique

MOCK = {"provider": "mock", "model": "mock-1"}
CHAT_TEMPLATE = [{"role": "system", "content": "You are {{persona}}."}]
# The parameters of a ModelConfigResponse that a config request also carries.
PARAMETERS = (
    "name",
    "description",
    "provider",
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "other",
    "seed",
    "response_format",
    "endpoint",
    "prompt_template",
    "chat_template",
)


def register(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/model-configs", json={**MOCK, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_register_creates_the_project_dedups_and_activates_the_first(client: httpx.Client) -> None:
    project = unique("reg")
    first = register(client, project=project, chat_template=CHAT_TEMPLATE, temperature=0.3, name="v1")
    assert set(first) >= {"project_id", "project_name", "created_at", "updated_at", "last_used", "config"}
    assert first["project_name"] == project and first["num_datapoints"] == 0
    config = first["config"]
    assert config["id"].startswith("config_") and config["type"] == "model" and config["name"] == "v1"
    assert config["endpoint"] == "chat"  # a chat template alone makes a chat config
    assert config["chat_template"] == CHAT_TEMPLATE and config["temperature"] == 0.3

    same = register(client, project_id=first["project_id"], chat_template=CHAT_TEMPLATE, temperature=0.3)
    assert same["config"]["id"] == config["id"]
    second = register(client, project=project, chat_template=CHAT_TEMPLATE, temperature=0.9)
    assert second["config"]["id"] != config["id"]

    # the first registered config is the project's active config; later ones are not
    active = client.get(f"/projects/{first['project_id']}/active-config").json()
    assert active["config"]["id"] == config["id"] and active["environment_id"].startswith("env_")
    # the same parameters sent inline to /chat run the same version
    chat = client.post(
        "/chat",
        json=chat_body(
            project,
            model_config={**MOCK, "chat_template": CHAT_TEMPLATE, "temperature": 0.3},
            inputs={"persona": "Ada"},
        ),
    ).json()
    assert chat["data"][0]["model_config_id"] == config["id"]


def test_the_deployed_config_read_back_and_logged_is_the_same_version(client: httpx.Client) -> None:
    """TypeScript SDK 0.5.x's completeDeployedNoProxy calls the provider itself, then logs the call with
    the active config it read, minus ``id`` and with ``tool_configs`` as ``tools``: ``tools: []`` included."""
    registered = register(client, project=unique("noproxy"), prompt_template="Say {{word}}.", temperature=0.2)
    active = client.get(f"/projects/{registered['project_id']}/active-config").json()["config"]
    sent = {key: value for key, value in active.items() if key not in ("id", "tool_configs")}
    log = {"project_id": registered["project_id"], "config": {**sent, "tools": active["tool_configs"]}}
    assert log["config"]["tools"] == []
    response = client.post("/logs", json={**log, "inputs": {"word": "hi"}, "output": "hi"})
    assert response.status_code == 200, response.text
    assert client.get(f"/logs/{response.json()['id']}").json()["config_id"] == active["id"]


def test_register_errors(client: httpx.Client) -> None:
    assert client.post("/model-configs", json=MOCK).status_code == 422  # no project
    both = client.post("/model-configs", json={**MOCK, "project": "a", "project_id": "pr_b"})
    assert both.status_code == 422
    missing = client.post("/model-configs", json={**MOCK, "project_id": "pr_doesnotexist0000000"})
    assert missing.status_code == 404
    assert client.post("/model-configs", json={"project": unique()}).status_code == 422  # no model
    assert client.post("/model-configs", json={**MOCK, "project": unique(), "bogus": 1}).status_code == 422


LINKED = {"id": "oc_0123456789abcdefghijk", "source": "organization"}  # a LinkedToolRequest


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/model-configs", {**MOCK, "project": "P", "tools": [LINKED]}, ["tools", 0]),
        ("/logs", {"project": "P", "config": {**MOCK, "tools": [LINKED]}}, ["config", "model", "tools", 0]),
        ("/chat", chat_body("P", model_config={**MOCK, "tools": [{"name": "ok"}, LINKED]}),
         ["model_config", "tools", 1]),
    ],
)  # fmt: skip
def test_a_config_with_a_linked_tool_is_refused(
    client: httpx.Client, path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    """An organization tool named by id: this server has none, so the config could never run, and its
    ToolResponse would lack the name the spec requires. Registering and logging one answered 200 and the
    config then read back with ``"name": null`` (a schemathesis finding); /chat already refused it."""
    project = unique("linked")
    response = client.post(path, json={**body, "project": project})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", *loc] and "Linked organization tools" in error["msg"]
    assert client.get("/projects", params={"filter": project}).json()["total"] == 0


def test_get_returns_the_bare_model_config(client: httpx.Client) -> None:
    registered = register(
        client,
        project=unique("get"),
        prompt_template="Say {{x}}",
        stop=["\n"],
        seed=4,
        tools=[{"name": "lookup", "description": "Look up", "parameters": {"type": "object"}}],
    )["config"]
    got = client.get(f"/model-configs/{registered['id']}")
    assert got.status_code == 200
    config = got.json()
    assert config == registered
    assert config["endpoint"] == "complete" and config["prompt_template"] == "Say {{x}}"
    assert config["stop"] == ["\n"] and config["seed"] == 4
    (tool,) = config["tools"]
    assert tool["name"] == "lookup" and tool["id"].startswith("config_") and tool["source"] == "inline"
    assert client.get("/model-configs/config_doesnotexist00000").status_code == 404


CHAT_CONFIG: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-4o",
    "temperature": 0.25,
    "max_tokens": 256,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 1e-05,
    "stop": ["</end>", "yes"],
    "seed": 7,
    "other": {"logit_bias": {"50256": -100}, "flag": True},
    "response_format": {"type": "json_object"},
    "name": "Wizard: 'v1' #2",
    "description": "multi\nline ☃ 😀",
    "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
    "chat_template": [
        {"role": "system", "content": "You are {{persona}}.\n\n  Indented line\n</system>\n"},
        {"role": "user", "content": ""},
        {
            "role": "user",
            "name": "ann <b>",
            "content": [
                {"type": "text", "text": "What is\nthis?"},
                {
                    "type": "image_url",
                    "image_url": {"url": 'https://x.example/a.png?b=1&c="2"', "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": 'Let me check.\n  <tool name="x">',
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"c": 1}'},
                }
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{\n}"}}
            ],
        },
        {"role": "tool", "name": "get_weather", "tool_call_id": "call_1", "content": "22 degrees"},
        {"role": "assistant", "content": "Done."},
    ],
}
COMPLETION_CONFIG: dict[str, Any] = {
    "provider": "mock",
    "model": "true",
    "prompt_template": "---\n<user>\nWrite about {{topic}}.\n\n",
    "endpoint": "complete",
    "temperature": 1e20,
}


@pytest.mark.parametrize("config", [CHAT_CONFIG, COMPLETION_CONFIG], ids=["chat", "completion"])
def test_serialize_then_deserialize_round_trips(client: httpx.Client, config: dict[str, Any]) -> None:
    serialized = client.post("/model-configs/serialize", json=config)
    assert serialized.status_code == 200 and serialized.headers["content-type"].startswith("application/json")
    text = serialized.json()
    assert isinstance(text, str) and text.startswith("---\n")
    back = client.post("/model-configs/deserialize", json={"config": text})
    assert back.status_code == 200, back.text
    parsed = back.json()
    assert parsed["type"] == "model" and parsed["id"].startswith("config_")
    for key, value in config.items():
        if key == "tools":
            assert [t["name"] for t in parsed["tools"]] == [t["name"] for t in value]
        else:
            assert parsed[key] == value, key
    # and the text itself is stable: serializing the parsed config gives the same file
    again = {key: parsed[key] for key in PARAMETERS if parsed.get(key) is not None}
    again["tools"] = config.get("tools")
    again = {key: value for key, value in again.items() if value is not None}
    assert client.post("/model-configs/serialize", json=again).json() == text


def test_prompt_file_layout() -> None:
    text = prompt_files.serialize(
        {
            "model": "gpt-4o",
            "temperature": 0.7,
            "provider": "openai",
            "endpoint": "chat",
            "chat_template": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "{{q}}"},
            ],
        }
    )
    assert text == (
        "---\nmodel: gpt-4o\ntemperature: 0.7\nprovider: openai\nendpoint: chat\n---\n"
        "<system>\n  Be brief.\n</system>\n<user>\n  {{q}}\n</user>\n"
    )


def test_deserialize_accepts_hand_written_files(client: httpx.Client) -> None:
    text = (
        "---\nmodel: gpt-4o\ntemperature: 0.5\ntools:\n  - name: search\n    parameters: {}\n---\n\n"
        "<system>Keep it short.</system>\n\n<user>\nHello {{name}}\n</user>\n"
    )
    parsed = client.post("/model-configs/deserialize", json={"config": text}).json()
    assert parsed["model"] == "gpt-4o" and parsed["temperature"] == 0.5 and parsed["endpoint"] == "chat"
    assert parsed["chat_template"] == [
        {"role": "system", "content": "Keep it short."},
        {"role": "user", "content": "Hello {{name}}"},
    ]
    assert parsed["tools"][0]["name"] == "search"


@pytest.mark.parametrize(
    "text",
    [
        "model: gpt-4o\n",  # no front matter
        "---\nmodel: gpt-4o\n",  # never closed
        "---\nmodel: [unclosed\n---\n",  # not YAML
        "---\n- a list\n---\n",  # not a mapping
        "---\nmodel: gpt-4o\nproject: x\n---\n",  # unknown key
        "---\ntemperature: 0.5\n---\nhi",  # no model
        "---\nmodel: m\ntemperature: hot\n---\nhi",  # wrong type
        "---\nmodel: m\n---\n<user>\n  never closed\n",
        "---\nmodel: m\n---\n<user>\n  hi\n</user>\nstray text\n",
    ],
)
def test_deserialize_rejects_bad_files_with_422(client: httpx.Client, text: str) -> None:
    response = client.post("/model-configs/deserialize", json={"config": text})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:2] == ["body", "config"]


def test_export_a_stored_config(client: httpx.Client) -> None:
    registered = register(client, project=unique("exp"), chat_template=CHAT_TEMPLATE)["config"]
    exported = client.post(f"/model-configs/{registered['id']}/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/json")
    parsed = client.post("/model-configs/deserialize", json={"config": exported.json()}).json()
    assert parsed["chat_template"] == CHAT_TEMPLATE and parsed["model"] == "mock-1"
    assert client.post("/model-configs/config_doesnotexist00000/export").status_code == 404
