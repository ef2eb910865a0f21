"""SQL for users. No decisions here."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.authz.models import Role, UserRole
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


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> User | None:
        user = await self.session.get(User, user_id)
        if user is None or (user.deleted_at is not None and not include_deleted):
            return None
        return user

    async def get_by_login(self, login: str) -> User | None:
        """By username or email, case-insensitively (both are stored lower-cased)."""
        value = login.strip().lower()
        column = col(User.email) if "@" in value else col(User.username)
        return await self.session.scalar(
            select(User).where(column == value, col(User.deleted_at).is_(None))
        )

    async def exists(self, *, username: str | None = None, email: str | None = None) -> set[str]:
        """Which of the given unique values are taken (deleted users keep theirs)."""
        taken: set[str] = set()
        if username is not None and await self.session.scalar(
            select(col(User.id)).where(col(User.username) == username.lower())
        ):
            taken.add("username")
        if email is not None and await self.session.scalar(
            select(col(User.id)).where(col(User.email) == email.lower())
        ):
            taken.add("email")
        return taken

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def role_ids_by_name(self, names: list[str]) -> dict[str, uuid.UUID]:
        rows = await self.session.execute(
            select(col(Role.name), col(Role.id)).where(col(Role.name).in_(names))
        )
        return {name: role_id for name, role_id in rows.tuples()}

    async def add_roles(
        self, user_id: uuid.UUID, role_ids: list[uuid.UUID], granted_by: uuid.UUID | None
    ) -> None:
        for role_id in role_ids:
            self.session.add(UserRole(user_id=user_id, role_id=role_id, granted_by=granted_by))
        await self.session.flush()
