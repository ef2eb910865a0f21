"""Why a decision came out as it did (ARCHITECTURE.md, authorization model, point 6).

`explain()` answers "may this user do X?" with every path that grants it
(user -> group -> role -> inherited role -> permission, exact or by wildcard) and, when nothing
does, every path that would have granted it but is blocked (an inactive group, role or
permission) or the plain fact that nothing assigned to the user matches. It reads the role
graph directly (Core queries, off the hot path) and applies exactly the rules the principal's
recursive query applies, so its verdict agrees with what requests experience.

`role_effective_permissions()` is the same walk for one role: own and inherited permissions,
each with the role path it comes from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Boolean, String, Uuid, column, select, table
from sqlmodel import col

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
from app.authz.permissions import PermissionSet, is_valid_permission

MAX_PATHS = 200

_users = table(
    "users",
    column("id", Uuid()),
    column("username", String()),
    column("is_active", Boolean()),
    column("deleted_at"),
)


class _Executor(Protocol):
    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class RoleNode:
    id: uuid.UUID
    name: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class PermissionNode:
    id: uuid.UUID
    name: str
    is_active: bool


@dataclass
class RoleGraph:
    roles: dict[uuid.UUID, RoleNode] = field(default_factory=dict)
    parents: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    permissions: dict[uuid.UUID, list[PermissionNode]] = field(default_factory=dict)


async def load_role_graph(conn: _Executor) -> RoleGraph:
    graph = RoleGraph()
    for rid, name, active in (
        await conn.execute(select(col(Role.id), col(Role.name), col(Role.is_active)))
    ).tuples():
        graph.roles[rid] = RoleNode(rid, name, bool(active))
    for rid, pid in (
        await conn.execute(select(col(RoleParent.role_id), col(RoleParent.parent_id)))
    ).tuples():
        graph.parents.setdefault(rid, []).append(pid)
    rows = await conn.execute(
        select(
            col(RolePermission.role_id),
            col(Permission.id),
            col(Permission.name),
            col(Permission.is_active),
        ).join(Permission, col(Permission.id) == col(RolePermission.permission_id))
    )
    for rid, pid, name, active in rows.tuples():
        graph.permissions.setdefault(rid, []).append(PermissionNode(pid, name, bool(active)))
    for parents in graph.parents.values():
        parents.sort(key=lambda p: graph.roles[p].name if p in graph.roles else "")
    for perms in graph.permissions.values():
        perms.sort(key=lambda p: p.name)
    return graph


def matches(held: str, requested: str) -> bool:
    """Does holding `held` (maybe a wildcard) grant `requested`?"""
    return PermissionSet((held,)).allows(requested)


# ---- one role ---------------------------------------------------------------------------
def role_effective_permissions(graph: RoleGraph, role_id: uuid.UUID) -> list[dict[str, Any]]:
    """Own and inherited active permissions of a role, walking active parents only (the role
    itself is walked even while inactive: this is what it confers once active). Each entry:
    {"permission", "permission_id", "inherited", "sources": [{"role", "path": [names]}]}."""
    paths: dict[uuid.UUID, list[uuid.UUID]] = {role_id: [role_id]}
    queue = [role_id]
    while queue:  # breadth first: each role reached by its shortest path
        current = queue.pop(0)
        for parent in graph.parents.get(current, []):
            node = graph.roles.get(parent)
            if node is None or not node.is_active or parent in paths:
                continue
            paths[parent] = [*paths[current], parent]
            queue.append(parent)
    entries: dict[str, dict[str, Any]] = {}
    for rid, path in paths.items():
        for perm in graph.permissions.get(rid, []):
            if not perm.is_active:
                continue
            entry = entries.setdefault(
                perm.name,
                {
                    "permission": perm.name,
                    "permission_id": perm.id,
                    "inherited": True,
                    "sources": [],
                },
            )
            if rid == role_id:
                entry["inherited"] = False
            entry["sources"].append(
                {"role": graph.roles[rid].name, "path": [graph.roles[r].name for r in path]}
            )
    return [entries[name] for name in sorted(entries)]


# ---- one user, one permission -----------------------------------------------------------
@dataclass
class Blocker:
    reason: str  # group_inactive | role_inactive | permission_inactive
    name: str

    def text(self) -> str:
        kind = self.reason.removesuffix("_inactive")
        return f"{kind} {self.name} is inactive"


@dataclass
class GrantPath:
    group: str | None  # None: the role is assigned to the user directly
    roles: list[str]  # assigned role first, then inherited roles up to the holder
    permission: str  # the permission held, maybe a wildcard
    wildcard: bool
    blocked_by: list[Blocker] = field(default_factory=list)

    @property
    def grants(self) -> bool:
        return not self.blocked_by

    def steps(self, username: str) -> str:
        parts = [f"user {username}"]
        if self.group is not None:
            parts.append(f"group {self.group}")
        parts.append(f"role {self.roles[0]}")
        parts.extend(f"inherited role {name}" for name in self.roles[1:])
        parts.append(f"permission {self.permission}" + (" (wildcard)" if self.wildcard else ""))
        return " -> ".join(parts)

    def to_dict(self, username: str) -> dict[str, Any]:
        return {
            "via": "group" if self.group is not None else "direct",
            "group": self.group,
            "roles": self.roles,
            "permission": self.permission,
            "wildcard": self.wildcard,
            "path": self.steps(username),
            "blocked_by": [{"reason": b.reason, "name": b.name} for b in self.blocked_by],
        }


@dataclass
class Explanation:
    user_id: uuid.UUID
    username: str
    permission: str
    user_active: bool
    grants: list[GrantPath]
    blocked: list[GrantPath]
    reasons: list[dict[str, str]]
    permission_known: bool

    @property
    def allowed(self) -> bool:
        return self.user_active and bool(self.grants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "permission": self.permission,
            "allowed": self.allowed,
            "user_active": self.user_active,
            "permission_known": self.permission_known,
            "grants": [p.to_dict(self.username) for p in self.grants],
            "blocked": [p.to_dict(self.username) for p in self.blocked],
            "reasons": self.reasons,
        }

    def render(self) -> str:
        verdict = "ALLOWED" if self.allowed else "DENIED"
        lines = [f"{verdict}: {self.username} -> {self.permission}"]
        if self.grants:
            lines.append("Granted by:")
            lines.extend(f"  {p.steps(self.username)}" for p in self.grants)
        if self.blocked:
            lines.append("Would be granted, but blocked:")
            for p in self.blocked:
                why = "; ".join(b.text() for b in p.blocked_by)
                lines.append(f"  {p.steps(self.username)}  [{why}]")
        if self.reasons:
            lines.append("Reasons:")
            lines.extend(f"  {r['reason']}: {r['message']}" for r in self.reasons)
        return "\n".join(lines)


@dataclass
class _UserRow:
    id: uuid.UUID
    username: str
    is_active: bool
    deleted: bool


async def find_user(conn: _Executor, ref: str | uuid.UUID) -> _UserRow | None:
    """By id, or (for the CLI) by username."""
    user_id: uuid.UUID | None = ref if isinstance(ref, uuid.UUID) else None
    if user_id is None:
        try:
            user_id = uuid.UUID(str(ref))
        except ValueError:
            user_id = None
    condition = (
        _users.c.id == user_id if user_id is not None else _users.c.username == str(ref).lower()
    )
    row = (
        await conn.execute(
            select(_users.c.id, _users.c.username, _users.c.is_active, _users.c.deleted_at).where(
                condition
            )
        )
    ).first()
    if row is None:
        return None
    uid = uuid.UUID(str(row[0]))  # asyncpg hands back its own UUID subclass
    return _UserRow(uid, str(row[1]), bool(row[2]), row[3] is not None)


async def explain(
    conn: _Executor, user_ref: str | uuid.UUID, permission: str
) -> Explanation | None:
    """None when the user does not exist (or is deleted). `permission` must be well formed."""
    if not is_valid_permission(permission):
        raise ValueError(f"not a permission: {permission!r}")
    user = await find_user(conn, user_ref)
    if user is None or user.deleted:
        return None
    graph = await load_role_graph(conn)
    direct = list(
        (
            await conn.execute(
                select(col(UserRole.role_id)).where(col(UserRole.user_id) == user.id)
            )
        ).scalars()
    )
    group_rows = (
        await conn.execute(
            select(col(Group.name), col(Group.is_active), col(GroupRole.role_id))
            .join(GroupMember, col(GroupMember.group_id) == col(Group.id))
            .outerjoin(GroupRole, col(GroupRole.group_id) == col(Group.id))
            .where(col(GroupMember.user_id) == user.id)
            .order_by(col(Group.name))
        )
    ).tuples()
    seeds: list[tuple[str | None, bool, uuid.UUID]] = [
        (None, True, rid) for rid in sorted(direct, key=lambda r: graph.roles[r].name)
    ]
    seeds.extend((gname, bool(gactive), rid) for gname, gactive, rid in group_rows if rid)

    paths: list[GrantPath] = []
    for group, group_active, rid in seeds:
        _walk(graph, permission, group, group_active, [rid], paths)
    grants = [p for p in paths if p.grants]
    blocked = [p for p in paths if not p.grants]

    known = (
        await conn.execute(select(col(Permission.id)).where(col(Permission.name) == permission))
    ).first() is not None
    reasons: list[dict[str, str]] = []
    if not user.is_active:
        reasons.append({"reason": "user_inactive", "message": f"user {user.username} is inactive"})
    if not grants:
        seen: set[tuple[str, str]] = set()
        for p in blocked:
            for b in p.blocked_by:
                if (b.reason, b.name) not in seen:
                    seen.add((b.reason, b.name))
                    reasons.append({"reason": b.reason, "message": b.text()})
        if not blocked:
            reasons.append(
                {
                    "reason": "not_assigned",
                    "message": "no role assigned to the user, directly or through a group,"
                    f" holds {permission} or a wildcard covering it",
                }
            )
        if not known:
            reasons.append(
                {"reason": "unknown_permission", "message": f"{permission} is not in the catalogue"}
            )
    return Explanation(
        user_id=user.id,
        username=user.username,
        permission=permission,
        user_active=user.is_active,
        grants=grants,
        blocked=blocked,
        reasons=reasons,
        permission_known=known,
    )


def _walk(
    graph: RoleGraph,
    permission: str,
    group: str | None,
    group_active: bool,
    chain: list[uuid.UUID],
    out: list[GrantPath],
) -> None:
    if len(out) >= MAX_PATHS:
        return
    rid = chain[-1]
    for perm in graph.permissions.get(rid, []):
        if not matches(perm.name, permission):
            continue
        blockers: list[Blocker] = []
        if group is not None and not group_active:
            blockers.append(Blocker("group_inactive", group))
        blockers.extend(
            Blocker("role_inactive", graph.roles[r].name)
            for r in chain
            if not graph.roles[r].is_active
        )
        if not perm.is_active:
            blockers.append(Blocker("permission_inactive", perm.name))
        out.append(
            GrantPath(
                group=group,
                roles=[graph.roles[r].name for r in chain],
                permission=perm.name,
                wildcard=perm.name != permission,
                blocked_by=blockers,
            )
        )
    for parent in graph.parents.get(rid, []):
        if parent in chain or parent not in graph.roles:
            continue
        _walk(graph, permission, group, group_active, [*chain, parent], out)


def decisions(permissions: PermissionSet, requested: Iterable[str]) -> list[dict[str, Any]]:
    return [{"permission": p, "allowed": permissions.allows(p)} for p in requested]
