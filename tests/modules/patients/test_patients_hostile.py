"""Hostile input found by auditing issue 4 from the outside: nothing a client sends produces a
5xx (NUL characters, datetimes that overflow once converted to UTC), totals stay exact when
groups are capped, and a create policy's check sees the row as it is stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.modules.patients import service as patients_service
from tests.modules.patients.conftest import MakePatient, StaffClient
from tests.modules.patients.test_patients_write import policy_id

URL = "/api/v1/patients"


def names_field(response: httpx.Response, field: str) -> bool:
    body = response.json()
    return response.headers["content-type"].startswith("application/problem+json") and any(
        e["field"] == field for e in body.get("errors", [])
    )


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("", {"ward": "C1\x00"}, "ward"),
        ("", {"mrn": "\x00"}, "mrn"),
        ("", {"q": "ab\x00"}, "q"),
        ("", {"sort": "family_name\x00"}, "sort"),
        ("", {"fields": "ward\x00"}, "fields"),
        ("", {"filter": json.dumps({"ward": {"_eq": "C1\u0000"}})}, "filter"),
        ("", {"filter": json.dumps({"_or": [{"ward": {"_in": ["a", "\u0000"]}}]})}, "filter"),
        ("/stats", {"group_by": "ward", "ward": "\x00"}, "ward"),
        (
            "/stats",
            {"group_by": "ward", "filter": json.dumps({"ward": {"_eq": "\u0000"}})},
            "filter",
        ),
        ("/export", {"ward": "\x00"}, "ward"),
        ("/export", {"filter": json.dumps({"ward": {"_eq": "\u0000"}})}, "filter"),
    ],
)
async def test_nul_in_a_query_is_422_naming_it(
    admin_client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    """PostgreSQL refuses NUL in text (a 503 before, and a stream cut mid-way for export)."""
    response = await admin_client.get(URL + path, params=params)
    assert response.status_code == 422, response.text
    assert names_field(response, field), response.text


async def test_nul_in_a_body_is_422_naming_it(
    admin_client: httpx.AsyncClient, make_patient: MakePatient, staff: StaffClient
) -> None:
    created = await admin_client.post(
        URL, json={"mrn": "NUL-1", "given_name": "A\x00", "family_name": "B"}
    )
    assert created.status_code == 422 and names_field(created, "given_name"), created.text
    p = await make_patient(department="cardiology")
    patched = await admin_client.patch(f"{URL}/{p['id']}", json={"diagnosis": "x\x00y"})
    assert patched.status_code == 422 and names_field(patched, "diagnosis"), patched.text
    _, doctor = await staff("doctor", department="cardiology")
    reason = "Emergency\x00 in the ER, need allergies"
    glass = await doctor.post(f"{URL}/{p['id']}/break-glass", json={"reason": reason})
    assert glass.status_code == 422 and names_field(glass, "reason"), glass.text
    blank = await doctor.post(f"{URL}/{p['id']}/break-glass", json={"reason": " " * 12})
    assert blank.status_code == 422 and names_field(blank, "reason"), blank.text


async def test_datetime_out_of_range_is_422(
    admin_client: httpx.AsyncClient, make_patient: MakePatient
) -> None:
    body = {"mrn": "DT-1", "given_name": "A", "family_name": "B"}
    late = await admin_client.post(URL, json={**body, "admitted_at": "9999-12-31T23:59:59-05:00"})
    assert late.status_code == 422 and names_field(late, "admitted_at"), late.text
    p = await make_patient()
    early = await admin_client.patch(
        f"{URL}/{p['id']}", json={"discharged_at": "0001-01-01T00:00:00+05:00"}
    )
    assert early.status_code == 422 and names_field(early, "discharged_at"), early.text
    for flt in (
        {"admitted_at": {"_gt": "9999-12-31T23:59:59-05:00"}},
        {"date_of_birth": {"_eq": "0001-01-01T00:00:00+05:00"}},
    ):
        listed = await admin_client.get(URL, params={"filter": json.dumps(flt)})
        assert listed.status_code == 422 and names_field(listed, "filter"), listed.text
    # A naive datetime is taken as UTC, as in the filter language.
    naive = await admin_client.post(URL, json={**body, "admitted_at": "2026-01-02T03:04:05"})
    assert naive.status_code == 201, naive.text
    assert naive.json()["admitted_at"].startswith("2026-01-02T03:04:05")
    assert naive.json()["admitted_at"].endswith(("Z", "+00:00"))


async def test_stats_total_counts_every_row_when_groups_are_capped(
    admin_client: httpx.AsyncClient, make_patient: MakePatient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ward in ("SG1", "SG1", "SG2", "SG3", "SG4"):
        await make_patient(ward=ward, department="STATSCAP")
    monkeypatch.setattr(patients_service, "MAX_GROUPS", 2)
    response = await admin_client.get(
        f"{URL}/stats", params={"group_by": "ward", "department": "STATSCAP"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["groups"]) == 2 and body["groups"][0] == {"value": "SG1", "count": 2}
    assert body["total"] == 5


async def test_create_check_sees_column_defaults(
    staff: StaffClient, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    """A create policy's check is evaluated on the row as stored: leaving out a field does not
    dodge a check its default value violates (nor fail one its default satisfies)."""
    pid = await policy_id(runtime, "receptionist", "create")
    consent = {"public_consent": {"_eq": True}}
    edited = await admin_client.patch(
        f"/api/v1/policies/{pid}", json={"check": {"_not": {"public_consent": {"_eq": False}}}}
    )
    assert edited.status_code == 200, edited.text
    _, receptionist = await staff("receptionist")
    body = {"mrn": "CHK-1", "given_name": "A", "family_name": "B"}
    refused = await receptionist.post(URL, json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "policy_check_failed"
    listed = await admin_client.get(URL, params={"mrn": "CHK-1"})
    assert listed.json()["total"] == 0
    # The check is met by the default: a create without the field passes.
    edited = await admin_client.patch(
        f"/api/v1/policies/{pid}",
        json={"check": {"_and": [{"public_consent": {"_eq": False}}, {"_not": consent}]}},
    )
    assert edited.status_code == 200, edited.text
    created = await receptionist.post(URL, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["admission_status"] == "admitted"  # the preset still applies
