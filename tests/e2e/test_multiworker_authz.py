"""Every process obeys an RBAC change within a second: the real server, several processes, one
database (and Redis on the PostgreSQL backend). A permission is warmed into every process's
principal cache, revoked through one process, and every other process must refuse within 1 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx

from app.bootstrap import ensure_user
from app.core.config import Settings
from app.core.database import create_null_pool_engine, create_session_factory
from app.core.security import PasswordHasher
from tests.conftest import SUPERADMIN_PASSWORD
from tests.e2e.conftest import Server, StartServer

API = "/api/v1"
PASSWORD = "Correct-Horse-Battery-9"
DEADLINE_SECONDS = 1.0


def _login(server: Server, username: str, password: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}{API}/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _fresh_get(server: Server, path: str, headers: dict[str, str]) -> int:
    """A new connection per request, so a multi-worker server spreads them over its workers."""
    with httpx.Client(base_url=server.url, headers=headers) as client:
        return client.get(path).status_code


def _prepare(server: Server, settings: Settings) -> tuple[str, str, dict[str, str], str]:
    """A role granting role:read, a user holding it; returns (role id, permission id, admin
    headers, username)."""
    admin = _login(server, "superadmin", SUPERADMIN_PASSWORD)
    name = f"e2e_{uuid.uuid4().hex[:8]}"
    role = httpx.post(
        f"{server.url}{API}/roles", json={"name": name, "permissions": ["role:read"]}, headers=admin
    )
    assert role.status_code == 201, role.text
    permission_id = role.json()["permissions"][0]["id"]

    async def create_user() -> None:
        engine = create_null_pool_engine(settings.DATABASE_URL)
        try:
            async with create_session_factory(engine)() as session:
                await ensure_user(
                    session,
                    PasswordHasher(settings),
                    username=name,
                    email=f"{name}@example.com",
                    password=PASSWORD,
                    roles=[name],
                )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(create_user())
    return role.json()["id"], permission_id, admin, name


def _wait_until(predicate: Callable[[], bool], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_two_workers_obey_revocation_within_a_second(
    start_server: StartServer, settings: Settings
) -> None:
    server = start_server(workers=2)
    role_id, permission_id, admin, username = _prepare(server, settings)
    user = _login(server, username, PASSWORD)
    # warm the principal in (with overwhelming likelihood) both workers
    statuses = [_fresh_get(server, f"{API}/roles", user) for _ in range(30)]
    assert statuses == [200] * 30, statuses

    revoke = httpx.delete(
        f"{server.url}{API}/roles/{role_id}/permissions/{permission_id}", headers=admin
    )
    assert revoke.status_code == 200, revoke.text
    deadline = time.monotonic() + DEADLINE_SECONDS

    def every_worker_refuses() -> bool:
        return all(_fresh_get(server, f"{API}/roles", user) == 403 for _ in range(10))

    assert _wait_until(every_worker_refuses, deadline)
    # and it stays refused on whichever worker answers
    assert all(_fresh_get(server, f"{API}/roles", user) == 403 for _ in range(20))


def test_separate_processes_obey_revocation_within_a_second(
    start_server: StartServer, settings: Settings
) -> None:
    first = start_server(workers=1)
    second = start_server(workers=1)
    role_id, permission_id, admin, username = _prepare(first, settings)
    user = _login(first, username, PASSWORD)
    for server in (first, second):  # warm both caches
        assert _fresh_get(server, f"{API}/roles", user) == 200
        assert _fresh_get(server, f"{API}/roles", user) == 200

    revoke = httpx.delete(
        f"{first.url}{API}/roles/{role_id}/permissions/{permission_id}", headers=admin
    )
    assert revoke.status_code == 200, revoke.text
    deadline = time.monotonic() + DEADLINE_SECONDS
    assert _fresh_get(first, f"{API}/roles", user) == 403  # the process that made the change
    assert _wait_until(lambda: _fresh_get(second, f"{API}/roles", user) == 403, deadline)

    # and back: re-granting through the second process reaches the first
    grant = httpx.post(
        f"{second.url}{API}/roles/{role_id}/permissions/{permission_id}", headers=admin
    )
    assert grant.status_code == 200, grant.text
    deadline = time.monotonic() + DEADLINE_SECONDS
    assert _wait_until(lambda: _fresh_get(first, f"{API}/roles", user) == 200, deadline)
