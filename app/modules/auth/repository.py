"""SQL for sessions and refresh tokens. No decisions here."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from app.modules.auth.models import AuthSession


async def revoked_session_ids(conn: AsyncConnection) -> set[uuid.UUID]:
    """Revoked sessions that have not yet expired: the ones an access token may still name."""
    rows = await conn.execute(
        select(col(AuthSession.id)).where(col(AuthSession.revoked_at).is_not(None))
    )
    return {row[0] for row in rows}
