"""Users: use cases and rules."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from app.authz.principal import Identity
from app.modules.users.repository import fetch_identity_row

PROFILE_FIELDS = (
    "id",
    "username",
    "email",
    "full_name",
    "given_name",
    "family_name",
    "nickname",
    "picture_url",
    "phone",
    "is_active",
    "is_verified",
    "attributes",
    "created_at",
    "updated_at",
    "last_login_at",
)


async def load_identity(conn: AsyncConnection, user_id: uuid.UUID) -> Identity | None:
    """The identity source of the principal store (wired in app/main.py)."""
    row = await fetch_identity_row(conn, user_id)
    if row is None:
        return None
    return Identity(
        id=row["id"],  # type: ignore[arg-type]
        username=str(row["username"]),
        email=str(row["email"]),
        is_active=bool(row["is_active"]),
        is_verified=bool(row["is_verified"]),
        deleted=row["deleted_at"] is not None,
        attributes=dict(row["attributes"] or {}),  # type: ignore[call-overload]
        profile={k: row[k] for k in PROFILE_FIELDS},
    )
