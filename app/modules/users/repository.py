"""SQL for users. No decisions here."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from app.modules.users.models import User

_IDENTITY_COLUMNS = tuple(
    col(c)
    for c in (
        User.id,
        User.username,
        User.email,
        User.full_name,
        User.given_name,
        User.family_name,
        User.nickname,
        User.picture_url,
        User.phone,
        User.is_active,
        User.is_verified,
        User.attributes,
        User.deleted_at,
        User.created_at,
        User.updated_at,
        User.last_login_at,
    )
)


async def fetch_identity_row(conn: AsyncConnection, user_id: uuid.UUID) -> dict[str, object] | None:
    """Core (not ORM) on purpose: this runs on the cold path of every principal build."""
    row = (
        (await conn.execute(select(*_IDENTITY_COLUMNS).where(col(User.id) == user_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None
