"""Canary: every cell of every patient carries a unique marker; for each seeded role (and a
two-role user, and the anonymous public) every read path is called and no marker of a hidden
cell or hidden row may appear in any response body or header.

"Hidden" is computed here, in plain Python, from the policy rows in the database and the
principal's attributes - independently of the engine under test.

Markers: strings are f"CANARY-{field}-{n:03d}X"; dates and datetimes use a year unique to the
(field, patient) pair (rendered "YYYY-MM-DD..."); ids are UUIDs. Enum and boolean cells
(sex, admission_status, public_consent) cannot carry unique markers; their rows still do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlmodel import col

from app.authz.models import Policy, Role
from app.core.database import new_id
from app.modules.patients.models import Patient
from tests.factories import Factory
from tests.modules.patients.conftest import _client_for

URL = "/api/v1/patients"
STRING_FIELDS = (
    "mrn",
    "given_name",
    "family_name",
    "phone",
    "email",
    "address",
    "national_id",
    "department",
    "ward",
    "bed",
    "diagnosis",
    "medications",
    "allergies",
    "clinical_notes",
    "insurance_number",
    "emergency_contact",
    "public_status",
)
DATE_FIELDS = {  # field -> base year; the patient's number is added
    "date_of_birth": 1800,
    "admitted_at": 2100,
    "discharged_at": 2200,
    "created_at": 2300,
    "updated_at": 2400,
}
EQUALITY_PARAMS = (
    "mrn",
    "family_name",
    "given_name",
    "department",
    "ward",
    "attending_clinician_id",
)
GROUPABLE = (
    "mrn",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "phone",
    "email",
    "national_id",
    "department",
    "ward",
    "bed",
    "admission_status",
    "attending_clinician_id",
    "insurance_number",
    "public_consent",
)


def s(field: str, n: int) -> str:
    return f"CANARY-{field}-{n:03d}X"


def when(field: str, n: int) -> datetime:
    return datetime(DATE_FIELDS[field] + n, 2, 3, 4, 5, 6, tzinfo=UTC)


# (patient number) -> the cells that decide the default policies' row filters
LAYOUT: dict[int, dict[str, Any]] = {
    0: {"department": 0, "ward": 0, "status": "admitted", "consent": True},
    1: {"department": 1, "ward": 1, "status": "discharged", "consent": False},
    2: {"department": 2, "ward": 2, "status": "admitted", "consent": False, "attended": True},
    3: {"department": 3, "ward": 3, "status": "outpatient", "consent": False},
    4: {"department": 0, "ward": 1, "status": "discharged", "consent": True},
    5: {"department": 5, "ward": 5, "status": "admitted", "consent": True},
    6: {"department": 0, "ward": 1, "status": "admitted", "consent": True, "deleted": True},
    7: {"department": 7, "ward": 1, "status": "admitted", "consent": True},
}
DOCTOR_DEPARTMENT = s("department", 0)
NURSE_WARD = s("ward", 1)


def build_row(n: int, attending: uuid.UUID) -> dict[str, Any]:
    layout = LAYOUT[n]
    row: dict[str, Any] = {f: s(f, n) for f in STRING_FIELDS}
    row["department"] = s("department", layout["department"])
    row["ward"] = s("ward", layout["ward"])
    row["date_of_birth"] = date(DATE_FIELDS["date_of_birth"] + n, 2, 3)
    for field in ("admitted_at", "discharged_at", "created_at", "updated_at"):
        row[field] = when(field, n)
    row.update(
        id=new_id(),
        sex=("female", "male", "other", "unknown")[n % 4],
        admission_status=layout["status"],
        public_consent=layout["consent"],
        attending_clinician_id=attending,
        deleted_at=datetime(2500, 1, 1, tzinfo=UTC) if layout.get("deleted") else None,
    )
    return row


def markers(row: Mapping[str, Any], field: str) -> set[str]:
    """The searchable renderings of one cell (empty for enum/boolean cells)."""
    value = row.get(field)
    if field in STRING_FIELDS:
        # department / ward values are shared between rows on purpose (row filters); they are
        # still unique to the (field, value) pair, which is what a leak would show.
        return {value}
    if field in DATE_FIELDS:
        return {f"{value.year:04d}-02-03"}
    if field in ("attending_clinician_id", "id"):
        return {str(value)}
    return set()


# ---- an independent evaluator of the policy filter language (the subset the defaults use,
# plus the logical operators) -------------------------------------------------------------


def _resolve(value: Any, user: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$user."):
        key = value[len("$user.") :]
        return str(user["id"]) if key == "id" else user["attributes"].get(key)
    return value


def _norm(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def admits(flt: Mapping[str, Any] | None, row: Mapping[str, Any], user: Mapping[str, Any]) -> bool:
    if flt is None:
        return True
    for key, operand in flt.items():
        if key == "_and":
            ok = all(admits(f, row, user) for f in operand)
        elif key == "_or":
            ok = any(admits(f, row, user) for f in operand)
        elif key == "_not":
            ok = not admits(operand, row, user)
        else:
            cell = _norm(row.get(key))
            ok = True
            for op, raw in operand.items():
                value = _resolve(raw, user)
                if op == "_eq":
                    ok = ok and cell is not None and value is not None and cell == value
                elif op == "_neq":
                    ok = ok and cell is not None and value is not None and cell != value
                elif op == "_in":
                    ok = ok and cell is not None and cell in [_resolve(v, user) for v in value]
                elif op == "_null":
                    ok = ok and ((cell is None) == bool(value))
                elif op == "_nnull":
                    ok = ok and ((cell is not None) == bool(value))
                else:  # pragma: no cover - the defaults use none other
                    raise AssertionError(f"canary evaluator lacks {op}")
        if not ok:
            return False
    return True


ALL_FIELDS = (
    *STRING_FIELDS,
    *DATE_FIELDS,
    "sex",
    "admission_status",
    "public_consent",
    "attending_clinician_id",
)


def visible_cells(
    rules: Iterable[Mapping[str, Any]], row: Mapping[str, Any], user: Mapping[str, Any]
) -> set[str] | None:
    """None when the row is hidden; else the visible fields (id included)."""
    if row["deleted_at"] is not None:
        return None
    visible: set[str] = set()
    admitted = False
    for rule in rules:
        if admits(rule["row_filter"], row, user):
            admitted = True
            fields = rule["fields"]
            visible |= set(ALL_FIELDS) if "*" in fields else set(fields)
    return (visible | {"id"}) if admitted else None


def hidden_markers(
    rules: list[dict[str, Any]], rows: list[dict[str, Any]], user: Mapping[str, Any]
) -> set[str]:
    exposed: set[str] = set()
    hidden: set[str] = set()
    for row in rows:
        visible = visible_cells(rules, row, user)
        for field in (*ALL_FIELDS, "id"):
            target = exposed if visible is not None and field in visible else hidden
            target |= markers(row, field)
    # A value legitimately visible somewhere (a shared ward name) is not a leak elsewhere.
    return hidden - exposed


# ---- the test -------------------------------------------------------------------------


async def _rules_for(runtime: Any, roles: Iterable[str]) -> list[dict[str, Any]]:
    async with runtime.session_factory() as session:
        statement = (
            select(Policy)
            .join(Role, col(Role.id) == col(Policy.role_id))
            .where(
                col(Role.name).in_(list(roles)),
                col(Policy.resource) == "patient",
                col(Policy.action) == "read",
                col(Policy.is_active).is_(True),
                col(Role.is_active).is_(True),
            )
        )
        return [
            {"fields": list(p.fields), "row_filter": p.row_filter}
            for p in (await session.scalars(statement)).all()
        ]


def _requests(
    rows: list[dict[str, Any]], *, break_glass: bool
) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, url, params) for every read path. Break-glass is probed only by callers who
    may not use it (for holders it is, by design, a full read: see test_patients_write)."""
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", URL, {"limit": 100}),
        ("GET", URL, {"limit": 1, "offset": 3}),
        ("GET", URL, {"limit": 1, "offset": 50}),
        ("GET", f"{URL}/export", {"format": "csv"}),
        ("GET", f"{URL}/export", {"fields": "mrn,diagnosis,phone,ward"}),
        ("GET", f"{URL}/export", {"filter": json.dumps({"diagnosis": {"_nnull": True}})}),
        ("GET", f"{URL}/{uuid.uuid4()}", None),
        ("GET", f"{URL}/not-a-uuid", None),
        ("GET", URL, {"filter": "{bad json"}),
        ("GET", URL, {"filter": json.dumps({"nope": {"_eq": 1}})}),
        ("GET", URL, {"q": "CANARY"}),
        ("GET", URL, {"admission_status": "admitted"}),
        ("GET", URL, {"public_consent": "true"}),
        ("GET", URL, {"sex": "female"}),
    ]
    for row in rows:
        calls.append(("GET", f"{URL}/{row['id']}", None))
        if not break_glass:
            calls.append(("POST", f"{URL}/{row['id']}/break-glass", {"reason": "canary probe"}))
        calls.append(("PATCH", f"{URL}/{row['id']}", {"bed": "x"}))
        calls.append(("DELETE", f"{URL}/{row['id']}", None))
        for name in EQUALITY_PARAMS:
            calls.append(("GET", URL, {name: str(row[name]), "limit": 100}))
        calls.append(("GET", URL, {"q": row["family_name"]}))
        calls.append(("GET", URL, {"q": row["mrn"][-5:]}))
    for field in ALL_FIELDS:
        for direction in ("", "-"):
            if field != "clinical_notes":
                calls.append(("GET", URL, {"sort": direction + field, "limit": 100}))
        calls.append(("GET", URL, {"fields": field, "limit": 100}))
        calls.append(("GET", URL, {"filter": json.dumps({field: {"_nnull": True}})}))
    for field in STRING_FIELDS:
        calls.append(("GET", URL, {"filter": json.dumps({field: {"_contains": "CANARY"}})}))
    for field in GROUPABLE:
        calls.append(("GET", f"{URL}/stats", {"group_by": field}))
    return calls


