"""``loopgate keys list | revoke`` on each backend: the listing names keys without revealing them or
their hashes, a revoked key is refused by a running server, and an unknown id is an error."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LOOPGATE, make_server, serving
from tests.helpers import unique


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_list_and_revoke_keys(tmp_path: Path, backend: str) -> None:
    server = make_server(tmp_path, backend=backend)
    org = unique("acme")
    ci_key = server.create_key(org=org, name="ci")
    laptop_key = server.create_key(org=org, name="laptop")

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LOOPGATE, "keys", *args], env=server.env, capture_output=True, text=True, check=False
        )

    listed = keys("list", "--org", org)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.strip().splitlines()
    assert header.split() == ["ID", "ORGANIZATION", "NAME", "CREATED", "(UTC)"]
    assert [line.split()[1:3] for line in lines] == [[org, "ci"], [org, "laptop"]]  # oldest first
    for secret in (ci_key, laptop_key):
        assert secret not in listed.stdout
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed.stdout
    everyone = keys("list").stdout
    assert org in everyone and "default" in everyone  # the server's own key is in another organization
    assert keys("list", "--org", "nobody").stdout.strip() == "No API keys in organization 'nobody'."

    ci_id = lines[0].split()[0]
    assert ci_id.startswith("key_")
    with serving(server):
        with server.client(laptop_key) as laptop:
            assert laptop.get("/projects").status_code == 200
        revoked = keys("revoke", ci_id)
        assert revoked.returncode == 0 and ci_id in revoked.stdout
        with server.client(ci_key) as ci:
            assert ci.get("/projects").status_code == 401
        with server.client(laptop_key) as laptop:  # the other key of the organization still works
            assert laptop.get("/projects").status_code == 200
    assert [line.split()[2] for line in keys("list", "--org", org).stdout.strip().splitlines()[1:]] == [
        "laptop"
    ]

    again = keys("revoke", ci_id)
    assert again.returncode == 1 and ci_id in again.stderr and "keys list" in again.stderr
