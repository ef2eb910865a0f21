"""SQL for sessions and refresh tokens. No decisions here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.modules.auth.models import AuthSession


async def revoked_session_ids(conn: AsyncConnection) -> set[uuid.UUID]:
    """Revoked sessions that have not yet expired: the ones an access token may still name."""
    rows = await conn.execute(
        select(col(AuthSession.id)).where(col(AuthSession.revoked_at).is_not(None))
    )
    return {row[0] for row in rows}


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def revoke_all_for_user(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        reason: str,
        except_session_id: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        conditions = [col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)]
        if except_session_id is not None:
            conditions.append(col(AuthSession.id) != except_session_id)
        ids = list(
            (await self.session.scalars(select(col(AuthSession.id)).where(*conditions))).all()
        )
        if ids:
            await self.session.execute(
                update(AuthSession)
                .where(col(AuthSession.id).in_(ids))
                .values(revoked_at=now, revoked_reason=reason)
            )
        return ids
