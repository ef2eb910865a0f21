from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Factory
from tests.modules.auth.conftest import API, assert_problem, bearer, login


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "RATE_LIMIT_ENABLED": True,
        "AUTH_RATE_LIMIT_REQUESTS": 3,
        "AUTH_RATE_LIMIT_WINDOW": 60,
        "RATE_LIMIT_REQUESTS": 5,
        "RATE_LIMIT_WINDOW": 60,
        "LOCKOUT_THRESHOLD": 50,
    }


async def test_login_limited_per_ip(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    for i in range(3):
        assert_problem(await login(client, f"someone{i}", "Wrong-Password-1"), 401)
    limited = await login(client, user.username, user.password)
    body = assert_problem(limited, 429, "rate_limited")
    retry = int(limited.headers["retry-after"])
    assert 1 <= retry <= 60
    assert body["retry_after"] == retry


async def test_login_limited_per_account_across_addresses(app: Any, factory: Factory) -> None:
    user = await factory.user()
    for i in range(4):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{i + 1}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await login(c, user.username, "Wrong-Password-1")
        if i < 3:
            assert_problem(response, 401)
        else:
            assert_problem(response, 429, "rate_limited")
            assert response.headers["retry-after"]


async def test_register_and_forgot_password_limited(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (
            await client.post(f"{API}/forgot-password", json={"email": "x@example.com"})
        ).status_code == 202
    assert_problem(
        await client.post(f"{API}/forgot-password", json={"email": "x@example.com"}), 429
    )
    for i in range(3):
        response = await client.post(
            f"{API}/register",
            json={
                "username": f"reg{i}",
                "email": f"reg{i}@example.com",
                "password": "Plum-Orchard-Lantern-4",
            },
        )
        assert response.status_code == 201, response.text
    limited = await client.post(
        f"{API}/register",
        json={
            "username": "reg9",
            "email": "reg9@example.com",
            "password": "Plum-Orchard-Lantern-4",
        },
    )
    assert_problem(limited, 429)
    assert limited.headers["retry-after"]


async def test_general_limit_per_principal(app: Any, factory: Factory) -> None:
    user = await factory.user()
    transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        tokens = (await login(c, user.username, user.password)).json()
        statuses = [
            (await c.get(f"{API}/sessions", headers=bearer(tokens["access_token"]))).status_code
            for _ in range(6)
        ]
    assert statuses == [200] * 5 + [429]


async def test_general_limit_on_module_routes(app: Any, factory: Factory) -> None:
    """Module routers mounted in app/main.py carry the per-principal limit too."""
    user = await factory.user()
    transport = httpx.ASGITransport(app=app, client=("192.0.2.78", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        tokens = (await login(c, user.username, user.password)).json()
        statuses = [
            (await c.get("/api/v1/audit-logs", headers=bearer(tokens["access_token"]))).status_code
            for _ in range(6)
        ]
    assert 429 not in statuses[:5] and statuses[5] == 429, statuses


async def test_general_limit_for_guests_and_bad_tokens_per_address(app: Any) -> None:
    """Without a valid token the budget is the client address's: the public sidebar, an
    unknown API path and a request with a forged token all draw on it, and another address
    keeps its own. The 429 is problem+json with Retry-After, like every other refusal."""

    def client(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async with client("192.0.2.90") as c, client("192.0.2.91") as other:
        statuses = [(await c.get("/api/v1/routes/sidebar")).status_code for _ in range(3)]
        statuses.append((await c.get("/api/v1/no-such-thing")).status_code)
        statuses.append((await c.get("/api/v1/users/me", headers=bearer("forged"))).status_code)
        assert statuses == [200, 200, 200, 404, 401]
        limited = await c.get("/api/v1/routes/sidebar")
        body = assert_problem(limited, 429)
        assert body["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert (await other.get("/api/v1/routes/sidebar")).status_code == 200
        # the health endpoints are outside the API prefix: never limited
        assert (await c.get("/health")).status_code == 200


class TestBehindTrustedProxy:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "RATE_LIMIT_ENABLED": True,
            "AUTH_RATE_LIMIT_REQUESTS": 2,
            "TRUSTED_PROXIES": "10.0.0.0/8",
            "LOCKOUT_THRESHOLD": 50,
        }

    async def test_client_address_from_trusted_proxy_only(self, app: Any) -> None:
        async def attempts(peer: str, forwarded: str) -> list[int]:
            transport = httpx.ASGITransport(app=app, client=(peer, 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return [
                    (
                        await c.post(
                            f"{API}/login",
                            json={"username": f"u{i}-{forwarded}", "password": "Wrong-Password-1"},
                            headers={"X-Forwarded-For": forwarded},
                        )
                    ).status_code
                    for i in range(3)
                ]

        # Behind our proxy, each forwarded client has its own budget.
        assert await attempts("10.0.0.5", "198.51.100.1") == [401, 401, 429]
        assert await attempts("10.0.0.5", "198.51.100.2") == [401, 401, 429]
        # From anywhere else the header is ignored: rotating it does not buy more attempts.
        assert await attempts("192.0.2.9", "198.51.100.3") == [401, 401, 429]
        assert await attempts("192.0.2.9", "198.51.100.4") == [429, 429, 429]
