"""SQL for users. No decisions here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from app.authz.holders import role_holder_ids, role_lock
from app.authz.models import Group, GroupMember, Role, UserRole
from app.core.database import Write
from app.modules.users.models import LoginAccount, User

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

# Login hot path: statements built once (building one costs more than running a cached one).
_BY_USERNAME = select(User).where(
    col(User.username) == bindparam("b_login"), col(User.deleted_at).is_(None)
)
_BY_EMAIL = select(User).where(
    col(User.email) == bindparam("b_login"), col(User.deleted_at).is_(None)
)
# Parameters name the columns to set (last_login_at, counters, password_hash) besides b_user_id.
_USERS: Table = User.__table__  # type: ignore[attr-defined]
_LOGIN_ACCOUNT = select(*(_USERS.c[field.name] for field in fields(LoginAccount)))
_ACCOUNT_BY_USERNAME = _LOGIN_ACCOUNT.where(
    _USERS.c.username == bindparam("b_login"), _USERS.c.deleted_at.is_(None)
)


def _first_row(
    session: Session, stmt: Select[Any], params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """On the session's connection, past the ORM layer, in one pass through the async bridge."""
    row = session.connection().execute(stmt, params).first()
    return None if row is None else tuple(row)


_ACCOUNT_BY_EMAIL = _LOGIN_ACCOUNT.where(
    _USERS.c.email == bindparam("b_login"), _USERS.c.deleted_at.is_(None)
)
_RECORD_LOGIN = update(_USERS).where(_USERS.c.id == bindparam("b_user_id"))

# Columns a list may be sorted by (the API's whitelist maps onto these).
SORT_COLUMNS: dict[str, Any] = {
    "username": col(User.username),
    "email": col(User.email),
    "full_name": col(User.full_name),
    "created_at": col(User.created_at),
    "updated_at": col(User.updated_at),
    "last_login_at": col(User.last_login_at),
    "is_active": col(User.is_active),
}


