"""Authentication: use cases and rules."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.authz.versioning import bump_revocation_version
from app.core.cache import SharedState
from app.core.clock import Clock
from app.modules.auth.repository import SessionRepository, revoked_session_ids


async def read_revoked_session_ids(engine: AsyncEngine) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        return await revoked_session_ids(conn)


async def revoke_user_sessions(
    session: AsyncSession,
    state: SharedState,
    clock: Clock,
    user_id: uuid.UUID,
    *,
    reason: str,
    except_session_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke every live session of a user (deactivation, deletion, password change, logout-all).
    Every process refuses their access tokens once the transaction commits."""
    ids = await SessionRepository(session).revoke_all_for_user(
        user_id, now=clock.now(), reason=reason, except_session_id=except_session_id
    )
    await bump_revocation_version(session, state, ids)
    return ids
