"""Authentication: use cases and rules."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from app.modules.auth.repository import revoked_session_ids


async def read_revoked_session_ids(engine: AsyncEngine) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        return await revoked_session_ids(conn)
