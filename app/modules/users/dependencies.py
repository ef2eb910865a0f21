"""FastAPI dependencies of the users module: list query parsing and the deleted-users gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.authz.dependencies import require_permission
from app.authz.principal import Principal
from app.core.errors import Forbidden, ValidationFailed
from app.core.inputs import NO_NUL, UTCDatetime
from app.modules.users.repository import SORT_COLUMNS, UserQuery

UsersRead = Annotated[Principal, Depends(require_permission("user:read"))]
UsersCreate = Annotated[Principal, Depends(require_permission("user:create"))]
UsersUpdate = Annotated[Principal, Depends(require_permission("user:update"))]
UsersDelete = Annotated[Principal, Depends(require_permission("user:delete"))]
ProfileRead = Annotated[Principal, Depends(require_permission("profile:read"))]
ProfileUpdate = Annotated[Principal, Depends(require_permission("profile:update"))]

READ_DELETED = "user:read_deleted"
SORT_FIELDS = tuple(SORT_COLUMNS)


def parse_sort(value: str | None) -> list[tuple[str, bool]]:
    """`-created_at,username` -> [("created_at", True), ("username", False)]."""
    if not value:
        return []
    result: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for raw in value.split(","):
        item = raw.strip()
        descending = item.startswith("-")
        name = item.lstrip("+-")
        if name not in SORT_COLUMNS:
            raise ValidationFailed.for_field(
                "sort",
                f"Cannot sort by {name[:40]!r}; allowed: {', '.join(SORT_FIELDS)}",
                code="invalid_sort",
            )
        if name not in seen:
            seen.add(name)
            result.append((name, descending))
    return result


async def include_deleted_allowed(
    principal: UsersRead,
    include_deleted: Annotated[
        bool, Query(description="Also list soft-deleted users (needs user:read_deleted)")
    ] = False,
) -> bool:
    """Deleted users are only shown when asked for and the caller holds user:read_deleted."""
    if include_deleted and not principal.has(READ_DELETED):
        raise Forbidden(
            f"Missing permission: {READ_DELETED}",
            code="permission_denied",
            extra={"missing_permissions": [READ_DELETED]},
        )
    return include_deleted


IncludeDeleted = Annotated[bool, Depends(include_deleted_allowed)]


async def user_query(
    include_deleted: IncludeDeleted,
    q: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="Username, email or full name"),
    ] = None,
    is_active: bool | None = None,
    is_verified: bool | None = None,
    role: Annotated[
        str | None, Query(max_length=80, pattern=NO_NUL, description="Role name")
    ] = None,
    created_after: UTCDatetime | None = None,
    created_before: UTCDatetime | None = None,
    sort: Annotated[
        str | None,
        Query(
            max_length=200,
            description=f"Comma-separated, `-` for descending; fields: {', '.join(SORT_FIELDS)}",
        ),
    ] = None,
) -> UserQuery:
    return UserQuery(
        q=q or None,
        is_active=is_active,
        is_verified=is_verified,
        role=role,
        created_after=created_after,
        created_before=created_before,
        include_deleted=include_deleted,
        sort=parse_sort(sort),
    )


UserQueryDep = Annotated[UserQuery, Depends(user_query)]
