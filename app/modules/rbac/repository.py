"""SQL for permissions, roles, role inheritance, groups and memberships. No decisions here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    Uuid,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.holders import role_holder_ids, role_lock
from app.authz.models import (
    Group,
    GroupMember,
    GroupRole,
    Permission,
    Role,
    RoleParent,
    RolePermission,
    UserRole,
)
from app.core.database import utcnow

# The users table as seen from here: a lightweight Core reference (the users module owns it).
_users = table(
    "users",
    column("id", Uuid()),
    column("username", String()),
    column("email", String()),
    column("full_name", String()),
    column("is_active", Boolean()),
    column("deleted_at"),
)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


class RbacRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    def add(self, row: Any) -> None:
        self.session.add(row)

    async def delete(self, row: Any) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def _exists(self, *conditions: ColumnElement[bool]) -> bool:
        return (await self.session.scalar(select(func.count()).where(*conditions))) != 0

    # ---- permissions --------------------------------------------------------------------
    async def get_permission(self, permission_id: uuid.UUID) -> Permission | None:
        return await self.session.get(Permission, permission_id)

    async def permission_by_name(self, name: str) -> Permission | None:
        return await self.session.scalar(select(Permission).where(col(Permission.name) == name))

    async def permissions_by_refs(
        self, ids: Sequence[uuid.UUID], names: Sequence[str]
    ) -> list[Permission]:
        conditions: list[ColumnElement[bool]] = []
        if ids:
            conditions.append(col(Permission.id).in_(list(ids)))
        if names:
            conditions.append(col(Permission.name).in_(list(names)))
        if not conditions:
            return []
        return list((await self.session.scalars(select(Permission).where(or_(*conditions)))).all())

    async def list_permissions(
        self,
        *,
        q: str | None,
        resource: str | None,
        category: str | None,
        is_active: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Permission], int]:
        conditions: list[ColumnElement[bool]] = []
        if q:
            pattern = _like(q)
            conditions.append(
                or_(
                    func.lower(col(Permission.name)).like(pattern, escape="\\"),
                    func.lower(func.coalesce(col(Permission.description), "")).like(
                        pattern, escape="\\"
                    ),
                )
            )
        if resource is not None:
            conditions.append(col(Permission.resource) == resource)
        if category is not None:
            conditions.append(col(Permission.category) == category)
        if is_active is not None:
            conditions.append(col(Permission.is_active) == is_active)
        total = await self.session.scalar(
            select(func.count()).select_from(Permission).where(*conditions)
        )
        rows = await self.session.scalars(
            select(Permission)
            .where(*conditions)
            .order_by(col(Permission.name), col(Permission.id))
            .limit(limit)
            .offset(offset)
        )
        return list(rows.all()), int(total or 0)

    async def permissions_of_resource(self, resource: str) -> list[Permission]:
        rows = await self.session.scalars(
            select(Permission)
            .where(col(Permission.resource) == resource)
            .order_by(col(Permission.name), col(Permission.id))
        )
        return list(rows.all())

    async def roles_holding_permission(self, permission_id: uuid.UUID) -> list[str]:
        rows = await self.session.scalars(
            select(col(Role.name))
            .join(RolePermission, col(RolePermission.role_id) == col(Role.id))
            .where(col(RolePermission.permission_id) == permission_id)
            .order_by(col(Role.name))
        )
        return list(rows.all())

    # ---- roles --------------------------------------------------------------------------
    async def get_role(self, role_id: uuid.UUID) -> Role | None:
        return await self.session.get(Role, role_id)

    async def role_by_name(self, name: str) -> Role | None:
        return await self.session.scalar(select(Role).where(col(Role.name) == name))

    async def roles_by_refs(self, ids: Sequence[uuid.UUID], names: Sequence[str]) -> list[Role]:
        conditions: list[ColumnElement[bool]] = []
        if ids:
            conditions.append(col(Role.id).in_(list(ids)))
        if names:
            conditions.append(col(Role.name).in_(list(names)))
        if not conditions:
            return []
        return list((await self.session.scalars(select(Role).where(or_(*conditions)))).all())

    async def list_roles(
        self, *, q: str | None, is_active: bool | None, limit: int, offset: int
    ) -> tuple[list[Role], int]:
        conditions: list[ColumnElement[bool]] = []
        if q:
            pattern = _like(q)
            conditions.append(
                or_(
                    func.lower(col(Role.name)).like(pattern, escape="\\"),
                    func.lower(func.coalesce(col(Role.description), "")).like(pattern, escape="\\"),
                )
            )
        if is_active is not None:
            conditions.append(col(Role.is_active) == is_active)
        total = await self.session.scalar(select(func.count()).select_from(Role).where(*conditions))
        rows = await self.session.scalars(
            select(Role)
            .where(*conditions)
            .order_by(col(Role.name), col(Role.id))
            .limit(limit)
            .offset(offset)
        )
        return list(rows.all()), int(total or 0)

    async def role_permissions(
        self, role_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Permission]]:
        result: dict[uuid.UUID, list[Permission]] = {rid: [] for rid in role_ids}
        if not role_ids:
            return result
        rows = await self.session.execute(
            select(col(RolePermission.role_id), Permission)
            .join(Permission, col(Permission.id) == col(RolePermission.permission_id))
            .where(col(RolePermission.role_id).in_(list(role_ids)))
            .order_by(col(Permission.name))
        )
        for role_id, permission in rows.tuples():
            result[role_id].append(permission)
        return result

    async def role_parents(self, role_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Role]]:
        result: dict[uuid.UUID, list[Role]] = {rid: [] for rid in role_ids}
        if not role_ids:
            return result
        rows = await self.session.execute(
            select(col(RoleParent.role_id), Role)
            .join(Role, col(Role.id) == col(RoleParent.parent_id))
            .where(col(RoleParent.role_id).in_(list(role_ids)))
            .order_by(col(Role.name))
        )
        for role_id, parent in rows.tuples():
            result[role_id].append(parent)
        return result

    async def has_role_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> bool:
        return await self._exists(
            col(RolePermission.role_id) == role_id,
            col(RolePermission.permission_id) == permission_id,
        )

    async def add_role_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> None:
        await self.session.execute(
            insert(RolePermission).values(
                role_id=role_id, permission_id=permission_id, created_at=utcnow()
            )
        )

    async def remove_role_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(RolePermission).where(
                col(RolePermission.role_id) == role_id,
                col(RolePermission.permission_id) == permission_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def has_parent(self, role_id: uuid.UUID, parent_id: uuid.UUID) -> bool:
        return await self._exists(
            col(RoleParent.role_id) == role_id, col(RoleParent.parent_id) == parent_id
        )

    async def add_parent(self, role_id: uuid.UUID, parent_id: uuid.UUID) -> None:
        await self.session.execute(
            insert(RoleParent).values(role_id=role_id, parent_id=parent_id, created_at=utcnow())
        )

    async def remove_parent(self, role_id: uuid.UUID, parent_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(RoleParent).where(
                col(RoleParent.role_id) == role_id, col(RoleParent.parent_id) == parent_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def parent_edges(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        rows = await self.session.execute(
            select(col(RoleParent.role_id), col(RoleParent.parent_id))
        )
        return list(rows.tuples())

    async def role_names(self, role_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not role_ids:
            return {}
        rows = await self.session.execute(
            select(col(Role.id), col(Role.name)).where(col(Role.id).in_(list(role_ids)))
        )
        return dict(rows.tuples().all())

    async def role_holders(self, role_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        users = await self.session.scalars(
            select(col(UserRole.user_id)).where(col(UserRole.role_id) == role_id)
        )
        groups = await self.session.scalars(
            select(col(GroupRole.group_id)).where(col(GroupRole.role_id) == role_id)
        )
        return list(users.all()), list(groups.all())

    async def role_children(self, role_id: uuid.UUID) -> list[str]:
        """Names of the roles that inherit from `role_id`."""
        names = await self.session.scalars(
            select(col(Role.name))
            .join(RoleParent, col(RoleParent.role_id) == col(Role.id))
            .where(col(RoleParent.parent_id) == role_id)
            .order_by(col(Role.name))
        )
        return list(names.all())

    async def unassign_role_everywhere(self, role_id: uuid.UUID) -> None:
        """Every user, group and child role lets go of the role."""
        await self.session.execute(delete(UserRole).where(col(UserRole.role_id) == role_id))
        await self.session.execute(delete(GroupRole).where(col(GroupRole.role_id) == role_id))
        await self.session.execute(delete(RoleParent).where(col(RoleParent.parent_id) == role_id))

    # ---- groups -------------------------------------------------------------------------
    async def get_group(self, group_id: uuid.UUID) -> Group | None:
        return await self.session.get(Group, group_id)

    async def group_by_name(self, name: str) -> Group | None:
        return await self.session.scalar(select(Group).where(col(Group.name) == name))

    async def list_groups(
        self, *, q: str | None, is_active: bool | None, limit: int, offset: int
    ) -> tuple[list[Group], int]:
        conditions: list[ColumnElement[bool]] = []
        if q:
            conditions.append(func.lower(col(Group.name)).like(_like(q), escape="\\"))
        if is_active is not None:
            conditions.append(col(Group.is_active) == is_active)
        total = await self.session.scalar(
            select(func.count()).select_from(Group).where(*conditions)
        )
        rows = await self.session.scalars(
            select(Group)
            .where(*conditions)
            .order_by(col(Group.name), col(Group.id))
            .limit(limit)
            .offset(offset)
        )
        return list(rows.all()), int(total or 0)

    async def group_roles(self, group_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Role]]:
        result: dict[uuid.UUID, list[Role]] = {gid: [] for gid in group_ids}
        if not group_ids:
            return result
        rows = await self.session.execute(
            select(col(GroupRole.group_id), Role)
            .join(Role, col(Role.id) == col(GroupRole.role_id))
            .where(col(GroupRole.group_id).in_(list(group_ids)))
            .order_by(col(Role.name))
        )
        for group_id, role in rows.tuples():
            result[group_id].append(role)
        return result

    async def group_role_ids(self, group_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(col(GroupRole.role_id)).where(col(GroupRole.group_id) == group_id)
        )
        return list(rows.all())

    async def member_counts(self, group_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not group_ids:
            return {}
        rows = await self.session.execute(
            select(col(GroupMember.group_id), func.count())
            .where(col(GroupMember.group_id).in_(list(group_ids)))
            .group_by(col(GroupMember.group_id))
        )
        return {gid: int(n) for gid, n in rows.tuples()}

    async def has_group_role(self, group_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        return await self._exists(
            col(GroupRole.group_id) == group_id, col(GroupRole.role_id) == role_id
        )

    async def add_group_role(self, group_id: uuid.UUID, role_id: uuid.UUID) -> None:
        await self.session.execute(
            insert(GroupRole).values(group_id=group_id, role_id=role_id, created_at=utcnow())
        )

    async def remove_group_role(self, group_id: uuid.UUID, role_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(GroupRole).where(
                col(GroupRole.group_id) == group_id, col(GroupRole.role_id) == role_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def is_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return await self._exists(
            col(GroupMember.group_id) == group_id, col(GroupMember.user_id) == user_id
        )

    async def add_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.session.execute(
            insert(GroupMember).values(group_id=group_id, user_id=user_id, created_at=utcnow())
        )

    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(GroupMember).where(
                col(GroupMember.group_id) == group_id, col(GroupMember.user_id) == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def member_ids(self, group_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(col(GroupMember.user_id)).where(col(GroupMember.group_id) == group_id)
        )
        return list(rows.all())

    async def members_page(
        self, group_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        total = await self.session.scalar(
            select(func.count())
            .select_from(GroupMember)
            .join(_users, _users.c.id == col(GroupMember.user_id))
            .where(col(GroupMember.group_id) == group_id, _users.c.deleted_at.is_(None))
        )
        rows = await self.session.execute(
            select(
                _users.c.id,
                _users.c.username,
                _users.c.email,
                _users.c.full_name,
                _users.c.is_active,
                col(GroupMember.created_at).label("joined_at"),
            )
            .join(GroupMember, col(GroupMember.user_id) == _users.c.id)
            .where(col(GroupMember.group_id) == group_id, _users.c.deleted_at.is_(None))
            .order_by(_users.c.username, _users.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [dict(r) for r in rows.mappings()], int(total or 0)

    async def groups_of_user(self, user_id: uuid.UUID) -> list[Group]:
        rows = await self.session.scalars(
            select(Group)
            .join(GroupMember, col(GroupMember.group_id) == col(Group.id))
            .where(col(GroupMember.user_id) == user_id)
            .order_by(col(Group.name), col(Group.id))
        )
        return list(rows.all())

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(_users.c.id).where(_users.c.id == user_id, _users.c.deleted_at.is_(None))
        )
        return found is not None

    # ---- super-admin holders --------------------------------------------------------------
    async def lock_role(self, role_name: str) -> None:
        """Serialise concurrent changes that depend on who holds `role_name` (PostgreSQL)."""
        await self.session.execute(role_lock(role_name))

    async def active_holders_of_role(self, role_name: str) -> set[uuid.UUID]:
        """Active, non-deleted users holding the role directly or through an active group."""
        rows = await self.session.scalars(
            select(_users.c.id).where(
                _users.c.id.in_(role_holder_ids(role_name)),
                _users.c.is_active.is_(True),
                _users.c.deleted_at.is_(None),
            )
        )
        return set(rows.all())

    async def group_has_role_named(self, group_id: uuid.UUID, role_name: str) -> bool:
        return await self._exists(
            col(GroupRole.group_id) == group_id,
            col(GroupRole.role_id) == col(Role.id),
            col(Role.name) == role_name,
        )
