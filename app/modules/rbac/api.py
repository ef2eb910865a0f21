"""HTTP routes of permissions, roles, groups and the authorization engine (explain / check / me)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Path, Query, Response, status

from app.authz.dependencies import CurrentPrincipal
from app.core.errors import problem_responses
from app.core.inputs import NO_NUL
from app.core.pagination import Page, PageDep
from app.core.routing import ModuleRouter
from app.modules.rbac import schemas
from app.modules.rbac.dependencies import (
    AuthzExplain,
    GroupsCreate,
    GroupsDelete,
    GroupsRead,
    GroupsUpdate,
    PermissionsCreate,
    PermissionsDelete,
    PermissionsRead,
    PermissionsUpdate,
    RbacServiceDep,
    RolesCreate,
    RolesDelete,
    RolesRead,
    RolesUpdate,
    UsersRead,
)

permissions = ModuleRouter(prefix="/permissions", tags=["permissions"])
roles = ModuleRouter(prefix="/roles", tags=["roles"])
groups = ModuleRouter(prefix="/groups", tags=["groups"])
authz = ModuleRouter(prefix="/authz", tags=["authorization"])
users = ModuleRouter(prefix="/users", tags=["groups"])

_ERRORS = problem_responses(401, 403, 404, 409, 422)
_F = TypeVar("_F", bound=Callable[..., Any])
# Lists the guest may be granted: 401 for a guest without the permission or a bad token.
_LIST_ERRORS = problem_responses(401, 403, 422)


def _create(router: ModuleRouter, model: type[Any]) -> Callable[[_F], _F]:
    """POST on the collection, answered with or without a trailing slash (the slash form is
    left out of the schema): a 201 with `model`."""

    def register(endpoint: _F) -> _F:
        for path, documented in (("", True), ("/", False)):
            router.post(
                path,
                response_model=model,
                status_code=status.HTTP_201_CREATED,
                responses=_ERRORS,
                include_in_schema=documented,
            )(endpoint)
        return endpoint

    return register


# ---- permissions ------------------------------------------------------------------------
@permissions.get("", response_model=Page[schemas.PermissionPublic], responses=_LIST_ERRORS)
@permissions.get("/", response_model=Page[schemas.PermissionPublic], include_in_schema=False)
async def list_permissions(
    _: PermissionsRead,
    service: RbacServiceDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    resource: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    category: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    is_active: bool | None = None,
    status_: Annotated[
        Literal["active", "inactive"] | None,
        Query(alias="status", description="active or inactive (the same as is_active)"),
    ] = None,
) -> Page[schemas.PermissionPublic]:
    items, total = await service.list_permissions(
        q=q,
        resource=resource,
        category=category,
        is_active=is_active,
        status=status_,
        limit=page.limit,
        offset=page.offset,
    )
    return Page(
        items=[schemas.PermissionPublic.model_validate(p) for p in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@permissions.get(
    "/by-resource/{resource}",
    response_model=list[schemas.PermissionPublic],
    responses=_LIST_ERRORS,
)
async def permissions_by_resource(
    resource: Annotated[str, Path(max_length=80, pattern=NO_NUL)],
    _: PermissionsRead,
    service: RbacServiceDep,
) -> list[schemas.PermissionPublic]:
    return [
        schemas.PermissionPublic.model_validate(p)
        for p in await service.permissions_by_resource(resource)
    ]


@permissions.get("/{permission_id}", response_model=schemas.PermissionPublic, responses=_ERRORS)
async def get_permission(
    permission_id: uuid.UUID, _: PermissionsRead, service: RbacServiceDep
) -> schemas.PermissionPublic:
    return schemas.PermissionPublic.model_validate(await service.get_permission(permission_id))


@_create(permissions, schemas.PermissionPublic)
async def create_permission(
    body: schemas.PermissionCreate, _: PermissionsCreate, service: RbacServiceDep
) -> schemas.PermissionPublic:
    return schemas.PermissionPublic.model_validate(await service.create_permission(body))


@permissions.put("/{permission_id}", response_model=schemas.PermissionPublic, responses=_ERRORS)
async def update_permission(
    permission_id: uuid.UUID,
    body: schemas.PermissionUpdate,
    actor: PermissionsUpdate,
    service: RbacServiceDep,
) -> schemas.PermissionPublic:
    return schemas.PermissionPublic.model_validate(
        await service.update_permission(actor, permission_id, body)
    )


@permissions.delete("/{permission_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_permission(
    permission_id: uuid.UUID, _: PermissionsDelete, service: RbacServiceDep
) -> Response:
    await service.delete_permission(permission_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@permissions.patch(
    "/{permission_id}/toggle-status", response_model=schemas.PermissionPublic, responses=_ERRORS
)
async def toggle_permission(
    permission_id: uuid.UUID, actor: PermissionsUpdate, service: RbacServiceDep
) -> schemas.PermissionPublic:
    return schemas.PermissionPublic.model_validate(
        await service.toggle_permission(actor, permission_id)
    )


# ---- roles ------------------------------------------------------------------------------
@roles.get("", response_model=Page[schemas.RolePublic], responses=_LIST_ERRORS)
@roles.get("/", response_model=Page[schemas.RolePublic], include_in_schema=False)
async def list_roles(
    _: RolesRead,
    service: RbacServiceDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    is_active: bool | None = None,
) -> Page[schemas.RolePublic]:
    items, total = await service.list_roles(
        q=q, is_active=is_active, limit=page.limit, offset=page.offset
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@_create(roles, schemas.RolePublic)
async def create_role(
    body: schemas.RoleCreate, actor: RolesCreate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.create_role(actor, body))


@roles.post(
    "/create-minimal",
    response_model=schemas.RolePublic,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
)
async def create_minimal_role(
    body: schemas.RoleMinimalCreate, actor: RolesCreate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.create_minimal_role(actor, body))


@roles.get("/{role_id}", response_model=schemas.RolePublic, responses=_ERRORS)
async def get_role(role_id: uuid.UUID, _: RolesRead, service: RbacServiceDep) -> schemas.RolePublic:
    return await service.role_public(await service.get_role(role_id))


@roles.put("/{role_id}", response_model=schemas.RolePublic, responses=_ERRORS)
async def update_role(
    role_id: uuid.UUID, body: schemas.RoleUpdate, _: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.update_role(role_id, body))


@roles.delete("/{role_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_role(
    role_id: uuid.UUID, _: RolesDelete, service: RbacServiceDep, force: bool = False
) -> Response:
    await service.delete_role(role_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@roles.post(
    "/{role_id}/permissions/{permission_id}", response_model=schemas.RolePublic, responses=_ERRORS
)
async def add_role_permission(
    role_id: uuid.UUID, permission_id: uuid.UUID, actor: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(
        await service.add_role_permission(actor, role_id, permission_id)
    )


@roles.delete(
    "/{role_id}/permissions/{permission_id}", response_model=schemas.RolePublic, responses=_ERRORS
)
async def remove_role_permission(
    role_id: uuid.UUID, permission_id: uuid.UUID, _: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.remove_role_permission(role_id, permission_id))


@roles.patch("/{role_id}/toggle-status", response_model=schemas.RolePublic, responses=_ERRORS)
async def toggle_role(
    role_id: uuid.UUID, actor: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.toggle_role(actor, role_id))


@roles.post("/{role_id}/parents/{parent_id}", response_model=schemas.RolePublic, responses=_ERRORS)
async def add_parent(
    role_id: uuid.UUID, parent_id: uuid.UUID, actor: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.add_parent(actor, role_id, parent_id))


@roles.delete(
    "/{role_id}/parents/{parent_id}", response_model=schemas.RolePublic, responses=_ERRORS
)
async def remove_parent(
    role_id: uuid.UUID, parent_id: uuid.UUID, _: RolesUpdate, service: RbacServiceDep
) -> schemas.RolePublic:
    return await service.role_public(await service.remove_parent(role_id, parent_id))


@roles.get(
    "/{role_id}/effective-permissions",
    response_model=schemas.RoleEffectivePermissions,
    responses=_ERRORS,
)
async def role_effective_permissions(
    role_id: uuid.UUID, _: RolesRead, service: RbacServiceDep
) -> schemas.RoleEffectivePermissions:
    return await service.effective_permissions(role_id)


# ---- groups -----------------------------------------------------------------------------
@groups.get("", response_model=Page[schemas.GroupPublic], responses=_LIST_ERRORS)
@groups.get("/", response_model=Page[schemas.GroupPublic], include_in_schema=False)
async def list_groups(
    _: GroupsRead,
    service: RbacServiceDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    is_active: bool | None = None,
) -> Page[schemas.GroupPublic]:
    items, total = await service.list_groups(
        q=q, is_active=is_active, limit=page.limit, offset=page.offset
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@_create(groups, schemas.GroupPublic)
async def create_group(
    body: schemas.GroupCreate, _: GroupsCreate, service: RbacServiceDep
) -> schemas.GroupPublic:
    return await service.group_public(await service.create_group(body))


@groups.get("/{group_id}", response_model=schemas.GroupPublic, responses=_ERRORS)
async def get_group(
    group_id: uuid.UUID, _: GroupsRead, service: RbacServiceDep
) -> schemas.GroupPublic:
    return await service.group_public(await service.get_group(group_id))


@groups.put("/{group_id}", response_model=schemas.GroupPublic, responses=_ERRORS)
async def update_group(
    group_id: uuid.UUID, body: schemas.GroupUpdate, actor: GroupsUpdate, service: RbacServiceDep
) -> schemas.GroupPublic:
    return await service.group_public(await service.update_group(actor, group_id, body))


@groups.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_group(
    group_id: uuid.UUID, actor: GroupsDelete, service: RbacServiceDep
) -> Response:
    await service.delete_group(actor, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@groups.get(
    "/{group_id}/members", response_model=Page[schemas.GroupMemberPublic], responses=_ERRORS
)
async def group_members(
    group_id: uuid.UUID, _: GroupsRead, service: RbacServiceDep, page: PageDep
) -> Page[schemas.GroupMemberPublic]:
    items, total = await service.members(group_id, limit=page.limit, offset=page.offset)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@groups.post(
    "/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS
)
async def add_member(
    group_id: uuid.UUID, user_id: uuid.UUID, actor: GroupsUpdate, service: RbacServiceDep
) -> Response:
    await service.add_member(actor, group_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@groups.delete(
    "/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS
)
async def remove_member(
    group_id: uuid.UUID, user_id: uuid.UUID, actor: GroupsUpdate, service: RbacServiceDep
) -> Response:
    await service.remove_member(actor, group_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@groups.post("/{group_id}/roles/{role_id}", response_model=schemas.GroupPublic, responses=_ERRORS)
async def add_group_role(
    group_id: uuid.UUID, role_id: uuid.UUID, actor: GroupsUpdate, service: RbacServiceDep
) -> schemas.GroupPublic:
    return await service.group_public(await service.add_group_role(actor, group_id, role_id))


@groups.delete("/{group_id}/roles/{role_id}", response_model=schemas.GroupPublic, responses=_ERRORS)
async def remove_group_role(
    group_id: uuid.UUID, role_id: uuid.UUID, actor: GroupsUpdate, service: RbacServiceDep
) -> schemas.GroupPublic:
    return await service.group_public(await service.remove_group_role(actor, group_id, role_id))


@users.get("/{user_id}/groups", response_model=list[schemas.GroupPublic], responses=_ERRORS)
async def user_groups(
    user_id: uuid.UUID, _: UsersRead, service: RbacServiceDep
) -> list[schemas.GroupPublic]:
    return await service.user_groups(user_id)


# ---- the engine -------------------------------------------------------------------------
# 401: a token that is sent must be valid (no token is the guest).
@authz.get("/me", response_model=schemas.AuthzMe, responses=problem_responses(401))
async def me(principal: CurrentPrincipal) -> schemas.AuthzMe:
    return schemas.AuthzMe(
        user_id=principal.user_id,
        username=principal.username,
        is_guest=principal.is_guest,
        roles=sorted(principal.roles),
        direct_roles=sorted(principal.direct_roles),
        groups=sorted(principal.groups),
        permissions=sorted(principal.permissions.names),
    )


@authz.get("/explain", response_model=schemas.ExplainResponse, responses=_ERRORS)
async def explain(
    _: AuthzExplain,
    service: RbacServiceDep,
    user_id: uuid.UUID,
    permission: Annotated[
        str, Query(max_length=161, pattern=r"^(\*|[a-z][a-z0-9_\-]*):(\*|[a-z][a-z0-9_\-]*)$")
    ],
) -> schemas.ExplainResponse:
    result = await service.explain(user_id, permission)
    return schemas.ExplainResponse.model_validate(result.to_dict())


@authz.post("/check", response_model=schemas.CheckResponse, responses=_ERRORS)
async def check(
    body: schemas.CheckRequest, _: AuthzExplain, service: RbacServiceDep
) -> schemas.CheckResponse:
    decisions = await service.check(body.user_id, body.permissions)
    return schemas.CheckResponse(
        user_id=body.user_id,
        decisions=[schemas.CheckDecision.model_validate(d) for d in decisions],
    )


routers = (permissions, roles, groups, users, authz)
