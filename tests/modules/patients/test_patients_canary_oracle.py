"""The canary's complement: tests/security/test_canary_patients.py proves no marker of a hidden
cell or row appears in any response, but a filter, search or sort can also leak a hidden cell
through WHICH rows come back and in WHAT order, with no marker in the body at all ('results' vs
'no results'). Here, for each seeded role and the public, every hidden cell of a visible row is
probed by value through every clause that takes one: the row must behave exactly as if the
cell were empty. Hidden is computed independently, by the canary's own evaluator."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.modules.patients.models import Patient
from tests.factories import Factory
from tests.modules.patients.conftest import _client_for
from tests.security.test_canary_patients import (
    DATE_FIELDS,
    DOCTOR_DEPARTMENT,
    LAYOUT,
    NURSE_WARD,
    STRING_FIELDS,
    _rules_for,
    build_row,
    visible_cells,
)

URL = "/api/v1/patients"
EQUALITY = ("mrn", "family_name", "given_name", "department", "ward", "attending_clinician_id")
EXPORT_EQUALITY = ("ward", "department")
SEARCHABLE = ("mrn", "given_name", "family_name")
ORDERED = (*STRING_FIELDS, *DATE_FIELDS, "attending_clinician_id")


def literal(row: dict[str, Any], field: str) -> str:
    value = row[field]
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def listed(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


@pytest.mark.parametrize(
    "roles",
    [
        ("guest",),
        ("doctor",),
        ("nurse",),
        ("receptionist",),
        ("nurse", "receptionist"),
        ("doctor", "nurse"),
        ("doctor", "receptionist"),
    ],
    ids=lambda r: "+".join(r),
)
async def test_hidden_cells_are_no_oracle(
    roles: tuple[str, ...], app: Any, factory: Factory, client: httpx.AsyncClient
) -> None:
    runtime = app.state.runtime
    attributes = {"department": DOCTOR_DEPARTMENT, "ward": NURSE_WARD}
    others = [await factory.user(roles=["user"]) for _ in LAYOUT]
    if roles == ("guest",):
        caller, me = client, None
        view: dict[str, Any] = {"id": None, "attributes": {}}
    else:
        me = await factory.user(roles=list(roles), attributes=attributes)
        caller = await _client_for(factory, me)
        view = {"id": str(me.id), "attributes": attributes}
    rows = [
        build_row(n, me.id if (me and LAYOUT[n].get("attended")) else others[n].id) for n in LAYOUT
    ]
    async with runtime.session_factory() as session:
        await session.execute(insert(Patient), rows)
        await session.commit()
    rules = await _rules_for(runtime, roles)
    seen = {str(r["id"]): visible_cells(rules, r, view) for r in rows}
    shown = {rid: cells for rid, cells in seen.items() if cells is not None}
    readable = set().union(*shown.values()) if shown else set()
    probes = 0
    problems: list[str] = []

    async def absent(label: str, rid: str, params: dict[str, Any], path: str = "") -> None:
        nonlocal probes
        probes += 1
        response = await caller.get(URL + path, params=params)
        if path == "/export":
            assert response.status_code in (200, 403), response.text
            if response.status_code == 403:
                return
            ids = [r["id"] for r in csv.DictReader(io.StringIO(response.text))]
        else:
            ids = listed(response)
        if rid in ids:
            problems.append(f"{label}: hidden cell of {rid} matched {params}")

    for rid, cells in shown.items():
        row = next(r for r in rows if str(r["id"]) == rid)
        for field in ORDERED:
            if field in cells or field not in readable:
                continue  # visible here, or refused with 403 everywhere (tested elsewhere)
            value = literal(row, field)
            flt = json.dumps({field: {"_eq": value}})
            await absent("filter", rid, {"filter": flt, "limit": 100})
            await absent("export filter", rid, {"filter": flt}, "/export")
            if field in EQUALITY:
                await absent("param", rid, {field: value, "limit": 100})
            if field in EXPORT_EQUALITY:
                await absent("export param", rid, {field: value}, "/export")
            if field in SEARCHABLE:
                await absent("q", rid, {"q": value, "limit": 100})
                await absent("export q", rid, {"q": value}, "/export")
            if field in STRING_FIELDS:
                part = json.dumps({field: {"_starts_with": value[:-1]}})
                await absent("prefix", rid, {"filter": part, "limit": 100})
            stats = await caller.get(
                f"{URL}/stats", params={"group_by": "admission_status", "filter": flt}
            )
            expected = sum(
                1
                for other, cells2 in shown.items()
                if field in cells2
                and literal(next(r for r in rows if str(r["id"]) == other), field) == value
            )
            if stats.status_code != 200 or stats.json()["total"] != expected:
                problems.append(f"stats: hidden cell of {rid} counted for {field}")

    # Sorting: a hidden cell sorts with the NULLs (last, by id) in both directions.
    for field in ORDERED:
        if field not in readable or field == "clinical_notes":  # not sortable
            continue
        empty = sorted(
            (rid for rid, cells in shown.items() if field not in cells),
            key=lambda rid: rid,
        )
        for direction in ("", "-"):
            order = listed(await caller.get(URL, params={"sort": direction + field, "limit": 100}))
            tail = order[len(order) - len(empty) :] if empty else []
            if sorted(tail) != empty:
                problems.append(f"sort {direction}{field}: hidden cells ordered by value")
    if caller is not client:
        await caller.aclose()
    assert not problems, problems[:20]
    if len(roles) > 1:  # one role's cells are all-or-nothing per row; two roles' are not
        assert probes, "some visible row has a hidden, otherwise readable cell"
