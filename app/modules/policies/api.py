"""Policies API and the caller-facing field / record explain endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Query, status

from app.authz.dependencies import CurrentPrincipal, require_permission
from app.authz.principal import Principal
from app.core.database import SessionDep
from app.core.errors import problem_responses
from app.core.inputs import NO_NUL
from app.core.pagination import Page, PageDep
from app.core.routing import ModuleRouter
from app.core.runtime import RuntimeDep
from app.modules.policies import schemas
from app.modules.policies.service import PoliciesService

policies_router = ModuleRouter(prefix="/policies", tags=["policies"])
authz_router = ModuleRouter(prefix="/authz")

PolicyRead = Annotated[Principal, Depends(require_permission("policy:read"))]
PolicyCreateP = Annotated[Principal, Depends(require_permission("policy:create"))]
PolicyUpdateP = Annotated[Principal, Depends(require_permission("policy:update"))]
PolicyDeleteP = Annotated[Principal, Depends(require_permission("policy:delete"))]
AuthzExplain = Annotated[Principal, Depends(require_permission("authz:explain"))]


def _public(policy: Any) -> schemas.PolicyPublic:
    return schemas.PolicyPublic.model_validate(policy, from_attributes=True)


@policies_router.get(
    "",
    response_model=Page[schemas.PolicyPublic],
    tags=["policies"],
    responses=problem_responses(401, 403),
)
async def list_policies(
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PolicyRead,
    page: PageDep,
    role_id: uuid.UUID | None = None,
    resource: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    action: schemas.Action | None = None,
) -> Page[schemas.PolicyPublic]:
    rows, total = await PoliciesService(session, runtime, principal).search(
        role_id=role_id, resource=resource, action=action, limit=page.limit, offset=page.offset
    )
    return Page(items=[_public(r) for r in rows], total=total, limit=page.limit, offset=page.offset)


@policies_router.get(
    "/resources",
    response_model=list[schemas.ResourceDescription],
    tags=["policies"],
    responses=problem_responses(401, 403),
)
async def list_resources(
    session: SessionDep, runtime: RuntimeDep, principal: PolicyRead
) -> list[schemas.ResourceDescription]:
    return PoliciesService(session, runtime, principal).resources()


@policies_router.post(
    "/preview",
    response_model=schemas.PolicyPreviewResponse,
    tags=["policies"],
    responses=problem_responses(401, 403, 404, 422),
)
async def preview_policy_change(
    body: schemas.PolicyPreviewRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PolicyRead,
) -> schemas.PolicyPreviewResponse:
    return await PoliciesService(session, runtime, principal).preview(body)


@policies_router.get(
    "/{policy_id}",
    response_model=schemas.PolicyPublic,
    tags=["policies"],
    responses=problem_responses(401, 403, 404),
)
async def get_policy(
    policy_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, principal: PolicyRead
) -> schemas.PolicyPublic:
    return _public(await PoliciesService(session, runtime, principal).get(policy_id))


@policies_router.post(
    "",
    response_model=schemas.PolicyPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["policies"],
    responses=problem_responses(401, 403, 422),
)
async def create_policy(
    body: schemas.PolicyCreate, session: SessionDep, runtime: RuntimeDep, principal: PolicyCreateP
) -> schemas.PolicyPublic:
    return _public(await PoliciesService(session, runtime, principal).create(body))


@policies_router.patch(
    "/{policy_id}",
    response_model=schemas.PolicyPublic,
    tags=["policies"],
    responses=problem_responses(401, 403, 404, 422),
)
async def update_policy(
    policy_id: uuid.UUID,
    body: schemas.PolicyUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PolicyUpdateP,
) -> schemas.PolicyPublic:
    return _public(await PoliciesService(session, runtime, principal).update(policy_id, body))


@policies_router.delete(
    "/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["policies"],
    responses=problem_responses(401, 403, 404),
)
async def delete_policy(
    policy_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, principal: PolicyDeleteP
) -> None:
    await PoliciesService(session, runtime, principal).delete(policy_id)


@authz_router.get(
    "/fields",
    response_model=schemas.AuthzFields,
    tags=["authz"],
    responses=problem_responses(401, 404),
)
async def my_fields(
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    resource: Annotated[str, Query(max_length=80, pattern=NO_NUL)],
) -> dict[str, Any]:
    return await PoliciesService(session, runtime, principal).fields(resource)


@authz_router.get(
    "/explain-record",
    response_model=schemas.RecordExplanation,
    tags=["authz"],
    responses=problem_responses(401, 403, 404),
)
async def explain_record(
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AuthzExplain,
    user_id: uuid.UUID,
    resource: Annotated[str, Query(max_length=80, pattern=NO_NUL)],
    record_id: Annotated[str, Query(max_length=100, pattern=NO_NUL)],
) -> dict[str, Any]:
    return await PoliciesService(session, runtime, principal).explain_record(
        user_id, resource, record_id
    )


routers = (policies_router, authz_router)
