"""GET/PATCH /users/me and /users/me/activity."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event

from tests.factories import Factory
from tests.modules.users.helpers import API, assert_problem, make_role


async def test_me_requires_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/me"), 401)
    assert_problem(await client.patch(f"{API}/me", json={"nickname": "x"}), 401)
    assert_problem(await client.get(f"{API}/me/activity"), 401)


async def test_me_requires_profile_permissions(factory: Factory, runtime: Any) -> None:
    await make_role(runtime, "no_profile", ["audit:read"])
    user = await factory.logged_in(roles=["no_profile"])
    c = await factory.client_for(user)
    body = assert_problem(await c.get(f"{API}/me"), 403, "permission_denied")
    assert body["missing_permissions"] == ["profile:read"]
    assert_problem(await c.patch(f"{API}/me", json={"nickname": "x"}), 403)


async def test_me_returns_profile_roles_and_permissions(factory: Factory) -> None:
    user = await factory.logged_in(
        full_name="Ada Lovelace", attributes={"department": "cardiology"}
    )
    c = await factory.client_for(user)
    response = await c.get(f"{API}/me")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(user.id)
    assert body["username"] == user.username
    assert body["full_name"] == "Ada Lovelace"
    assert body["attributes"] == {"department": "cardiology"}
    assert body["roles"] == ["user"]
    assert "profile:read" in body["permissions"]
    assert "password_hash" not in body and "failed_login_count" not in body
    assert response.headers["cache-control"] == "no-store"


async def test_me_is_served_without_a_database_query(factory: Factory, runtime: Any) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    assert (await c.get(f"{API}/me")).status_code == 200  # warms the principal cache
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            assert (await c.get(f"{API}/me")).status_code == 200
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    assert statements == []


async def test_patch_me_updates_profile_and_is_seen_by_get(factory: Factory) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    assert (await c.get(f"{API}/me")).json()["nickname"] is None  # cached now
    response = await c.patch(
        f"{API}/me",
        json={
            "given_name": "Grace",
            "family_name": "Hopper",
            "nickname": "amazing",
            "picture_url": "https://example.com/g.png",
            "full_name": "Grace Hopper",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["nickname"] == "amazing"
    body = (await c.get(f"{API}/me")).json()  # the cached principal was invalidated
    assert body["given_name"] == "Grace" and body["family_name"] == "Hopper"
    assert body["picture_url"] == "https://example.com/g.png"
    assert body["full_name"] == "Grace Hopper"


async def test_patch_me_refuses_bad_url_and_privileged_fields(factory: Factory) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    body = assert_problem(
        await c.patch(f"{API}/me", json={"picture_url": "javascript:alert(1)"}), 422
    )
    assert body["errors"][0]["field"] == "picture_url"
    assert_problem(await c.patch(f"{API}/me", json={"picture_url": "ftp://x.org/a"}), 422)
    for field, value in (("is_active", False), ("username", "root"), ("attributes", {"a": "b"})):
        body = assert_problem(await c.patch(f"{API}/me", json={field: value}), 422)
        assert body["errors"][0]["field"] == field
    assert (await c.get(f"{API}/me")).json()["username"] == user.username


async def test_me_activity_lists_own_history(factory: Factory) -> None:
    user = await factory.logged_in()
    other = await factory.logged_in()
    c = await factory.client_for(user)
    await c.patch(f"{API}/me", json={"nickname": "one"})
    await c.patch(f"{API}/me", json={"nickname": "two"})
    oc = await factory.client_for(other)
    await oc.patch(f"{API}/me", json={"nickname": "other"})
    response = await c.get(f"{API}/me/activity", params={"limit": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["limit"] == 1 and len(body["items"]) == 1
    assert body["total"] >= 2
    newest = body["items"][0]
    assert newest["action"] == "user.profile_update"
    assert newest["changes"]["nickname"] == {"before": "one", "after": "two"}
    everything = (await c.get(f"{API}/me/activity")).json()["items"]
    assert all(
        e["actor_id"] == str(user.id) or e["resource_id"] == str(user.id) for e in everything
    )
