from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlmodel import col

from app.authz.models import AuthzState, Role, UserRole
from app.modules.navigation.dependencies import SIDEBAR_CACHE
from app.modules.navigation.models import NavModule, NavRoute
from app.modules.navigation.seed import DEFAULT_MODULES, DEFAULT_ROUTES, seed
from tests.modules.navigation.conftest import API, _client_for
from tests.modules.navigation.test_sidebar import outline, sidebar


async def _counts(app: Any) -> tuple[int, int]:
    async with app.state.runtime.session_factory() as session:
        modules = await session.scalar(select(func.count()).select_from(NavModule))
        routes = await session.scalar(select(func.count()).select_from(NavRoute))
        return int(modules or 0), int(routes or 0)


async def test_seed_is_idempotent_and_keeps_edits(app: Any, su: httpx.AsyncClient) -> None:
    assert await _counts(app) == (len(DEFAULT_MODULES), len(DEFAULT_ROUTES))
    home = (await sidebar(su))[0]["routes"][0]
    assert (await su.put(f"{API}/routes/{home['id']}", json={"label": "Start"})).status_code == 200
    removed = next(r for r in (await sidebar(su))[2]["routes"] if r["name"] == "audit")
    assert (await su.delete(f"{API}/routes/{removed['id']}")).status_code == 204

    runtime = app.state.runtime
    for _ in range(2):
        async with runtime.session_factory() as session:
            await seed(session, settings=runtime.settings, hasher=None, demo=False, report=None)
            await session.commit()
    # The deleted route is back (missing by name), the edited one kept its label.
    assert await _counts(app) == (len(DEFAULT_MODULES), len(DEFAULT_ROUTES))
    async with runtime.session_factory() as session:
        label = await session.scalar(
            select(col(NavRoute.label)).where(col(NavRoute.name) == "home")
        )
    assert label == "Start"


async def test_sidebar_served_from_cache_until_version_moves(
    app: Any, client: httpx.AsyncClient
) -> None:
    runtime = app.state.runtime
    first = await client.get(f"{API}/routes/sidebar")
    cache = runtime.services[SIDEBAR_CACHE]
    snapshot = cache.snapshot
    assert snapshot is not None and snapshot.version == runtime.state.authz_version
    assert len(snapshot.rendered) == 1
    second = await client.get(f"{API}/routes/sidebar")
    assert second.content == first.content and cache.snapshot is snapshot

    # Another process changes the navigation: the data and the version move in the database.
    async with runtime.session_factory() as session:
        await session.execute(
            update(NavRoute).where(col(NavRoute.name) == "home").values(label="Welcome")
        )
        await session.execute(
            update(AuthzState).where(col(AuthzState.id) == 1).values(version=AuthzState.version + 1)
        )
        await session.commit()
    # Once this process learns of the new version (pub/sub message or poll), the next
    # request is fresh.
    await runtime.state.resync()
    body = await sidebar(client)
    assert body[0]["routes"][0]["label"] == "Welcome"
    assert cache.snapshot is not snapshot
    assert outline(body) == {"general": ["home"], "patients": ["patient-lookup"]}


async def test_sidebar_follows_a_role_change(app: Any, factory: Any) -> None:
    user = await factory.user(roles=["user"])
    client = await _client_for(factory, user)
    try:
        assert "administration" not in outline(await sidebar(client))
        runtime = app.state.runtime
        async with runtime.session_factory() as session:
            role = await session.scalar(select(Role).where(col(Role.name) == "admin"))
            assert role is not None
            session.add(UserRole(user_id=user.id, role_id=role.id))
            state = await session.get(AuthzState, 1)
            assert state is not None
            state.version += 1
            await session.commit()
            version = state.version
        await runtime.state.authz_changed(version)
        assert "administration" in outline(await sidebar(client))
    finally:
        await client.aclose()
