"""Request paths: runs of ``/`` are one, so a host given with a trailing slash still finds every route.

TypeScript SDK 0.5.x appends each path to its ``basePath`` as given: ``http://127.0.0.1:8000/v4/`` makes
``/v4//projects`` and ``/v4//chat``. (The Python SDK strips the slash itself.)
"""

from __future__ import annotations

import httpx

from tests.conftest import Server
from tests.helpers import chat_body, unique


def test_doubled_slashes_reach_the_routes(server: Server) -> None:
    with httpx.Client(base_url=server.base, headers={"X-API-KEY": server.api_key}, timeout=30) as http:
        project = unique("slashes")
        chat = http.post("/v4//chat", json=chat_body(project, "hi"))
        assert chat.status_code == 200, chat.text
        project_id = chat.json()["project_id"]
        got = http.get(f"/v4//projects/{project_id}")
        assert got.status_code == 200, got.text
        assert got.json()["name"] == project
        listed = http.get("/v4///logs", params={"project_id": project_id})
        assert [log["id"] for log in listed.json()["records"]] == [chat.json()["data"][0]["id"]]
        assert http.get("/v4//nowhere").status_code == 404


def test_doubled_slashes_reach_the_openai_door(server: Server) -> None:
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as http:
        answered = http.post("/v1//chat/completions", json=body)
        assert answered.status_code == 200, answered.text
        assert answered.json()["object"] == "chat.completion"
        assert http.get("/v1//models").json()["object"] == "list"
