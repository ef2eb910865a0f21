"""/api/v1/patients: the same endpoints serve staff and the anonymous public; the caller's
policies decide rows and cells (see service.py for the gates)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, Query
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from app.authz.dependencies import CurrentPrincipal, require_permission
from app.authz.principal import Principal
from app.core.database import SessionDep
from app.core.errors import problem_responses
from app.core.inputs import NO_NUL
from app.core.pagination import PageDep
from app.core.routing import ModuleRouter
from app.core.runtime import RuntimeDep
from app.modules.patients.schemas import (
    BreakGlassGrantPublic,
    BreakGlassRequest,
    PatientCreate,
    PatientPage,
    PatientPublic,
    PatientStats,
    PatientUpdate,
)
from app.modules.patients.service import ListQuery, PatientsService

router = ModuleRouter(prefix="/patients", tags=["patients"])
routers = (router,)

PatientsCreate = Annotated[Principal, Depends(require_permission("patient:create"))]
PatientsUpdate = Annotated[Principal, Depends(require_permission("patient:update"))]
PatientsDelete = Annotated[Principal, Depends(require_permission("patient:delete"))]
PatientsRestore = Annotated[Principal, Depends(require_permission("patient:restore"))]
PatientsExport = Annotated[Principal, Depends(require_permission("patient:export"))]
PatientsBreakGlass = Annotated[Principal, Depends(require_permission("patient:break_glass"))]

Text = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]


def _json(content: Any, status_code: int = 200) -> Response:
    """Hidden fields are absent from the dicts the service returns; serialise them as they are
    (orjson handles UUIDs, dates and datetimes)."""
    body = orjson.dumps(content, default=str)  # asyncpg hands back its own UUID type
    return Response(body, status_code=status_code, media_type="application/json")


def record_filters(
    mrn: Text = None,
    family_name: Text = None,
    given_name: Text = None,
    sex: Text = None,
    department: Text = None,
    ward: Text = None,
    admission_status: Text = None,
    attending_clinician_id: Text = None,
    public_consent: Text = None,
    filter: Annotated[
        str | None,
        Query(pattern=NO_NUL, max_length=4000, description="JSON filter (policy filter language)"),
    ] = None,
    q: Annotated[
        str | None, Query(pattern=NO_NUL, max_length=100, description="Search names and MRN")
    ] = None,
) -> ListQuery:
    """Which records: the same query parameters for the list, the export and the stats."""
    equals = {
        name: value
        for name, value in (
            ("mrn", mrn),
            ("family_name", family_name),
            ("given_name", given_name),
            ("sex", sex),
            ("department", department),
            ("ward", ward),
            ("admission_status", admission_status),
            ("attending_clinician_id", attending_clinician_id),
            ("public_consent", public_consent),
        )
        if value is not None
    }
    return ListQuery(equals=equals, filter_json=filter, q=q)


RecordFilters = Annotated[ListQuery, Depends(record_filters)]
Fields = Annotated[str | None, Query(pattern=NO_NUL, max_length=1000, examples=["given_name,ward"])]
Sort = Annotated[
    str | None, Query(pattern=NO_NUL, max_length=200, examples=["family_name,-admitted_at"])
]


@router.get(
    "",
    response_model=PatientPage,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 422),
    summary="List the patients the caller may see (filter, sort, search, sparse fields)",
)
async def list_patients(
    principal: CurrentPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
    page: PageDep,
    query: RecordFilters,
    sort: Sort = None,
    fields: Fields = None,
) -> Response:
    query = replace(query, sort=sort, fields=fields)
    items, total, exact = await PatientsService(session, runtime, principal).search(
        query, limit=page.limit, offset=page.offset
    )
    return _json(
        {
            "items": items,
            "total": total,
            "total_exact": exact,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@router.get(
    "/export",
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV, streamed"},
        **problem_responses(401, 403, 422),
    },
    summary="Export the patients the caller may see as CSV (hidden cells empty) [patient:export]",
)
async def export_patients(
    principal: PatientsExport,
    session: SessionDep,
    runtime: RuntimeDep,
    query: RecordFilters,
    format: Literal["csv"] = "csv",
    sort: Sort = None,
    fields: Fields = None,
) -> StreamingResponse:
    query = replace(query, sort=sort, fields=fields)
    _, chunks = await PatientsService(session, runtime, principal).prepare_export(query)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="patients.csv"'},
    )


@router.get(
    "/stats",
    response_model=PatientStats,
    responses=problem_responses(401, 403, 422),
    summary="Counts per group, over the caller's rows and masked cells",
)
async def patient_stats(
    principal: CurrentPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
    group_by: Annotated[str, Query(max_length=80, examples=["ward"])],
    query: RecordFilters,
) -> Response:
    return _json(await PatientsService(session, runtime, principal).stats(group_by, query))


@router.get(
    "/{patient_id}",
    response_model=PatientPublic,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 404),
    summary="One patient as the caller may see it (404 outside the caller's rows)",
)
async def get_patient(
    principal: CurrentPrincipal, session: SessionDep, runtime: RuntimeDep, patient_id: uuid.UUID
) -> Response:
    return _json(await PatientsService(session, runtime, principal).get(patient_id))


@router.post(
    "",
    status_code=201,
    response_model=PatientPublic,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 409, 422),
    summary="Register a patient (fields sent must be writable; presets and checks apply)",
)
async def create_patient(
    principal: PatientsCreate, session: SessionDep, runtime: RuntimeDep, body: PatientCreate
) -> Response:
    values = body.model_dump(exclude_unset=True)
    created = await PatientsService(session, runtime, principal).create(values)
    return _json(created, status_code=201)


@router.patch(
    "/{patient_id}",
    response_model=PatientPublic,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Update a patient (within the update policies; the result must pass their check)",
)
async def update_patient(
    principal: PatientsUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    patient_id: uuid.UUID,
    body: PatientUpdate,
) -> Response:
    changes = body.model_dump(exclude_unset=True)
    updated = await PatientsService(session, runtime, principal).update(patient_id, changes)
    return _json(updated)


@router.delete(
    "/{patient_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="Soft-delete a patient (within the delete policies)",
)
async def delete_patient(
    principal: PatientsDelete, session: SessionDep, runtime: RuntimeDep, patient_id: uuid.UUID
) -> Response:
    await PatientsService(session, runtime, principal).delete(patient_id)
    return Response(status_code=204)


@router.post(
    "/{patient_id}/restore",
    response_model=PatientPublic,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 404),
    summary="Restore a soft-deleted patient [patient:restore + a delete policy admitting it]",
)
async def restore_patient(
    principal: PatientsRestore, session: SessionDep, runtime: RuntimeDep, patient_id: uuid.UUID
) -> Response:
    return _json(await PatientsService(session, runtime, principal).restore(patient_id))


@router.post(
    "/{patient_id}/break-glass",
    status_code=201,
    response_model=BreakGlassGrantPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Emergency full read of one record for BREAK_GLASS_MINUTES, audited",
)
async def break_glass(
    principal: PatientsBreakGlass,
    session: SessionDep,
    runtime: RuntimeDep,
    patient_id: uuid.UUID,
    body: BreakGlassRequest,
) -> Response:
    grant, record = await PatientsService(session, runtime, principal).break_glass(
        patient_id, body.reason
    )
    return _json(
        {
            "id": grant.id,
            "patient_id": grant.patient_id,
            "expires_at": grant.expires_at,
            "patient": record,
        },
        status_code=201,
    )
