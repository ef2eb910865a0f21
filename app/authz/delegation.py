"""Delegation safety: nobody grants what they do not hold (ARCHITECTURE.md, point 5).

Used on every grant path: adding a permission to a role, assigning a role to a user or a group,
adding a parent role, creating or widening a policy. Super-admins are exempt. A refusal names
the permissions that exceed the caller's and is audited by the caller's service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.principal import Principal
from app.core.errors import Forbidden

# Permissions a role would confer: its own and every active ancestor's (an inactive role confers
# nothing, so it is not walked; a role being granted counts even while inactive, since it may be
# re-activated later by someone else).
_ROLE_CLOSURE_PERMISSIONS_SQL = text(
    """
    WITH RECURSIVE closure(role_id) AS (
        SELECT r.id FROM roles r WHERE r.id IN :role_ids
        UNION
        SELECT rp.parent_id FROM role_parents rp
        JOIN closure c ON rp.role_id = c.role_id
        JOIN roles r ON r.id = rp.parent_id AND r.is_active
    )
    SELECT DISTINCT p.name FROM closure c
    JOIN role_permissions rp ON rp.role_id = c.role_id
    JOIN permissions p ON p.id = rp.permission_id AND p.is_active
    """
).bindparams(bindparam("role_ids", type_=Uuid(), expanding=True))


async def permissions_conferred_by_roles(
    session: AsyncSession, role_ids: Iterable[uuid.UUID]
) -> set[str]:
    ids = list(role_ids)
    if not ids:
        return set()
    rows = await session.execute(_ROLE_CLOSURE_PERMISSIONS_SQL, {"role_ids": ids})
    return {row[0] for row in rows}


def exceeding(principal: Principal, permissions: Iterable[str]) -> list[str]:
    """The permissions in `permissions` that the principal does not hold itself."""
    if principal.is_superadmin:
        return []
    return sorted(p for p in set(permissions) if not principal.permissions.covers(p))


class DelegationDenied(Forbidden):
    code = "delegation_denied"
    title = "Delegation denied"
    # The refusal itself is audited, so the audit row must survive the error.
    keep_changes = True

    def __init__(self, exceeding_permissions: list[str], detail: str | None = None) -> None:
        super().__init__(
            detail
            or "You cannot grant permissions you do not hold: " + ", ".join(exceeding_permissions),
            extra={"exceeding_permissions": exceeding_permissions},
        )


async def ensure_can_grant_permissions(principal: Principal, permissions: Iterable[str]) -> None:
    over = exceeding(principal, permissions)
    if over:
        raise DelegationDenied(over)


async def ensure_can_grant_roles(
    session: AsyncSession, principal: Principal, role_ids: Iterable[uuid.UUID]
) -> None:
    """Raise DelegationDenied when the roles confer anything the principal does not hold."""
    if principal.is_superadmin:
        return
    over = exceeding(principal, await permissions_conferred_by_roles(session, role_ids))
    if over:
        raise DelegationDenied(over)
