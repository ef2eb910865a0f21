"""Logout is effective in every process within a second: the real server (uvicorn) as
subprocesses sharing the test database, and Redis on the PostgreSQL backend (on SQLite the
processes poll the shared file every STATE_POLL_INTERVAL_SECONDS)."""

from __future__ import annotations

import time

import httpx

from tests.conftest import SUPERADMIN_PASSWORD
from tests.e2e.conftest import Server, StartServer

API = "/api/v1/auth"
DEADLINE_SECONDS = 1.0
# Requests per check on a multi-worker server, each on a new connection so that they spread
# over the workers.
SPREAD = 12


def _login(server: Server) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}{API}/login",
        json={"username": "superadmin", "password": SUPERADMIN_PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _status(server: Server, headers: dict[str, str]) -> int:
    with httpx.Client(base_url=server.url, headers=headers, timeout=5) as client:
        return client.get(f"{API}/sessions").status_code


def _assert_refused_everywhere(servers: list[Server], headers: dict[str, str]) -> None:
    """No process accepts the token in a request sent more than DEADLINE_SECONDS after the
    logout, and each ends with SPREAD refusals in a row (the requests themselves may be slow
    on a busy machine, so what is bounded is when an acceptance was asked for)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    for server in servers:
        refusals = 0
        while refusals < SPREAD:
            asked = time.monotonic()
            status = _status(server, headers)
            if status == 401:
                refusals += 1
                continue
            assert status == 200, status
            assert asked < deadline, f"{server.url} accepted a logged-out token after 1 s"
            refusals = 0
            time.sleep(0.02)


def _logout_everywhere(servers: list[Server]) -> None:
    headers = _login(servers[0])
    for server in servers:  # warm every process: the token is valid and cached everywhere
        assert all(_status(server, headers) == 200 for _ in range(SPREAD))
    response = httpx.post(f"{servers[0].url}{API}/logout", headers=headers, timeout=10)
    assert response.status_code == 204, response.text
    _assert_refused_everywhere(servers, headers)
    # The logout did not leak into other sessions.
    fresh = _login(servers[-1])
    assert all(_status(server, fresh) == 200 for server in servers)


def test_logout_seen_by_every_worker(start_server: StartServer) -> None:
    server = start_server(workers=2)
    _logout_everywhere([server])


def test_logout_seen_by_separate_processes(start_server: StartServer) -> None:
    first = start_server(workers=1)
    second = start_server(workers=1)
    _logout_everywhere([first, second])
    # and the other way round
    _logout_everywhere([second, first])
