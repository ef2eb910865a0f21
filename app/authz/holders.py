"""Who holds a role: the users it is assigned to, directly or through an active group, and the
lock that serialises changes to it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select, union
from sqlmodel import col

from app.authz.models import Group, GroupMember, GroupRole, Role, UserRole


def role_holder_ids(role_name: str) -> Select[tuple[uuid.UUID]]:
    """SELECT of the ids of the users holding `role_name` directly or through an active group
    (callers add their own conditions on the users: active, not deleted)."""
    direct: Select[tuple[uuid.UUID]] = (
        select(col(UserRole.user_id).label("user_id"))
        .join(Role, col(Role.id) == col(UserRole.role_id))
        .where(col(Role.name) == role_name)
    )
    via_group: Select[tuple[uuid.UUID]] = (
        select(col(GroupMember.user_id).label("user_id"))
        .join(Group, (col(Group.id) == col(GroupMember.group_id)) & col(Group.is_active))
        .join(GroupRole, col(GroupRole.group_id) == col(GroupMember.group_id))
        .join(Role, col(Role.id) == col(GroupRole.role_id))
        .where(col(Role.name) == role_name)
    )
    holders = union(direct, via_group).subquery()
    return select(holders.c.user_id)


def role_lock(role_name: str) -> Select[Any]:
    """SELECT ... FOR UPDATE of the role's row: run before a change that depends on who holds the
    role, concurrent changes then run one at a time (PostgreSQL; SQLite serialises writers)."""
    return select(col(Role.id)).where(col(Role.name) == role_name).with_for_update()
