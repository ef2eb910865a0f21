"""/users: administration of users and one's own profile. HTTP only: parse, call the service,
shape the response."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import Response, status

from app.authz.principal import Principal
from app.core.database import SessionDep
from app.core.errors import problem_responses
from app.core.pagination import Page, PageDep
from app.core.routing import ModuleRouter
from app.core.runtime import RuntimeDep
from app.modules.audit.service import AuditLog, AuditLogPublic
from app.modules.users.dependencies import (
    IncludeDeleted,
    ProfileRead,
    ProfileUpdate,
    UserQueryDep,
    UsersCreate,
    UsersDelete,
    UsersRead,
    UsersUpdate,
)
from app.modules.users.schemas import (
    BulkItemResult,
    BulkRequest,
    BulkResponse,
    MeResponse,
    ProfileUpdateRequest,
    UserCreate,
    UserPublic,
    UserReplace,
    UserUpdate,
)
from app.modules.users.service import PROFILE_FIELDS, UsersService, UserView, bulk_item

router = ModuleRouter(prefix="/users", tags=["users"])
routers = (router,)

_ME_MEMO = "users.me.json"
_JSON = "application/json"


def _public(view: UserView, now: datetime) -> UserPublic:
    user = view.user
    return UserPublic(
        id=user.id,
        username=user.username,
        email=user.email,
        full_name=user.full_name,
        given_name=user.given_name,
        family_name=user.family_name,
        nickname=user.nickname,
        picture_url=user.picture_url,
        is_active=user.is_active,
        is_verified=user.is_verified,
        attributes=dict(user.attributes or {}),
        roles=view.roles,
        groups=view.groups,
        created_at=user.created_at,
        updated_at=user.updated_at,
        last_login_at=user.last_login_at,
        is_locked=user.locked_until is not None and user.locked_until > now,
        locked_until=user.locked_until,
        deleted_at=user.deleted_at,
    )


def _me(profile: dict[str, Any], principal: Principal) -> MeResponse:
    return MeResponse.model_validate(
        {
            **profile,
            "roles": sorted(principal.roles),
            "direct_roles": sorted(principal.direct_roles),
            "groups": sorted(principal.groups),
            "permissions": sorted(principal.permissions.names),
        }
    )


def _activity_page(rows: Sequence[AuditLog], total: int, page: Any) -> Page[AuditLogPublic]:
    return Page(
        items=[AuditLogPublic.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


# ---- one's own profile (registered before /{user_id}) -------------------------------------
@router.get(
    "/me",
    response_model=MeResponse,
    responses=problem_responses(401, 403),
    summary="My profile, roles, groups and permissions",
)
async def read_me(principal: ProfileRead) -> Response:
    # Served from the cached principal: no database round-trip. The serialized body lives on
    # the principal's memo, which is dropped with the principal when anything changes.
    body: bytes | None = principal.memo.get(_ME_MEMO)
    if body is None:
        body = _me(principal.profile, principal).model_dump_json().encode()
        principal.memo[_ME_MEMO] = body
    return Response(body, media_type=_JSON)


@router.patch(
    "/me",
    response_model=MeResponse,
    responses=problem_responses(401, 403, 422),
    summary="Update my profile",
)
async def update_me(
    principal: ProfileUpdate, body: ProfileUpdateRequest, session: SessionDep, runtime: RuntimeDep
) -> MeResponse:
    user = await UsersService(session, runtime).update_profile(
        principal, body.model_dump(exclude_unset=True)
    )
    return _me({k: getattr(user, k) for k in PROFILE_FIELDS}, principal)


@router.get(
    "/me/activity",
    response_model=Page[AuditLogPublic],
    responses=problem_responses(401, 403, 422),
    summary="My audit history (what I did and what was done to my account)",
)
async def my_activity(
    principal: ProfileRead, session: SessionDep, runtime: RuntimeDep, page: PageDep
) -> Page[AuditLogPublic]:
    rows, total = await UsersService(session, runtime).me_activity(
        principal, limit=page.limit, offset=page.offset
    )
    return _activity_page(rows, total, page)


# ---- administration -----------------------------------------------------------------------
@router.get(
    "",
    response_model=Page[UserPublic],
    responses=problem_responses(401, 403, 422),
    summary="Search, filter, sort and page through users",
)
async def list_users(
    _: UsersRead, query: UserQueryDep, page: PageDep, session: SessionDep, runtime: RuntimeDep
) -> Page[UserPublic]:
    views, total = await UsersService(session, runtime).search(
        query, limit=page.limit, offset=page.offset
    )
    now = runtime.clock.now()
    return Page(
        items=[_public(v, now) for v in views], total=total, limit=page.limit, offset=page.offset
    )


@router.post(
    "",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 409, 422),
    summary="Create a user",
)
async def create_user(
    principal: UsersCreate, body: UserCreate, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    view = await UsersService(session, runtime).create(principal, body.model_dump())
    return _public(view, runtime.clock.now())


@router.post(
    "/bulk",
    response_model=BulkResponse,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Apply one action to many users (all-or-nothing with atomic=true)",
)
async def bulk(
    principal: UsersUpdate, body: BulkRequest, session: SessionDep, runtime: RuntimeDep
) -> BulkResponse:
    results = await UsersService(session, runtime).bulk(
        principal,
        action=body.action,
        user_ids=body.user_ids,
        role_id=body.role_id,
        atomic=body.atomic,
    )
    items = [BulkItemResult.model_validate(bulk_item(i, e)) for i, e in results]
    failed = sum(1 for item in items if item.status == "error")
    return BulkResponse(
        action=body.action,
        atomic=body.atomic,
        succeeded=len(items) - failed,
        failed=failed,
        results=items,
    )


@router.get(
    "/{user_id}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404),
    summary="One user",
)
async def get_user(
    _: UsersRead,
    user_id: uuid.UUID,
    include_deleted: IncludeDeleted,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPublic:
    view = await UsersService(session, runtime).get_view(user_id, include_deleted=include_deleted)
    return _public(view, runtime.clock.now())


@router.put(
    "/{user_id}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Replace a user's editable fields",
)
async def replace_user(
    principal: UsersUpdate,
    user_id: uuid.UUID,
    body: UserReplace,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPublic:
    view = await UsersService(session, runtime).update(principal, user_id, body.model_dump())
    return _public(view, runtime.clock.now())


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Update some of a user's fields (attributes included)",
)
async def update_user(
    principal: UsersUpdate,
    user_id: uuid.UUID,
    body: UserUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPublic:
    view = await UsersService(session, runtime).update(
        principal, user_id, body.model_dump(exclude_unset=True)
    )
    return _public(view, runtime.clock.now())


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
    summary="Soft-delete a user (revokes their sessions)",
)
async def delete_user(
    principal: UsersDelete, user_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await UsersService(session, runtime).delete(principal, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{user_id}/restore",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409),
    summary="Restore a soft-deleted user",
)
async def restore_user(
    principal: UsersUpdate, user_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    view = await UsersService(session, runtime).restore(principal, user_id)
    return _public(view, runtime.clock.now())


@router.patch(
    "/{user_id}/toggle-status",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409),
    summary="Activate or deactivate a user (deactivation revokes their sessions)",
)
async def toggle_status(
    principal: UsersUpdate, user_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    view = await UsersService(session, runtime).toggle_status(principal, user_id)
    return _public(view, runtime.clock.now())


@router.post(
    "/{user_id}/unlock",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404),
    summary="Clear a user's failed logins and lockout",
)
async def unlock_user(
    principal: UsersUpdate, user_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> UserPublic:
    view = await UsersService(session, runtime).unlock(principal, user_id)
    return _public(view, runtime.clock.now())


@router.post(
    "/{user_id}/roles/{role_id}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404),
    summary="Assign a role to a user (delegation safety applies)",
)
async def assign_role(
    principal: UsersUpdate,
    user_id: uuid.UUID,
    role_id: uuid.UUID,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPublic:
    view = await UsersService(session, runtime).assign_role(principal, user_id, role_id)
    return _public(view, runtime.clock.now())


@router.delete(
    "/{user_id}/roles/{role_id}",
    response_model=UserPublic,
    responses=problem_responses(401, 403, 404, 409),
    summary="Remove a role from a user",
)
async def remove_role(
    principal: UsersUpdate,
    user_id: uuid.UUID,
    role_id: uuid.UUID,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UserPublic:
    view = await UsersService(session, runtime).remove_role(principal, user_id, role_id)
    return _public(view, runtime.clock.now())


@router.get(
    "/{user_id}/activity",
    response_model=Page[AuditLogPublic],
    responses=problem_responses(401, 403, 404, 422),
    summary="A user's audit history",
)
async def user_activity(
    _: UsersRead, user_id: uuid.UUID, page: PageDep, session: SessionDep, runtime: RuntimeDep
) -> Page[AuditLogPublic]:
    service = UsersService(session, runtime)
    await service.get_or_404(user_id)
    rows, total = await service.activity(user_id, limit=page.limit, offset=page.offset)
    return _activity_page(rows, total, page)
