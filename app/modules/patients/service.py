"""Patients: use cases. Every read and write goes through the caller's policies
(app/authz/policies.py): rows and cells come from the plan's SQL clauses and masked columns,
writes from its checks. No SQL here (the repository runs it).

Decisions worth knowing:
* Reads (list, get, stats) need no coarse permission: a caller with at least one read policy on
  `patient` (the guest role included) may read what it admits; without one the guest gets 401
  and a user 403. Export additionally needs `patient:export`.
* Restore needs `patient:restore` AND a delete policy admitting the record (whoever may not
  delete a record may not undo its deletion either); the deleted record must be within the
  caller's read rows, else 404.
* Break-glass needs `patient:break_glass`; the grant is honoured only while the permission is
  still held and until it expires (runtime.clock).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.policies import (
    AccessPlan,
    Variables,
    build_plan,
    plan_for,
    row_of,
)
from app.authz.principal import Principal
from app.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from app.core.inputs import has_nul
from app.core.runtime import Runtime
from app.modules.audit.service import AuditService, diff
from app.modules.patients.access_control import PATIENT_RESOURCE, RESOURCE
from app.modules.patients.emergency import active_break_glass
from app.modules.patients.models import BreakGlassGrant, Patient
from app.modules.patients.repository import PatientRepository, Row, SortKey

# Field query parameters offered by GET / (and /stats, /export): ?ward=C1 -> {"ward": {"_eq"}}.
EQUALITY_FILTERS: tuple[str, ...] = (
    "mrn",
    "family_name",
    "given_name",
    "sex",
    "department",
    "ward",
    "admission_status",
    "attending_clinician_id",
    "public_consent",
)
GROUPABLE_TYPES = frozenset({"string", "enum", "boolean", "uuid", "date"})
MAX_GROUPS = 1000
MAX_SORT_KEYS = 5
MAX_Q_LENGTH = 100
# Totals are exact up to this many rows, then reported as a lower bound (total_exact false):
# counting every match of a broad list would make each page cost O(matching rows).
COUNT_CAP = 1000
EXPORT_BATCH = 1000
BREAK_GLASS_ACTION = "break_glass"


@dataclass
class ListQuery:
    equals: dict[str, str] = field(default_factory=dict)
    filter_json: str | None = None
    sort: str | None = None
    q: str | None = None
    fields: str | None = None


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _deleted(flag: bool) -> ColumnElement[bool]:
    column = col(Patient.deleted_at)
    return column.is_not(None) if flag else column.is_(None)


class PatientsService:
    def __init__(self, session: AsyncSession, runtime: Runtime, principal: Principal) -> None:
        self.session = session
        self.runtime = runtime
        self.principal = principal
        self.repository = PatientRepository(session)
        self.audit = AuditService(session)

    # ---- plans ------------------------------------------------------------------------------

    async def plan(self, action: str) -> AccessPlan:
        return await plan_for(
            self.session, self.principal, PATIENT_RESOURCE, action, now=self.runtime.clock.now()
        )

    async def read_plan(self) -> AccessPlan:
        plan = await self.plan("read")
        if plan.is_empty:
            if self.principal.is_guest:
                raise Unauthorized()
            raise Forbidden("You may not read patient records", code="action_forbidden")
        return plan

    def _full_plan(self) -> AccessPlan:
        variables = Variables.for_principal(self.principal, self.runtime.clock.now())
        return build_plan(PATIENT_RESOURCE, "read", [], variables, superadmin=True)

    # ---- query building (policy-bound) ------------------------------------------------------

    def _filters(
        self, plan: AccessPlan, query: ListQuery
    ) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
        """(conditions, any_of): the rows that match every condition and, when any_of is not
        empty, at least one of its terms (the `q` search, one term per searchable field, kept
        apart so that the list can serve each from its own index)."""
        conditions: list[ColumnElement[bool]] = [_deleted(False), plan.row_clause()]
        any_of: list[ColumnElement[bool]] = []
        for name, value in query.equals.items():
            conditions.append(plan.where({name: {"_eq": value}}, param=name))
        if query.filter_json:
            try:
                parsed = json.loads(query.filter_json)
            except ValueError:
                raise ValidationFailed.for_field("filter", "filter must be a JSON object")
            if has_nul(parsed):
                raise ValidationFailed.for_field("filter", "filter may not contain NUL characters")
            conditions.append(plan.where(parsed, param="filter"))
        if query.q:
            q = query.q.strip()
            if len(q) > MAX_Q_LENGTH:
                raise ValidationFailed.for_field("q", f"at most {MAX_Q_LENGTH} characters")
            if q:
                any_of = _prefix_terms(plan, q)
                if not any_of:  # no searchable field readable: nothing matches
                    conditions.append(false())
        return conditions, any_of

    def _conditions(self, plan: AccessPlan, query: ListQuery) -> list[ColumnElement[bool]]:
        conditions, any_of = self._filters(plan, query)
        return [*conditions, or_(*any_of)] if any_of else conditions

    def _order(self, plan: AccessPlan, sort: str | None) -> list[SortKey]:
        """Sort keys over masked columns: NULLs last in both directions on both backends
        (NULLS LAST, left out for a bare NOT NULL column), the id as tie-breaker. The order is
        plain `col [DESC] [NULLS LAST]` so that an index declared the same way serves it (see
        models.py). 403 naming fields readable in no row."""
        keys = _split(sort)
        if len(keys) > MAX_SORT_KEYS:
            raise ValidationFailed.for_field("sort", f"at most {MAX_SORT_KEYS} sort keys")
        names = [k.lstrip("-") for k in keys]
        unknown = [n for n in names if not PATIENT_RESOURCE.has_field(n) and n != "id"]
        if unknown:
            raise ValidationFailed.for_field("sort", f"unknown field '{unknown[0]}'")
        plan.ensure_readable(names)
        unsortable = [n for n in names if n != "id" and not PATIENT_RESOURCE.field(n).sortable]
        if unsortable:
            raise ValidationFailed.for_field("sort", f"cannot sort by '{unsortable[0]}'")
        if not keys:  # default: by name where the caller may read it
            keys = [n for n in ("family_name", "given_name") if n in plan.readable_fields]
        order: list[SortKey] = []
        for key in keys:
            name, desc = key.lstrip("-"), key.startswith("-")
            if name == "id":
                continue
            expression = plan.column(name)
            raw = PATIENT_RESOURCE.column(name)
            nullable = not (expression is raw and not raw.nullable)
            order.append(SortKey(expression, desc, nulls_last=nullable))
        order.append(SortKey(PATIENT_RESOURCE.id_column))
        return order

    def _fields(self, plan: AccessPlan, fields: str | None) -> list[str] | None:
        names = _split(fields)
        if not names:
            return None
        unknown = [n for n in names if not PATIENT_RESOURCE.has_field(n) and n != "id"]
        if unknown:
            raise ValidationFailed.for_field("fields", f"unknown field '{unknown[0]}'")
        plan.ensure_readable(names)
        return [n for n in names if n != "id"]

    def _select(self, plan: AccessPlan, fields: Sequence[str] | None) -> list[Any]:
        return plan.select_columns(fields)

    # ---- reads ------------------------------------------------------------------------------

    async def search(
        self, query: ListQuery, *, limit: int, offset: int
    ) -> tuple[list[Row], int, bool]:
        """(items, total, total_exact). One SQL statement for a non-empty page."""
        plan = await self.read_plan()
        fields = self._fields(plan, query.fields)
        conditions, any_of = self._filters(plan, query)
        order = self._order(plan, query.sort)
        rows, total, exact = await self.repository.page(
            self._select(plan, fields),
            conditions,
            order,
            any_of=any_of,
            limit=limit,
            offset=offset,
            count_cap=COUNT_CAP,
        )
        if total is None:
            total = 0
            if offset:
                if any_of:
                    conditions.append(or_(*any_of))
                total = await self.repository.count_capped(conditions, COUNT_CAP + 1)
                exact = total <= COUNT_CAP
                total = min(total, COUNT_CAP)
        return [plan.row_to_dict(r, fields) for r in rows], total, exact

    async def get(self, patient_id: uuid.UUID) -> Row:
        if await self._break_glass_active(patient_id):
            full = self._full_plan()
            row = await self.repository.one(
                self._select(full, None), [col(Patient.id) == patient_id, _deleted(False)]
            )
            if row is not None:
                return full.row_to_dict(row)
        plan = await self.read_plan()
        row = await self.repository.one(
            self._select(plan, None),
            [col(Patient.id) == patient_id, _deleted(False), plan.row_clause()],
        )
        if row is None:
            raise NotFound("Patient not found")
        return plan.row_to_dict(row)

    async def stats(self, group_by: str, query: ListQuery) -> dict[str, Any]:
        plan = await self.read_plan()
        if not PATIENT_RESOURCE.has_field(group_by):
            raise ValidationFailed.for_field("group_by", f"unknown field '{group_by}'")
        plan.ensure_readable([group_by])
        if PATIENT_RESOURCE.field(group_by).type not in GROUPABLE_TYPES:
            raise ValidationFailed.for_field("group_by", f"cannot group by '{group_by}'")
        conditions = self._conditions(plan, query)
        groups, total = await self.repository.groups(
            plan.column(group_by), conditions, limit=MAX_GROUPS
        )
        buckets = [
            {"value": str(v) if isinstance(v, uuid.UUID | date) else v, "count": n}
            for v, n in groups
        ]
        return {"group_by": group_by, "total": total, "groups": buckets}

    async def prepare_export(self, query: ListQuery) -> tuple[list[str], AsyncIterator[str]]:
        """Checks everything up front (errors are answered before streaming starts), audits the
        export, then returns the CSV header and a generator of CSV chunks that runs on its own
        session (the request's unit of work has committed by then)."""
        plan = await self.read_plan()
        fields = self._fields(plan, query.fields)
        conditions = self._conditions(plan, query)
        order = self._order(plan, query.sort) if query.sort else None
        names = [
            "id",
            *(fields or [n for n in PATIENT_RESOURCE.field_names if n in plan.readable_fields]),
        ]
        columns = self._select(plan, fields)
        self.audit.record(
            "patient.export",
            RESOURCE,
            None,
            details={
                "fields": names,
                "filters": sorted(query.equals),
                "q": bool(query.q),
                "sort": query.sort,
            },
        )
        return names, self._csv_chunks(plan, names, fields, columns, conditions, order)

    async def _csv_chunks(
        self,
        plan: AccessPlan,
        names: list[str],
        fields: list[str] | None,
        columns: list[Any],
        conditions: list[ColumnElement[bool]],
        order: list[SortKey] | None,
    ) -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(names)
        yield _drain(buffer)
        async with self.runtime.session_factory() as session:
            repository = PatientRepository(session)
            if order is None:
                batches = repository.stream(columns, conditions, batch=EXPORT_BATCH)
            else:
                batches = repository.stream_ordered(columns, conditions, order, EXPORT_BATCH)
            async for batch in batches:
                for row in batch:
                    visible = plan.row_to_dict(row, fields)
                    writer.writerow([_csv_cell(visible.get(n)) for n in names])
                yield _drain(buffer)

    # ---- writes -----------------------------------------------------------------------------

    async def create(self, values: Mapping[str, Any]) -> Row:
        plan = await self.plan("create")
        to_insert = _check_create(plan, values)
        mrn = to_insert.get("mrn")
        if mrn is not None and await self.repository.mrn_taken(str(mrn)):
            raise _conflict()
        await self._ensure_clinician_exists(to_insert.get("attending_clinician_id"))
        patient = Patient(**to_insert)
        await self.repository.add(patient)
        self.audit.record(
            "patient.create", RESOURCE, patient.id, changes=diff(None, _snapshot(patient))
        )
        return await self._visible(patient)

    async def _ensure_clinician_exists(self, user_id: uuid.UUID | None) -> None:
        """An attending clinician must be a user: a 422 naming the field, not the database's
        foreign-key refusal (a generic 409)."""
        if user_id is not None and not await self.repository.user_exists(user_id):
            raise ValidationFailed.for_field("attending_clinician_id", "No such user")

    async def _readable_current(self, patient_id: uuid.UUID, *, deleted: bool = False) -> Patient:
        """The record when it is within the caller's read rows (404 otherwise)."""
        plan = await self.plan("read")
        if plan.is_empty or not await self.repository.exists_where(
            [col(Patient.id) == patient_id, _deleted(deleted), plan.row_clause()]
        ):
            raise NotFound("Patient not found")
        patient = await self.repository.get(patient_id, include_deleted=True)
        if patient is None:  # pragma: no cover - raced with a hard delete
            raise NotFound("Patient not found")
        return patient

    async def update(self, patient_id: uuid.UUID, changes: Mapping[str, Any]) -> Row:
        patient = await self._readable_current(patient_id)
        plan = await self.plan("update")
        if plan.is_empty:
            raise Forbidden("You may not update patient records", code="action_forbidden")
        to_apply = plan.check_update(row_of(PATIENT_RESOURCE, patient), changes)
        mrn = to_apply.get("mrn")
        if (
            mrn is not None
            and mrn != patient.mrn
            and await self.repository.mrn_taken(str(mrn), exclude=patient.id)
        ):
            raise _conflict()
        if to_apply.get("attending_clinician_id") != patient.attending_clinician_id:
            await self._ensure_clinician_exists(to_apply.get("attending_clinician_id"))
        before = _snapshot(patient)
        for name, value in to_apply.items():
            setattr(patient, name, value)
        patient.updated_at = self.runtime.clock.now()
        await self.repository.flush()
        after = _snapshot(patient)
        changed = diff(before, after, fields=list(to_apply))
        if changed:
            self.audit.record("patient.update", RESOURCE, patient.id, changes=changed)
        return await self._visible(patient)

    async def delete(self, patient_id: uuid.UUID) -> None:
        patient = await self._readable_current(patient_id)
        plan = await self.plan("delete")
        if plan.is_empty:
            raise Forbidden("You may not delete patient records", code="action_forbidden")
        plan.check_delete(row_of(PATIENT_RESOURCE, patient))
        before = _snapshot(patient)
        patient.deleted_at = self.runtime.clock.now()
        await self.repository.flush()
        self.audit.record(
            "patient.delete", RESOURCE, patient.id, changes=diff(before, _snapshot(patient))
        )

    async def restore(self, patient_id: uuid.UUID) -> Row:
        patient = await self._readable_current(patient_id, deleted=True)
        plan = await self.plan("delete")
        if plan.is_empty:
            raise Forbidden("You may not restore patient records", code="action_forbidden")
        plan.check_delete(row_of(PATIENT_RESOURCE, patient))
        before = _snapshot(patient)
        patient.deleted_at = None
        await self.repository.flush()
        self.audit.record(
            "patient.restore", RESOURCE, patient.id, changes=diff(before, _snapshot(patient))
        )
        return await self._visible(patient)

    async def _visible(self, patient: Patient) -> Row:
        """What the caller may read of a record it just wrote ({"id"} only when none)."""
        plan = await self.plan("read")
        masked = plan.mask(row_of(PATIENT_RESOURCE, patient))
        return masked or {"id": patient.id}

    # ---- break-glass ------------------------------------------------------------------------

    async def break_glass(self, patient_id: uuid.UUID, reason: str) -> tuple[BreakGlassGrant, Row]:
        patient = await self.repository.get(patient_id)
        if patient is None:
            raise NotFound("Patient not found")
        assert self.principal.user_id is not None  # the permission gate refuses the guest
        now = self.runtime.clock.now()
        grant = BreakGlassGrant(
            user_id=self.principal.user_id,
            patient_id=patient.id,
            reason=reason,
            expires_at=now + timedelta(minutes=self.runtime.settings.BREAK_GLASS_MINUTES),
        )
        self.repository.add_grant(grant)
        self.audit.record(
            BREAK_GLASS_ACTION,
            RESOURCE,
            patient.id,
            details={"reason": reason, "expires_at": grant.expires_at, "grant_id": grant.id},
        )
        full = self._full_plan()
        return grant, full.mask(row_of(PATIENT_RESOURCE, patient))

    async def _break_glass_active(self, patient_id: uuid.UUID) -> bool:
        return await active_break_glass(
            self.session, self.principal, patient_id, self.runtime.clock.now()
        )


def _check_create(plan: AccessPlan, values: Mapping[str, Any]) -> dict[str, Any]:
    """plan.check_create, each policy's `check` judged on the row as it will be stored: a field
    the client did not send holds its column default (admission_status 'outpatient',
    public_consent false), not nothing."""
    return plan.check_create(values, defaults=row_of(PATIENT_RESOURCE, Patient(**values)))


def _prefix_terms(plan: AccessPlan, q: str) -> list[ColumnElement[bool]]:
    """`q` as a case-insensitive PREFIX of a searchable field the caller may read, one term per
    field (a row matches when any term does), over the masked columns (a hidden cell never
    matches). Empty when no searchable field is readable. lower(field) LIKE 'q%' is served by
    the text_pattern_ops expression indexes on PostgreSQL (see models.py)."""
    names = [
        f.name for f in PATIENT_RESOURCE.fields if f.searchable and f.name in plan.readable_fields
    ]
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped + "%"
    return [func.lower(plan.column(n)).like(pattern, escape="\\") for n in names]


def _conflict() -> Conflict:
    # Deliberately generic: the clashing value (an MRN) may be one the caller cannot read.
    return Conflict("The request conflicts with the current state of a resource", code="conflict")


def _snapshot(patient: Patient) -> dict[str, Any]:
    return {name: getattr(patient, name) for name in PATIENT_RESOURCE.field_names} | {
        "deleted_at": patient.deleted_at
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    """One CSV cell; hidden and null cells are empty. Formula-like text is neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return value
