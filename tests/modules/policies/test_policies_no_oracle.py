"""Policies found by auditing issue 4 from the outside: malformed documents are 422s naming the
part at fault (never a 5xx), and neither the change preview's record counts nor record explain
tell a caller anything about records or cells the caller may not read."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.core.database import new_id
from app.modules.patients.models import Patient
from tests.factories import Factory
from tests.modules.policies.test_policies_api import make_role, role_id

API = "/api/v1"


async def patient(runtime: Any, **fields: Any) -> uuid.UUID:
    row = {
        "id": new_id(),
        "mrn": f"NO-{uuid.uuid4().hex[:10]}",
        "given_name": "G",
        "family_name": "F",
        "admission_status": "admitted",
        "public_consent": False,
        **fields,
    }
    async with runtime.session_factory() as session:
        await session.execute(insert(Patient), [row])
        await session.commit()
    return row["id"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"presets": {"admitted_at": "9999-12-31T23:59:59-05:00"}}, "presets"),
        ({"row_filter": {"admitted_at": {"_gt": "9999-12-31T23:59:59-05:00"}}}, "row_filter"),
        ({"check": {"date_of_birth": {"_eq": "0001-01-01T00:00:00+05:00"}}}, "check"),
        ({"row_filter": {"ward": {"_eq": "C1\u0000"}}}, "row_filter"),
        ({"presets": {"ward": "\u0000"}}, "presets"),
        # presets that every later write would fail on: a server-managed field, an empty
        # value for a field that cannot be empty
        ({"presets": {"created_at": "2026-01-01T00:00:00Z"}}, "presets"),
        ({"presets": {"admission_status": None}}, "presets"),
        ({"presets": {"mrn": None}}, "presets"),
        ({"description": "nurses\u0000"}, "description"),
        ({"fields": ["ward\u0000"]}, "fields"),
    ],
)
async def test_malformed_policy_is_422_naming_the_part(
    admin_client: httpx.AsyncClient, runtime: Any, change: dict[str, Any], part: str
) -> None:
    rid = await role_id(runtime, "nurse")
    base = {"role_id": str(rid), "resource": "patient", "action": "update", "fields": ["bed"]}
    created = await admin_client.post(f"{API}/policies", json={**base, **change})
    assert created.status_code == 422, created.text
    assert any(e["field"] == part for e in created.json()["errors"]), created.text
    preview = await admin_client.post(
        f"{API}/policies/preview", json={"operation": "create", "policy": {**base, **change}}
    )
    assert preview.status_code == 422, preview.text


async def test_preview_counts_only_what_the_caller_may_read(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    """A policy reader who may not read diagnoses cannot count patients by diagnosis by
    previewing a policy filtered on it; an administrator still gets the exact figure."""
    await factory.user(roles=["doctor"], attributes={"department": "nowhere"})
    for _ in range(3):
        await patient(runtime, diagnosis="PREVIEW-SECRET-DX", department="oncology")
    doctor_role = await role_id(runtime, "doctor")
    proposal = {
        "operation": "create",
        "policy": {
            "role_id": str(doctor_role),
            "resource": "patient",
            "action": "read",
            "fields": ["given_name"],
            "row_filter": {"diagnosis": {"_eq": "PREVIEW-SECRET-DX"}},
        },
    }

    def gained(response: httpx.Response) -> set[int]:
        assert response.status_code == 200, response.text
        return {c["records_gained"] for u in response.json()["users"] for c in u["changes"]}

    by_admin = await admin_client.post(f"{API}/policies/preview", json=proposal)
    assert 3 in gained(by_admin)
    assert all(u["username"] for u in by_admin.json()["users"])  # the admin may read users
    await make_role(runtime, "policy_reader", ["policy:read"])
    reader = await factory.client_for(await factory.logged_in(roles=["policy_reader"]))
    by_reader = await reader.post(f"{API}/policies/preview", json=proposal)
    assert gained(by_reader) == {0}
    # nor does a reader without user:read learn who the affected users are, only their ids
    users = by_reader.json()["users"]
    assert users and all(u["username"] is None and u["user_id"] for u in users)
    # A nurse of ward C1 reads those rows but not their diagnosis: still nothing to count.
    nurse_reader = await factory.client_for(
        await factory.logged_in(roles=["policy_reader", "nurse"], attributes={"ward": "C1"})
    )
    for _ in range(2):
        await patient(runtime, diagnosis="PREVIEW-SECRET-DX", department="oncology", ward="C1")
    assert gained(await nurse_reader.post(f"{API}/policies/preview", json=proposal)) == {0}
    by_ward = {**proposal["policy"], "row_filter": {"ward": {"_eq": "C1"}}}  # type: ignore[dict-item]
    counted = await nurse_reader.post(
        f"{API}/policies/preview", json={"operation": "create", "policy": by_ward}
    )
    assert 2 in gained(counted)  # what the nurse may read is counted


async def test_explain_record_needs_the_record_readable(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    """Record explain answers 404 for a record the caller may not read (no existence or
    row-filter oracle) and judges the target's policies on the caller's visible cells only."""
    target = await factory.user(roles=["doctor"], attributes={"department": "oncology"})
    record = await patient(runtime, department="oncology", ward="C1", diagnosis="dx")
    outside = await patient(runtime, department="oncology", ward="N1")
    params = {"user_id": str(target.id), "resource": "patient", "record_id": str(record)}
    url = f"{API}/authz/explain-record"
    full = await admin_client.get(url, params=params)
    assert full.status_code == 200 and full.json()["admitted"] is True, full.text

    await make_role(runtime, "explainer", ["authz:explain"])
    plain = await factory.client_for(await factory.logged_in(roles=["explainer"]))
    assert (await plain.get(url, params=params)).status_code == 404
    assert (
        await plain.get(url, params={**params, "record_id": str(uuid.uuid4())})
    ).status_code == 404

    # A ward nurse reads the record but not its department: the doctor's department filter
    # cannot be seen to admit it.
    nurse = await factory.client_for(
        await factory.logged_in(roles=["explainer", "nurse"], attributes={"ward": "C1"})
    )
    seen = await nurse.get(url, params=params)
    assert seen.status_code == 200, seen.text
    assert seen.json()["admitted"] is False
    assert (await nurse.get(url, params={**params, "record_id": str(outside)})).status_code == 404
