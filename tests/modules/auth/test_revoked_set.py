"""The process's set of revoked sessions (app/core/cache.py) stays bounded and never loses a
revocation: a full re-read drops sessions that have expired, and keeps one applied meanwhile."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.core.cache import StateSources
from app.core.database import utcnow
from app.modules.auth.models import AuthSession
from tests.factories import Factory
from tests.modules.auth.conftest import API, bearer, login


async def _logged_out_session(client: httpx.AsyncClient, factory: Factory, runtime: Any) -> Any:
    user = await factory.user()
    tokens = (await login(client, user.username, user.password)).json()
    assert (
        await client.post(f"{API}/logout", headers=bearer(tokens["access_token"]))
    ).status_code == 204
    return runtime.tokens.decode_access_token(tokens["access_token"]).session_id


async def test_a_re_read_drops_revoked_sessions_that_have_expired(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    state = runtime.state
    expired = await _logged_out_session(client, factory, runtime)
    live = await _logged_out_session(client, factory, runtime)
    assert state.is_session_revoked(expired) and state.is_session_revoked(live)
    async with runtime.session_factory() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == expired)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()

    await state.reread_revoked()

    assert not state.is_session_revoked(expired)  # its tokens expired with it
    assert state.is_session_revoked(live)


async def test_a_revocation_applied_during_a_re_read_is_kept(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    state = runtime.state
    real = state.sources
    meanwhile = uuid.uuid4()  # revoked by another process while this one's read was in flight

    async def read_then_hear_of_a_revocation() -> set[uuid.UUID]:
        snapshot = await real.read_revoked_sessions()  # taken before that revocation committed
        await state.sessions_revoked(state.revocation_version + 1, [meanwhile])
        return snapshot

    state.sources = StateSources(real.read_versions, read_then_hear_of_a_revocation)
    try:
        await state.reread_revoked()
    finally:
        state.sources = real
    assert state.is_session_revoked(meanwhile)
