"""Policies: SQL only."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Uuid, bindparam, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.filters import ResourceSpec
from app.authz.models import Policy, Role

_DESCENDANTS = """
    WITH RECURSIVE d(role_id) AS (
        SELECT r.id FROM roles r WHERE r.id = :role_id
        UNION
        SELECT rp.role_id FROM role_parents rp JOIN d ON rp.parent_id = d.role_id
    )
"""
_AFFECTED_WHERE = """
    FROM users u
    WHERE u.deleted_at IS NULL AND (
        u.id IN (SELECT ur.user_id FROM user_roles ur WHERE ur.role_id IN (SELECT role_id FROM d))
        OR u.id IN (
            SELECT gm.user_id FROM group_members gm
            JOIN groups g ON g.id = gm.group_id AND g.is_active
            JOIN group_roles gr ON gr.group_id = gm.group_id
            WHERE gr.role_id IN (SELECT role_id FROM d)
        )
    )
"""
_AFFECTED_SQL = text(
    _DESCENDANTS + "SELECT u.id, u.username " + _AFFECTED_WHERE + " ORDER BY u.username LIMIT :lim"
).bindparams(bindparam("role_id", type_=Uuid()))
_AFFECTED_COUNT_SQL = text(_DESCENDANTS + "SELECT count(*) " + _AFFECTED_WHERE).bindparams(
    bindparam("role_id", type_=Uuid())
)


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def search(
        self,
        *,
        role_id: uuid.UUID | None,
        resource: str | None,
        action: str | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Policy], int]:
        conditions: list[ColumnElement[bool]] = []
        if role_id is not None:
            conditions.append(col(Policy.role_id) == role_id)
        if resource is not None:
            conditions.append(col(Policy.resource) == resource)
        if action is not None:
            conditions.append(col(Policy.action) == action)
        total = await self.session.scalar(
            select(func.count()).select_from(Policy).where(*conditions)
        )
        rows = await self.session.scalars(
            select(Policy)
            .where(*conditions)
            .order_by(
                col(Policy.resource), col(Policy.action), col(Policy.created_at), col(Policy.id)
            )
            .limit(limit)
            .offset(offset)
        )
        return rows.all(), int(total or 0)

    async def get(self, policy_id: uuid.UUID) -> Policy | None:
        return await self.session.get(Policy, policy_id)

    async def add(self, policy: Policy) -> Policy:
        self.session.add(policy)
        await self.session.flush()
        return policy

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, policy: Policy) -> None:
        await self.session.delete(policy)
        await self.session.flush()

    async def role_name(self, role_id: uuid.UUID) -> str | None:
        return await self.session.scalar(select(col(Role.name)).where(col(Role.id) == role_id))

    async def role_ids_by_name(self, names: Sequence[str]) -> dict[str, uuid.UUID]:
        rows = await self.session.execute(
            select(col(Role.name), col(Role.id)).where(col(Role.name).in_(list(names)))
        )
        return {name: role_id for name, role_id in rows}

    async def exists_for(self, role_id: uuid.UUID, resource: str, action: str) -> bool:
        found = await self.session.scalar(
            select(col(Policy.id))
            .where(
                col(Policy.role_id) == role_id,
                col(Policy.resource) == resource,
                col(Policy.action) == action,
            )
            .limit(1)
        )
        return found is not None

    async def affected_users(
        self, role_id: uuid.UUID, limit: int
    ) -> tuple[list[tuple[uuid.UUID, str]], int]:
        rows = await self.session.execute(_AFFECTED_SQL, {"role_id": role_id, "lim": limit})
        users = [(_as_uuid(r[0]), str(r[1])) for r in rows]
        total = await self.session.scalar(_AFFECTED_COUNT_SQL, {"role_id": role_id})
        return users, int(total or 0)

    async def count_difference(
        self,
        resource: ResourceSpec,
        before: ColumnElement[bool],
        after: ColumnElement[bool],
        *,
        within: ColumnElement[bool] | None = None,
    ) -> tuple[int, int]:
        """(rows admitted by `after` but not `before`, rows admitted by `before` only), among
        the rows matching `within` when given."""
        conditions: list[ColumnElement[bool]] = [] if within is None else [within]
        if resource.soft_delete:
            conditions.append(resource.column("deleted_at").is_(None))
        gained = func.coalesce(func.sum(case((after & ~before, 1), else_=0)), 0)
        lost = func.coalesce(func.sum(case((before & ~after, 1), else_=0)), 0)
        row = (
            await self.session.execute(
                select(gained, lost).select_from(resource.table).where(*conditions)
            )
        ).one()
        return int(row[0]), int(row[1])

    async def get_record(self, resource: ResourceSpec, record_id: Any) -> Mapping[str, Any] | None:
        columns = [resource.id_column.label(resource.id_field)]
        columns += [resource.column(f.name).label(f.name) for f in resource.fields]
        if resource.soft_delete:  # not a declared field: the explanation notes a deleted record
            columns.append(resource.column("deleted_at").label("deleted_at"))
        row = (
            (await self.session.execute(select(*columns).where(resource.id_column == record_id)))
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
