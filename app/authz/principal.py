"""Who is calling: an authenticated user or the anonymous guest, with the effective roles,
groups and permissions flattened once and cached per process (see app/core/cache.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.authz.permissions import PermissionSet
from app.core.cache import SharedState

GUEST_ROLE = "guest"
SUPERADMIN_ROLE = "superadmin"
GUEST_KEY = "__guest__"


@dataclass(frozen=True, slots=True)
class Identity:
    """What the principal needs to know of a user row (supplied by the users module)."""

    id: uuid.UUID
    username: str
    email: str
    is_active: bool
    is_verified: bool
    deleted: bool
    attributes: dict[str, Any]
    profile: dict[str, Any]


IdentitySource = Callable[[AsyncConnection, uuid.UUID], Awaitable[Identity | None]]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID | None
    username: str
    roles: frozenset[str]  # effective role names, inherited ones included
    role_ids: frozenset[uuid.UUID]
    direct_roles: frozenset[str]
    groups: frozenset[str]
    permissions: PermissionSet
    attributes: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    is_active: bool = True
    is_verified: bool = False
    session_id: uuid.UUID | None = None
    authz_version: int = 0
    # Per-principal memo for derived data (merged policies per resource/action, ...): it lives
    # exactly as long as the cached principal, so it is invalidated with it.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_guest(self) -> bool:
        return self.user_id is None

    @property
    def is_superadmin(self) -> bool:
        return SUPERADMIN_ROLE in self.roles

    def has(self, permission: str) -> bool:
        return self.permissions.allows(permission)

    def with_session(self, session_id: uuid.UUID | None) -> Principal:
        """This principal bound to one session; memoised, since it is asked for on every
        request and the principal (with its memo) is dropped when anything changes."""
        key = ("session", session_id)
        bound: Principal | None = self.memo.get(key)
        if bound is None:
            bound = replace(self, session_id=session_id, memo=self.memo)
            self.memo[key] = bound
        return bound


# Roles reachable from a user's direct and group roles, walking inheritance through active
# roles only (an inactive role contributes nothing, not even what it inherits). One statement.
_CLOSURE_CTE = """
    WITH RECURSIVE
    seed(role_id) AS (
        SELECT ur.role_id FROM user_roles ur
        JOIN roles r ON r.id = ur.role_id AND r.is_active
        WHERE ur.user_id = :user_id
        UNION
        SELECT gr.role_id FROM group_members gm
        JOIN groups g ON g.id = gm.group_id AND g.is_active
        JOIN group_roles gr ON gr.group_id = gm.group_id
        JOIN roles r ON r.id = gr.role_id AND r.is_active
        WHERE gm.user_id = :user_id
        UNION
        SELECT r.id FROM roles r WHERE r.name = :role_name AND r.is_active
    ),
    closure(role_id) AS (
        SELECT role_id FROM seed
        UNION
        SELECT rp.parent_id FROM role_parents rp
        JOIN closure c ON rp.role_id = c.role_id
        JOIN roles r ON r.id = rp.parent_id AND r.is_active
    )
