"""GET /audit-logs: the audit trail, read-only. No route changes or deletes a record, so
PUT / PATCH / DELETE answer 405 (problem+json)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from app.authz.dependencies import require_permission
from app.authz.principal import Principal
from app.core.database import SessionDep
from app.core.errors import problem_responses
from app.core.inputs import NO_NUL, UTCDatetime
from app.core.pagination import Page, PageDep
from app.core.routing import ModuleRouter
from app.modules.audit.schemas import AuditLogPublic, Outcome
from app.modules.audit.service import AuditService

router = ModuleRouter(prefix="/audit-logs", tags=["audit"])
routers = (router,)

AuditRead = Annotated[Principal, Depends(require_permission("audit:read"))]


@router.get(
    "",
    response_model=Page[AuditLogPublic],
    responses=problem_responses(401, 403, 422),
    summary="Search the audit trail (newest first)",
)
async def list_audit_logs(
    _: AuditRead,
    session: SessionDep,
    page: PageDep,
    actor_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    resource_type: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    resource_id: Annotated[str | None, Query(max_length=80, pattern=NO_NUL)] = None,
    outcome: Outcome | None = None,
    since: UTCDatetime | None = None,
    until: UTCDatetime | None = None,
) -> Page[AuditLogPublic]:
    rows, total = await AuditService(session).search(
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        since=since,
        until=until,
        limit=page.limit,
        offset=page.offset,
    )
    return Page(
        items=[AuditLogPublic.model_validate(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{entry_id}",
    response_model=AuditLogPublic,
    responses=problem_responses(401, 403, 404),
    summary="One audit record",
)
async def get_audit_log(_: AuditRead, session: SessionDep, entry_id: uuid.UUID) -> AuditLogPublic:
    return AuditLogPublic.model_validate(await AuditService(session).get_or_404(entry_id))
