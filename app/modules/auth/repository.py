"""SQL for sessions and refresh tokens. No decisions here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.core.database import Write, new_id, utcnow
from app.modules.auth.models import AuthSession, RefreshToken

_SESSIONS: Table = AuthSession.__table__  # type: ignore[attr-defined]
_REFRESH_TOKENS: Table = RefreshToken.__table__  # type: ignore[attr-defined]
# Built once: constructing statements costs more than executing these cached ones.
_INSERT_SESSION = insert(_SESSIONS)
_INSERT_REFRESH_TOKEN = insert(_REFRESH_TOKENS)


async def revoked_session_ids(conn: AsyncConnection) -> set[uuid.UUID]:
    """Revoked sessions that have not yet expired: the ones an access token may still name.
    (An access token never outlives its session: each is issued with the session's expiry at
    least REFRESH_TOKEN_EXPIRE_DAYS ahead, so expired sessions need not be remembered.)"""
    rows = await conn.execute(
        select(col(AuthSession.id)).where(
            col(AuthSession.revoked_at).is_not(None), col(AuthSession.expires_at) > utcnow()
        )
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

    # ---- sessions ---------------------------------------------------------------------------
    async def add_session(self, auth_session: AuthSession) -> AuthSession:
        self.session.add(auth_session)
        await self.session.flush()
        return auth_session

    def new_session_writes(
        self,
        *,
        user_id: uuid.UUID,
        expires_at: datetime,
        now: datetime,
        ip: str | None,
        user_agent: str | None,
        token_hash: str,
    ) -> tuple[uuid.UUID, list[Write]]:
        """A new session and its first refresh token as two Core INSERTs for `execute_writes`
        (the login hot path: no ORM objects, no unit-of-work flush). Returns the session id."""
        session_id = new_id()
        created = utcnow()
        session_row = {
            "id": session_id,
            "created_at": created,
            "updated_at": created,
            "user_id": user_id,
            "expires_at": expires_at,
            "last_used_at": now,
            "revoked_at": None,
            "revoked_reason": None,
            "ip": ip,
            "user_agent": user_agent,
        }
        token_row = {
            "id": new_id(),
            "created_at": created,
            "updated_at": created,
            "session_id": session_id,
            "token_hash": token_hash,
            "expires_at": expires_at,
            "used_at": None,
        }
        return session_id, [(_INSERT_SESSION, session_row), (_INSERT_REFRESH_TOKEN, token_row)]

    async def get_session(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def live_sessions(self, user_id: uuid.UUID, *, now: datetime) -> Sequence[AuthSession]:
        return (
            await self.session.scalars(
                select(AuthSession)
                .where(
                    col(AuthSession.user_id) == user_id,
                    col(AuthSession.revoked_at).is_(None),
                    col(AuthSession.expires_at) > now,
                )
                .order_by(col(AuthSession.created_at).desc(), col(AuthSession.id).desc())
            )
        ).all()

    async def revoke_session(self, session_id: uuid.UUID, *, now: datetime, reason: str) -> bool:
        """Revoke one session if it is not revoked yet; True when this call revoked it."""
        result = await self.session.execute(
            update(AuthSession)
            .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return _rowcount(result) == 1

    # ---- refresh tokens ---------------------------------------------------------------------
    async def add_refresh_token(self, token: RefreshToken) -> RefreshToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        return await self.session.scalar(
            select(RefreshToken).where(col(RefreshToken.token_hash) == token_hash)
        )

    async def mark_refresh_token_used(self, token_id: uuid.UUID, *, now: datetime) -> bool:
        """Atomic single use: of two concurrent callers, exactly one sees True."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(col(RefreshToken.id) == token_id, col(RefreshToken.used_at).is_(None))
            .values(used_at=now)
        )
        return _rowcount(result) == 1


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
