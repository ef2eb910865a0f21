"""Navigation fixtures: clients per role, and helpers to create modules and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.modules.auth.models import AuthSession
from tests.conftest import SUPERADMIN_PASSWORD
from tests.factories import Factory, TestUser

API = "/api/v1"
RoleClient = Callable[..., Awaitable[httpx.AsyncClient]]


async def _client_for(factory: Factory, user: TestUser) -> httpx.AsyncClient:
    runtime = factory.runtime
    try:
        return await factory.client_for(user)
    except AssertionError:
        pass
    # Until POST /auth/login exists: mint a token on a real session row.
    now = runtime.clock.now()
    async with runtime.session_factory() as session:
        row = AuthSession(user_id=user.id, expires_at=now + timedelta(days=1))
        session.add(row)
        await session.commit()
        session_id = row.id
    token, _ = runtime.tokens.create_access_token(user.id, session_id, now)
    user.access_token = token
    transport = httpx.ASGITransport(app=factory.app, client=("203.0.113.20", 50001))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=user.headers
    )


@pytest.fixture
async def as_role(factory: Factory) -> AsyncIterator[RoleClient]:
    """`await as_role("user")`: a logged-in client of a new user holding those roles."""
    clients: list[httpx.AsyncClient] = []

    async def make(*roles: str) -> httpx.AsyncClient:
        user = await factory.user(roles=list(roles))
        client = await _client_for(factory, user)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def su(factory: Factory) -> AsyncIterator[httpx.AsyncClient]:
    """The seeded super-admin."""
    user = await factory.existing("superadmin", SUPERADMIN_PASSWORD)
    client = await _client_for(factory, user)
    yield client
    await client.aclose()


@pytest.fixture
def make_module(su: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    counter = iter(range(1, 10_000))

    async def make(**fields: Any) -> dict[str, Any]:
        n = next(counter)
        body = {"name": f"mod-{n}", "label": f"Module {n}", "order": 100 + n, **fields}
        response = await su.post(f"{API}/modules", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


@pytest.fixture
def make_route(su: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    counter = iter(range(1, 10_000))

    async def make(module: dict[str, Any], **fields: Any) -> dict[str, Any]:
        n = next(counter)
        body = {
            "name": f"route-{n}",
            "label": f"Route {n}",
            "path": f"/r/{n}",
            "order": n,
            "module_id": module["id"],
            **fields,
        }
        response = await su.post(f"{API}/routes", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make
