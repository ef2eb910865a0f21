"""Bumping the authorization and revocation versions inside the caller's transaction.

The bump is an UPDATE in the same transaction as the change, so a cache can never see the new
version without the change (or the reverse); processes are told after the commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from app.authz.models import AuthzState
from app.core.cache import SharedState
from app.core.database import after_commit


async def read_versions(engine: AsyncEngine) -> tuple[int, int]:
    """(authz version, revocation version): polled by every process (app/core/cache.py)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(col(AuthzState.version), col(AuthzState.revocation_version)))
        ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def bump_authz_version(session: AsyncSession, state: SharedState) -> None:
    """Call from any service whose change alters what some principal may do."""
    if session.info.get("authz_bumped"):
        return
    result = await session.execute(
        update(AuthzState)
        .where(col(AuthzState.id) == 1)
        .values(version=col(AuthzState.version) + 1)
        .returning(col(AuthzState.version))
    )
    version = int(result.scalar_one())
    session.info["authz_bumped"] = True

    async def publish() -> None:
        await state.authz_changed(version)

    after_commit(session, publish)


async def bump_revocation_version(
    session: AsyncSession, state: SharedState, session_ids: Sequence[uuid.UUID]
) -> None:
    """Call in the transaction that revokes sessions; every process refuses them after commit."""
    if not session_ids:
        return
    result = await session.execute(
        update(AuthzState)
        .where(col(AuthzState.id) == 1)
        .values(revocation_version=col(AuthzState.revocation_version) + 1)
        .returning(col(AuthzState.revocation_version))
    )
    version = int(result.scalar_one())
    ids = list(session_ids)

    async def publish() -> None:
        await state.sessions_revoked(version, ids)

    after_commit(session, publish)
