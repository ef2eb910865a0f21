from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from app.core.clock import FrozenClock
from app.core.security import token_digest
from app.modules.audit.models import AuditLog
from app.modules.auth.models import AuthSession, RefreshToken
from tests.factories import Factory
from tests.modules.auth.conftest import API, assert_problem, bearer, login


async def pair(
    client: httpx.AsyncClient, factory: Factory, **kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    user = await factory.user(**kwargs)
    response = await login(client, user.username, user.password)
    assert response.status_code == 200, response.text
    return user, response.json()


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/refresh", json={"refresh_token": token})


async def sessions(client: httpx.AsyncClient, access: str) -> httpx.Response:
    return await client.get(f"{API}/sessions", headers=bearer(access))


async def test_refresh_rotates_the_pair(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    _, first = await pair(client, factory)
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "bearer" and second["expires_in"] > 0
    # Same session (family), new tokens; both access tokens belong to it.
    a = runtime.tokens.decode_access_token(first["access_token"])
    b = runtime.tokens.decode_access_token(second["access_token"])
    assert a.session_id == b.session_id
    assert (await sessions(client, second["access_token"])).status_code == 200
    # Stored hashed only.
    async with runtime.session_factory() as session:
        hashes = (await session.scalars(select(RefreshToken.token_hash))).all()
        assert second["refresh_token"] not in hashes
        assert token_digest(second["refresh_token"]) in hashes
    # The rotated-in token works once more.
    assert (await refresh(client, second["refresh_token"])).status_code == 200
    # Each rotation is in the trail, under the session, with its owner as the actor.
    async with runtime.session_factory() as session:
        rotations = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.refresh"))
        ).all()
    assert len(rotations) == 2
    assert {r.resource_id for r in rotations} == {str(a.session_id)}
    assert {r.actor_id for r in rotations} == {a.user_id}


async def test_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    owner, first = await pair(client, factory)
    second = (await refresh(client, first["refresh_token"])).json()
    reuse = await refresh(client, first["refresh_token"])
    assert_problem(reuse, 401, "refresh_token_reused")
    # The token rotated in after the stolen one is dead too, and so are the access tokens.
    assert_problem(await refresh(client, second["refresh_token"]), 401)
    assert_problem(await sessions(client, second["access_token"]), 401)
    assert_problem(await sessions(client, first["access_token"]), 401)
    async with runtime.session_factory() as session:
        events = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.refresh_reuse"))
        ).all()
        assert len(events) >= 1 and events[0].outcome == "failure"
        assert events[0].actor_username == owner.username
        revoked = (await session.scalars(select(AuthSession))).all()
        assert [s.revoked_reason for s in revoked] == ["refresh_reuse"]


async def test_concurrent_refresh_at_most_one_succeeds(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    _, first = await pair(client, factory)
    token = first["refresh_token"]
    results = await asyncio.gather(refresh(client, token), refresh(client, token))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) <= 1, [r.text for r in results]
    assert all(s in (200, 401) for s in statuses), [r.text for r in results]


async def test_unknown_and_expired_refresh_tokens(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, runtime: Any
) -> None:
    assert_problem(await refresh(client, "not-a-token"), 401)
    _, first = await pair(client, factory)
    clock.advance(days=runtime.settings.REFRESH_TOKEN_EXPIRE_DAYS, seconds=1)
    assert_problem(await refresh(client, first["refresh_token"]), 401, "session_revoked")


async def test_refresh_slides_the_session_expiry(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, runtime: Any
) -> None:
    _, first = await pair(client, factory)
    days = runtime.settings.REFRESH_TOKEN_EXPIRE_DAYS
    clock.advance(days=days - 1)
    second = await refresh(client, first["refresh_token"])
    assert second.status_code == 200
    clock.advance(days=2)  # past the first expiry, within the renewed one
    assert (await refresh(client, second.json()["refresh_token"])).status_code == 200


async def test_logout_kills_the_access_token_at_once(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    _, tokens = await pair(client, factory)
    access = tokens["access_token"]
    assert (await sessions(client, access)).status_code == 200
    response = await client.post(f"{API}/logout", headers=bearer(access))
    assert response.status_code == 204
    body = assert_problem(await sessions(client, access), 401)
    assert body["type"].endswith("not_authenticated")
    assert_problem(await refresh(client, tokens["refresh_token"]), 401)
    async with runtime.session_factory() as session:
        events = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.logout"))
        ).all()
        assert len(events) == 1


async def test_logout_requires_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"{API}/logout"), 401)
    assert_problem(await client.post(f"{API}/logout-all"), 401)
    assert_problem(await client.get(f"{API}/sessions"), 401)


async def test_logout_leaves_other_sessions_alone(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user, first = await pair(client, factory)
    second = (await login(client, user.username, user.password)).json()
    assert (
        await client.post(f"{API}/logout", headers=bearer(first["access_token"]))
    ).status_code == 204
    assert (await sessions(client, second["access_token"])).status_code == 200


async def test_list_and_delete_own_sessions(client: httpx.AsyncClient, factory: Factory) -> None:
    user, first = await pair(client, factory)
    second = (await login(client, user.username, user.password)).json()
    listed = (await sessions(client, first["access_token"])).json()
    assert len(listed) == 2
    assert sum(1 for s in listed if s["current"]) == 1
    other = next(s for s in listed if not s["current"])
    assert "token_hash" not in other and "user_id" not in other

    # Someone else's session, an unknown id: 404 (no oracle).
    _, stranger = await pair(client, factory)
    stranger_session = (await sessions(client, stranger["access_token"])).json()[0]["id"]
    assert_problem(
        await client.delete(
            f"{API}/sessions/{stranger_session}", headers=bearer(first["access_token"])
        ),
        404,
    )
    assert_problem(
        await client.delete(
            f"{API}/sessions/00000000-0000-0000-0000-000000000000",
            headers=bearer(first["access_token"]),
        ),
        404,
    )
    assert (await sessions(client, stranger["access_token"])).status_code == 200

    response = await client.delete(
        f"{API}/sessions/{other['id']}", headers=bearer(first["access_token"])
    )
    assert response.status_code == 204
    assert_problem(await sessions(client, second["access_token"]), 401)
    assert len((await sessions(client, first["access_token"])).json()) == 1
    # Deleting it again: it is no longer a live session.
    assert_problem(
        await client.delete(f"{API}/sessions/{other['id']}", headers=bearer(first["access_token"])),
        404,
    )


async def test_logout_all(client: httpx.AsyncClient, factory: Factory) -> None:
    user, first = await pair(client, factory)
    second = (await login(client, user.username, user.password)).json()
    _, stranger = await pair(client, factory)
    response = await client.post(f"{API}/logout-all", headers=bearer(first["access_token"]))
    assert response.status_code == 204
    for tokens in (first, second):
        assert_problem(await sessions(client, tokens["access_token"]), 401)
        assert_problem(await refresh(client, tokens["refresh_token"]), 401)
    assert (await sessions(client, stranger["access_token"])).status_code == 200


async def test_refresh_refused_for_deactivated_user(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    from app.modules.users.models import User

    user, tokens = await pair(client, factory)
    async with runtime.session_factory() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.is_active = False
        await session.commit()
    assert_problem(await refresh(client, tokens["refresh_token"]), 401)