async def _call(
    client: httpx.AsyncClient, method: str, url: str, params: dict[str, Any] | None
) -> httpx.Response:
    if method == "GET":
        return await client.get(url, params=params)
    if method == "DELETE":
        return await client.delete(url)
    return await client.request(method, url, json=params)


@pytest.mark.parametrize(
    "roles",
    [("guest",), ("doctor",), ("nurse",), ("receptionist",), ("admin",), ("nurse", "receptionist")],
    ids=lambda r: "+".join(r),
)
async def test_no_hidden_marker_leaks(
    roles: tuple[str, ...], app: Any, factory: Factory, client: httpx.AsyncClient
) -> None:
    runtime = app.state.runtime
    attributes = {"department": DOCTOR_DEPARTMENT, "ward": NURSE_WARD}
    staff_user = await factory.user(roles=["user"])
    others = [await factory.user(roles=["user"]) for _ in LAYOUT]
    if roles == ("guest",):
        caller: httpx.AsyncClient = client
        user_view: dict[str, Any] = {"id": None, "attributes": {}}
    else:
        staff_user = await factory.user(roles=list(roles), attributes=attributes)
        caller = await _client_for(factory, staff_user)
        user_view = {"id": str(staff_user.id), "attributes": attributes}
    rows = [
        build_row(n, staff_user.id if LAYOUT[n].get("attended") else others[n].id) for n in LAYOUT
    ]
    async with runtime.session_factory() as session:
        await session.execute(insert(Patient), rows)
        await session.commit()

    rules = await _rules_for(runtime, roles)
    assert rules, "the seeded role has read policies"
    secret = hidden_markers(rules, rows, user_view)
    visible_rows = [r for r in rows if visible_cells(rules, r, user_view) is not None]
    assert secret, "some cells are hidden from every non-admin principal"

    # Sanity: the test would see a leak (the visible markers do show up).
    listed = await caller.get(URL, params={"limit": 100})
    assert listed.status_code == 200
    assert {i["id"] for i in listed.json()["items"]} >= {str(r["id"]) for r in visible_rows}

    leaks: list[str] = []
    may_break_glass = bool({"doctor", "admin"} & set(roles))
    for method, url, params in _requests(rows, break_glass=may_break_glass):
        response = await _call(caller, method, url, params)
        assert response.status_code < 500, (url, params, response.text)
        sent = json.dumps(params or {}) + url
        haystack = response.text + json.dumps(dict(response.headers))
        for marker in secret:
            if marker in haystack and marker not in sent:
                leaks.append(f"{method} {url} {params}: {marker}")
    assert not leaks, leaks[:20]
    if caller is not client:
        await caller.aclose()