"""

_EFFECTIVE_ROLES_SQL = text(
    _CLOSURE_CTE  # noqa: S608 (constant SQL, no input)
    + """
    SELECT r.id AS role_id, r.name AS role_name, p.name AS permission
    FROM closure c
    JOIN roles r ON r.id = c.role_id
    LEFT JOIN role_permissions rp ON rp.role_id = r.id
    LEFT JOIN permissions p ON p.id = rp.permission_id AND p.is_active
    """
).bindparams(bindparam("user_id", type_=Uuid()))

# Everything a principal needs but the identity, in ONE statement (one consistent snapshot):
# the authorization version, the closure with its permissions, direct roles and groups.
_PRINCIPAL_SQL = text(
    _CLOSURE_CTE  # noqa: S608 (constant SQL, no input)
    + """
    SELECT 'p' AS kind, r.id AS role_id, r.name AS name, p.name AS permission
    FROM closure c
    JOIN roles r ON r.id = c.role_id
    LEFT JOIN role_permissions rp ON rp.role_id = r.id
    LEFT JOIN permissions p ON p.id = rp.permission_id AND p.is_active
    UNION ALL
    SELECT 'r', NULL, r.name, NULL FROM user_roles ur
    JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = :user_id
    UNION ALL
    SELECT 'g', NULL, g.name, NULL FROM group_members gm
    JOIN groups g ON g.id = gm.group_id AND g.is_active WHERE gm.user_id = :user_id
    UNION ALL
    SELECT 'v', NULL, CAST(version AS VARCHAR(20)), NULL FROM authz_state WHERE id = 1
    """
).bindparams(bindparam("user_id", type_=Uuid()))

_VERSION_SQL = text("SELECT version FROM authz_state WHERE id = 1")


async def effective_roles_and_permissions(
    conn: AsyncConnection, *, user_id: uuid.UUID | None, role_name: str | None = None
) -> tuple[dict[uuid.UUID, str], set[str]]:
    """{role_id: role_name} of the closure and the union of their active permissions."""
    rows = await conn.execute(
        _EFFECTIVE_ROLES_SQL,
        {"user_id": user_id, "role_name": role_name},
    )
    roles: dict[uuid.UUID, str] = {}
    permissions: set[str] = set()
    for role_id, role_name_, permission in rows:
        roles[_as_uuid(role_id)] = role_name_
        if permission:
            permissions.add(permission)
    return roles, permissions


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class PrincipalStore:
    """Builds principals from the database and serves them from the process cache."""

    def __init__(self, engine: AsyncEngine, state: SharedState, identity_source: IdentitySource):
        self.engine = engine
        self.state = state
        self.identity_source = identity_source

    async def get(self, user_id: uuid.UUID) -> Principal | None:
        cached: Principal | None = self.state.get_principal(user_id)
        if cached is not None:
            return cached
        principal = await self.load(user_id)
        if principal is not None:
            self.state.put_principal(user_id, principal, principal.authz_version)
        return principal

    async def guest(self) -> Principal:
        cached: Principal | None = self.state.get_principal(GUEST_KEY)
        if cached is not None:
            return cached
        principal = await self.load_guest()
        self.state.put_principal(GUEST_KEY, principal, principal.authz_version)
        return principal

    async def load(self, user_id: uuid.UUID) -> Principal | None:
        """Two round trips: the authorization data (version first, in the same snapshot),
        then the identity. Reading the version no later than the data keeps the cache safe: a
        principal is never stored under a version newer than what it was built from."""
        roles: dict[uuid.UUID, str] = {}
        permissions: set[str] = set()
        direct_roles: set[str] = set()
        groups: set[str] = set()
        version = 0
        async with self.engine.connect() as conn:
            rows = await conn.execute(_PRINCIPAL_SQL, {"user_id": user_id, "role_name": None})
            for kind, role_id, name, permission in rows:
                if kind == "p":
                    roles[_as_uuid(role_id)] = name
                    if permission:
                        permissions.add(permission)
                elif kind == "r":
                    direct_roles.add(name)
                elif kind == "g":
                    groups.add(name)
                else:
                    version = int(name)
            identity = await self.identity_source(conn, user_id)
            if identity is None or identity.deleted:
                return None
        return Principal(
            user_id=identity.id,
            username=identity.username,
            email=identity.email,
            roles=frozenset(roles.values()),
            role_ids=frozenset(roles),
            direct_roles=frozenset(direct_roles),
            groups=frozenset(groups),
            permissions=PermissionSet(permissions),
            attributes=dict(identity.attributes or {}),
            profile=identity.profile,
            is_active=identity.is_active,
            is_verified=identity.is_verified,
            authz_version=version,
        )

    async def load_guest(self) -> Principal:
        async with self.engine.connect() as conn:
            version = int((await conn.execute(_VERSION_SQL)).scalar_one())
            roles, permissions = await effective_roles_and_permissions(
                conn, user_id=None, role_name=GUEST_ROLE
            )
        return Principal(
            user_id=None,
            username="guest",
            roles=frozenset(roles.values()),
            role_ids=frozenset(roles),
            direct_roles=frozenset({GUEST_ROLE}),
            groups=frozenset(),
            permissions=PermissionSet(permissions),
            authz_version=version,
        )