async def fetch_identity_row(conn: AsyncConnection, user_id: uuid.UUID) -> dict[str, object] | None:
    """Core (not ORM) on purpose: this runs on the cold path of every principal build."""
    row = (
        (await conn.execute(select(*_IDENTITY_COLUMNS).where(col(User.id) == user_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


@dataclass
class UserQuery:
    q: str | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    role: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = False
    # [(field, descending)], fields from SORT_COLUMNS
    sort: Sequence[tuple[str, bool]] = ()


# The unique columns named in a violation: `UNIQUE constraint failed: users.email` (SQLite),
# `... unique constraint "ix_users_email"` (PostgreSQL).
_UNIQUE_COLUMN_RE = re.compile(r"(?:users\.|ix_users_)(username|email)\b")


class DuplicateValues(Exception):
    """A unique value (username, email) was taken in the meantime by another transaction."""

    def __init__(self, fields: set[str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        fields = set(_UNIQUE_COLUMN_RE.findall(str(exc.orig)))
        if fields:
            raise DuplicateValues(fields) from exc
        raise


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> User | None:
        user = await self.session.get(User, user_id)
        if user is None or (user.deleted_at is not None and not include_deleted):
            return None
        return user

    async def get_many(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
        ids = list(user_ids)
        if not ids:
            return {}
        rows = await self.session.scalars(select(User).where(col(User.id).in_(ids)))
        return {u.id: u for u in rows.all()}

    async def get_by_login(self, login: str) -> User | None:
        """By username or email, case-insensitively (both are stored lower-cased)."""
        value = login.strip().lower()
        stmt = _BY_EMAIL if "@" in value else _BY_USERNAME
        return await self.session.scalar(stmt, {"b_login": value})

    async def get_login_account(self, login: str) -> LoginAccount | None:
        """`get_by_login` for the login itself: only the columns it reads, as a plain value
        (a Core SELECT: no ORM identity map or instance state on the hot path)."""
        value = login.strip().lower()
        stmt = _ACCOUNT_BY_EMAIL if "@" in value else _ACCOUNT_BY_USERNAME
        row = await self.session.run_sync(_first_row, stmt, {"b_login": value})
        return None if row is None else LoginAccount(*row)

    def login_write(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        password_hash: str | None = None,
        reset_counters: bool = True,
    ) -> Write:
        """The UPDATE of a successful login, for `execute_writes` (a Core statement: no ORM
        flush cycle on the hot path)."""
        values: dict[str, Any] = {"b_user_id": user_id, "last_login_at": now}
        if reset_counters:
            values.update(failed_login_count=0, lockout_count=0, locked_until=None)
        if password_hash is not None:
            values["password_hash"] = password_hash
        return _RECORD_LOGIN, values

    async def count_failed_login(self, user_id: uuid.UUID) -> tuple[int, int]:
        """Add one to the user's failed-login counter in the database itself (parallel wrong
        passwords each count); returns (failed_login_count, lockout_count) after the change."""
        row = (
            await self.session.execute(
                update(_USERS)
                .where(_USERS.c.id == user_id)
                .values(failed_login_count=func.coalesce(_USERS.c.failed_login_count, 0) + 1)
                .returning(_USERS.c.failed_login_count, _USERS.c.lockout_count)
            )
        ).one()
        return int(row[0]), int(row[1] or 0)

    async def lock_out(self, user_id: uuid.UUID, *, threshold: int, until: datetime) -> bool:
        """Lock the account if its counter still stands at the threshold: of parallel failures
        that reach it, exactly one locks (and resets the counter)."""
        result = await self.session.execute(
            update(_USERS)
            .where(_USERS.c.id == user_id, _USERS.c.failed_login_count >= threshold)
            .values(
                lockout_count=func.coalesce(_USERS.c.lockout_count, 0) + 1,
                locked_until=until,
                failed_login_count=0,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def exists(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        exclude_id: uuid.UUID | None = None,
    ) -> set[str]:
        """Which of the given unique values are taken (deleted users keep theirs)."""
        taken: set[str] = set()
        for name, column, value in (
            ("username", col(User.username), username),
            ("email", col(User.email), email),
        ):
            if value is None:
                continue
            stmt = select(col(User.id)).where(column == value.lower())
            if exclude_id is not None:
                stmt = stmt.where(col(User.id) != exclude_id)
            if await self.session.scalar(stmt.limit(1)):
                taken.add(name)
        return taken

    async def add(self, user: User) -> User:
        """Insert; DuplicateValues when a concurrent insert took the username or email."""
        self.session.add(user)
        await _flush_unique(self.session)
        return user

    async def flush(self) -> None:
        """Flush; DuplicateValues when a concurrent change took the username or email."""
        await _flush_unique(self.session)

    async def search(self, query: UserQuery, *, limit: int, offset: int) -> tuple[list[User], int]:
        conditions: list[ColumnElement[bool]] = []
        if not query.include_deleted:
            conditions.append(col(User.deleted_at).is_(None))
        if query.q:
            pattern = f"%{_escape_like(query.q.strip().lower())}%"
            conditions.append(
                or_(
                    col(User.username).like(pattern, escape="\\"),
                    col(User.email).like(pattern, escape="\\"),
                    func.lower(col(User.full_name)).like(pattern, escape="\\"),
                )
            )
        if query.is_active is not None:
            conditions.append(col(User.is_active) == query.is_active)
        if query.is_verified is not None:
            conditions.append(col(User.is_verified) == query.is_verified)
        if query.created_after is not None:
            conditions.append(col(User.created_at) >= query.created_after)
        if query.created_before is not None:
            conditions.append(col(User.created_at) <= query.created_before)
        if query.role is not None:
            conditions.append(
                col(User.id).in_(
                    select(col(UserRole.user_id))
                    .join(Role, col(Role.id) == col(UserRole.role_id))
                    .where(col(Role.name) == query.role)
                )
            )
        total = await self.session.scalar(select(func.count()).select_from(User).where(*conditions))
        order: list[Any] = []
        for field, descending in query.sort:
            column = SORT_COLUMNS[field]
            order.append(column.desc() if descending else column.asc())
        if not query.sort:
            order.append(col(User.created_at).desc())
        order.append(col(User.id).asc())  # stable tie-breaker
        rows = await self.session.scalars(
            select(User).where(*conditions).order_by(*order).limit(limit).offset(offset)
        )
        return list(rows.all()), int(total or 0)

    # ---- roles ----------------------------------------------------------------------------
    async def role_ids_by_name(self, names: list[str]) -> dict[str, uuid.UUID]:
        rows = await self.session.execute(
            select(col(Role.name), col(Role.id)).where(col(Role.name).in_(names))
        )
        return {name: role_id for name, role_id in rows.tuples()}

    async def get_role(self, role_id: uuid.UUID) -> Role | None:
        return await self.session.get(Role, role_id)

    async def lock_role(self, role_name: str) -> None:
        """Serialise concurrent changes that depend on who holds `role_name` (PostgreSQL)."""
        await self.session.execute(role_lock(role_name))

    async def role_names_for(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        """Names of each user's directly assigned roles, sorted."""
        return await self._names_by_user(
            user_ids,
            select(col(UserRole.user_id), col(Role.name)).join(
                Role, col(Role.id) == col(UserRole.role_id)
            ),
            col(UserRole.user_id),
            col(Role.name),
        )

    async def group_names_for(self, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        """Names of the groups each user belongs to, sorted."""
        return await self._names_by_user(
            user_ids,
            select(col(GroupMember.user_id), col(Group.name)).join(
                Group, col(Group.id) == col(GroupMember.group_id)
            ),
            col(GroupMember.user_id),
            col(Group.name),
        )

    async def _names_by_user(
        self,
        user_ids: Iterable[uuid.UUID],
        pairs: Select[uuid.UUID, str],
        user_column: Any,
        name_column: Any,
    ) -> dict[uuid.UUID, list[str]]:
        ids = list(user_ids)
        result: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
        if not ids:
            return result
        rows = await self.session.execute(pairs.where(user_column.in_(ids)).order_by(name_column))
        for user_id, name in rows.tuples():
            result[user_id].append(name)
        return result

    async def has_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(col(UserRole.role_id)).where(
                col(UserRole.user_id) == user_id, col(UserRole.role_id) == role_id
            )
        )
        return found is not None

    async def add_roles(
        self, user_id: uuid.UUID, role_ids: list[uuid.UUID], granted_by: uuid.UUID | None
    ) -> None:
        for role_id in role_ids:
            self.session.add(UserRole(user_id=user_id, role_id=role_id, granted_by=granted_by))
        await self.session.flush()

    async def remove_role(self, user_id: uuid.UUID, role_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(UserRole).where(
                col(UserRole.user_id) == user_id, col(UserRole.role_id) == role_id
            )
        )

    async def active_holders_of_role(self, role_name: str) -> set[uuid.UUID]:
        """Active, non-deleted users holding the role directly or through an active group."""
        rows = await self.session.scalars(
            select(col(User.id)).where(
                col(User.id).in_(role_holder_ids(role_name)),
                col(User.is_active),
                col(User.deleted_at).is_(None),
            )
        )
        return set(rows.all())
