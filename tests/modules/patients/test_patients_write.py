"""Writes through the policies: create (writable fields, presets), update (rows, fields, check,
scope escape), delete / restore, the generic 409, break-glass, and live policy changes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from app.authz.models import Policy, Role
from app.modules.audit.models import AuditLog
from tests.modules.patients.conftest import MakePatient, StaffClient

URL = "/api/v1/patients"


async def policy_id(runtime: Any, role: str, action: str) -> uuid.UUID:
    async with runtime.session_factory() as session:
        statement = (
            select(col(Policy.id))
            .join(Role, col(Role.id) == col(Policy.role_id))
            .where(
                col(Role.name) == role,
                col(Policy.resource) == "patient",
                col(Policy.action) == action,
            )
        )
        return (await session.execute(statement)).scalar_one()


async def audit_rows(runtime: Any, action: str, resource_id: Any) -> list[AuditLog]:
    async with runtime.session_factory() as session:
        statement = select(AuditLog).where(
            col(AuditLog.action) == action, col(AuditLog.resource_id) == str(resource_id)
        )
        return list((await session.scalars(statement)).all())


async def test_receptionist_creates_with_demographics_and_preset(
    staff: StaffClient, runtime: Any
) -> None:
    _, client = await staff("receptionist")
    body = {"mrn": "R-0001", "given_name": "Ann", "family_name": "Lee", "sex": "female"}
    response = await client.post(URL, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["admission_status"] == "admitted"  # preset
    assert "diagnosis" not in created
    rows = await audit_rows(runtime, "patient.create", created["id"])
    assert len(rows) == 1 and rows[0].changes and rows[0].changes["mrn"]["after"] == "R-0001"


async def test_create_refuses_non_writable_and_preset_fields(staff: StaffClient) -> None:
    _, client = await staff("receptionist")
    base = {"mrn": "R-0002", "given_name": "Bo", "family_name": "Kim"}
    response = await client.post(URL, json={**base, "diagnosis": "x", "phone": "1"})
    assert response.status_code == 403
    assert response.json()["fields"] == ["diagnosis", "phone"]
    preset = await client.post(URL, json={**base, "admission_status": "discharged"})
    assert preset.status_code == 403 and preset.json()["fields"] == ["admission_status"]
    _, nurse = await staff("nurse", ward="C1")
    assert (await nurse.post(URL, json=base)).status_code == 403  # no patient:create


async def test_mrn_clash_is_a_generic_409(
    staff: StaffClient, make_patient: MakePatient, admin_client: httpx.AsyncClient
) -> None:
    await make_patient(mrn="SECRET-MRN-77", admission_status="discharged", diagnosis="hidden")
    _, client = await staff("receptionist")
    body = {"mrn": "SECRET-MRN-77", "given_name": "X", "family_name": "Y"}
    response = await client.post(URL, json=body)
    assert response.status_code == 409
    assert "SECRET" not in response.text and "mrn" not in response.text.lower()
    other = await make_patient()
    patched = await admin_client.patch(f"{URL}/{other['id']}", json={"mrn": "SECRET-MRN-77"})
    assert patched.status_code == 409 and "SECRET" not in patched.text


async def test_nurse_updates_bed_and_status_in_her_ward(
    staff: StaffClient, make_patient: MakePatient, runtime: Any
) -> None:
    _, nurse = await staff("nurse", ward="C1")
    p = await make_patient(ward="C1", bed="C1-01", diagnosis="dx")
    response = await nurse.patch(f"{URL}/{p['id']}", json={"bed": "C1-07"})
    assert response.status_code == 200, response.text
    assert response.json()["bed"] == "C1-07" and "diagnosis" not in response.json()
    rows = await audit_rows(runtime, "patient.update", p["id"])
    assert rows[0].changes == {"bed": {"before": "C1-01", "after": "C1-07"}}
    refused = await nurse.patch(f"{URL}/{p['id']}", json={"diagnosis": "x", "bed": "2"})
    assert refused.status_code == 403 and refused.json()["fields"] == ["diagnosis"]
    # moving the patient out of her ward: ward is not writable
    moved = await nurse.patch(f"{URL}/{p['id']}", json={"ward": "N1"})
    assert moved.status_code == 403 and moved.json()["fields"] == ["ward"]
    outside = await make_patient(ward="N1")
    assert (await nurse.patch(f"{URL}/{outside['id']}", json={"bed": "1"})).status_code == 404


async def test_scope_escape_refused_by_check_after_policy_edit(
    staff: StaffClient,
    make_patient: MakePatient,
    admin_client: httpx.AsyncClient,
    runtime: Any,
) -> None:
    """An administrator lets nurses write `ward`; the update policy's check still keeps the
    record inside the nurse's ward. The edit is live on the next request."""
    _, nurse = await staff("nurse", ward="C1")
    p = await make_patient(ward="C1")
    pid = await policy_id(runtime, "nurse", "update")
    edited = await admin_client.patch(
        f"/api/v1/policies/{pid}", json={"fields": ["admission_status", "bed", "ward"]}
    )
    assert edited.status_code == 200, edited.text
    escape = await nurse.patch(f"{URL}/{p['id']}", json={"ward": "N1"})
    assert escape.status_code == 403 and escape.json()["code"] == "policy_check_failed"
    assert (await nurse.patch(f"{URL}/{p['id']}", json={"ward": "C1"})).status_code == 200


async def test_doctor_updates_clinical_fields_of_attended_patients_only(
    staff: StaffClient, make_patient: MakePatient
) -> None:
    doctor, client = await staff("doctor", department="cardiology")
    attended = await make_patient(department="neurology", attending_clinician_id=doctor.id)
    colleague = await make_patient(department="cardiology")
    elsewhere = await make_patient(department="oncology")
    ok = await client.patch(f"{URL}/{attended['id']}", json={"diagnosis": "new dx"})
    assert ok.status_code == 200 and ok.json()["diagnosis"] == "new dx"
    unassign = await client.patch(f"{URL}/{attended['id']}", json={"attending_clinician_id": None})
    assert unassign.status_code == 403 and unassign.json()["fields"] == ["attending_clinician_id"]
    readable_only = await client.patch(f"{URL}/{colleague['id']}", json={"diagnosis": "x"})
    assert readable_only.status_code == 403
    assert readable_only.json()["code"] == "record_forbidden"
    assert (
        await client.patch(f"{URL}/{elsewhere['id']}", json={"diagnosis": "x"})
    ).status_code == 404


async def test_null_for_required_field_is_422(
    admin_client: httpx.AsyncClient, make_patient: MakePatient
) -> None:
    p = await make_patient()
    response = await admin_client.patch(f"{URL}/{p['id']}", json={"family_name": None})
    assert response.status_code == 422
    # The refusal names the field (found by fuzzing: it named only "body").
    assert [e["field"] for e in response.json()["errors"]] == ["family_name"]
    response = await admin_client.post(
        URL,
        json={"mrn": "NULL-1", "given_name": "A", "family_name": "B", "admission_status": None},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["admission_status"]
    fields = {"public_consent": None, "mrn": None, "diagnosis": "x"}
    response = await admin_client.patch(f"{URL}/{p['id']}", json=fields)
    assert sorted(e["field"] for e in response.json()["errors"]) == ["mrn", "public_consent"]
    # Leaving them out is fine; a nullable field may still be cleared.
    response = await admin_client.patch(f"{URL}/{p['id']}", json={"diagnosis": None})
    assert response.status_code == 200, response.text


async def test_delete_and_restore(
    admin_client: httpx.AsyncClient, staff: StaffClient, make_patient: MakePatient, runtime: Any
) -> None:
    p = await make_patient(department="cardiology")
    _, doctor = await staff("doctor", department="cardiology")
    assert (await doctor.delete(f"{URL}/{p['id']}")).status_code == 403  # no patient:delete
    assert (await admin_client.delete(f"{URL}/{p['id']}")).status_code == 204
    assert (await admin_client.get(f"{URL}/{p['id']}")).status_code == 404
    assert (await doctor.get(f"{URL}/{p['id']}")).status_code == 404
    listed = (await admin_client.get(URL, params={"mrn": p["mrn"]})).json()
    assert listed["total"] == 0
    assert (await admin_client.delete(f"{URL}/{p['id']}")).status_code == 404
    restored = await admin_client.post(f"{URL}/{p['id']}/restore")
    assert restored.status_code == 200 and restored.json()["mrn"] == p["mrn"]
    assert (await admin_client.post(f"{URL}/{p['id']}/restore")).status_code == 404
    assert (await doctor.get(f"{URL}/{p['id']}")).status_code == 200
    assert len(await audit_rows(runtime, "patient.delete", p["id"])) == 1
    assert len(await audit_rows(runtime, "patient.restore", p["id"])) == 1


async def test_admin_role_delete_policy_scopes_deletes(
    staff: StaffClient, make_patient: MakePatient, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    _, admin = await staff("admin")
    inside = await make_patient(department="cardiology")
    outside = await make_patient(department="oncology")
    pid = await policy_id(runtime, "admin", "delete")
    narrowed = await admin_client.patch(
        f"/api/v1/policies/{pid}", json={"row_filter": {"department": {"_eq": "cardiology"}}}
    )
    assert narrowed.status_code == 200, narrowed.text
    refused = await admin.delete(f"{URL}/{outside['id']}")
    assert refused.status_code == 403 and refused.json()["code"] == "record_forbidden"
    assert (await admin.delete(f"{URL}/{inside['id']}")).status_code == 204


async def test_break_glass(
    staff: StaffClient,
    make_patient: MakePatient,
    admin_client: httpx.AsyncClient,
    clock: Any,
    runtime: Any,
) -> None:
    _, doctor = await staff("doctor", department="cardiology")
    _, nurse = await staff("nurse", ward="C1")
    p = await make_patient(department="oncology", diagnosis="dx-secret", phone="+1")
    url = f"{URL}/{p['id']}"
    assert (await doctor.get(url)).status_code == 404
    short = await doctor.post(f"{url}/break-glass", json={"reason": "x"})
    assert short.status_code == 422
    reason = "Unconscious patient in ER, allergy check"
    granted = await doctor.post(f"{url}/break-glass", json={"reason": reason})
    assert granted.status_code == 201, granted.text
    assert granted.json()["patient"]["diagnosis"] == "dx-secret"
    full = await doctor.get(url)
    assert full.status_code == 200 and full.json()["phone"] == "+1"
    logs = await admin_client.get("/api/v1/audit-logs", params={"action": "break_glass"})
    assert logs.status_code == 200, logs.text
    entries = [e for e in logs.json()["items"] if e["resource_id"] == str(p["id"])]
    assert len(entries) == 1 and entries[0]["details"]["reason"] == reason
    # the grant is for that record only
    other = await make_patient(department="oncology")
    assert (await doctor.get(f"{URL}/{other['id']}")).status_code == 404
    clock.advance(minutes=runtime.settings.BREAK_GLASS_MINUTES + 1)
    assert (await doctor.get(url)).status_code == 404
    refused = await nurse.post(f"{url}/break-glass", json={"reason": reason})
    assert refused.status_code == 403
    missing = await doctor.post(f"{URL}/{uuid.uuid4()}/break-glass", json={"reason": reason})
    assert missing.status_code == 404


async def test_explain_record_reports_a_live_break_glass_grant(
    staff: StaffClient,
    make_patient: MakePatient,
    admin_client: httpx.AsyncClient,
    clock: Any,
    runtime: Any,
) -> None:
    """Why may she read this record? The break-glass grant, while it lasts."""
    user, doctor = await staff("doctor", department="cardiology")
    p = await make_patient(department="oncology", diagnosis="dx-secret")
    explain = "/api/v1/authz/explain-record"
    params = {"user_id": str(user.id), "resource": "patient", "record_id": str(p["id"])}
    before = (await admin_client.get(explain, params=params)).json()
    assert before["admitted"] is False and before["emergency_access"] is False
    assert before["fields"]["diagnosis"]["visible"] is False
    reason = "Unconscious patient in ER, allergy check"
    granted = await doctor.post(f"{URL}/{p['id']}/break-glass", json={"reason": reason})
    assert granted.status_code == 201, granted.text
    during = await admin_client.get(explain, params=params)
    assert during.status_code == 200, during.text
    body = during.json()
    assert body["admitted"] is True and body["emergency_access"] is True
    assert all(f["visible"] for f in body["fields"].values())
    assert "break-glass" in body["note"]
    assert body["admitting_policies"] == []  # no policy of hers admits it: the grant does
    clock.advance(minutes=runtime.settings.BREAK_GLASS_MINUTES + 1)
    after = (await admin_client.get(explain, params=params)).json()
    assert after["admitted"] is False and after["emergency_access"] is False
    assert after["note"] is None
    assert (await admin_client.delete(f"{URL}/{p['id']}")).status_code == 204
    deleted = (await admin_client.get(explain, params=params)).json()
    assert deleted["note"] == "The record is soft-deleted"


async def test_removing_a_policy_takes_effect_on_next_request(
    client: httpx.AsyncClient,
    make_patient: MakePatient,
    admin_client: httpx.AsyncClient,
    runtime: Any,
) -> None:
    await make_patient(public_consent=True, public_status="Stable")
    assert (await client.get(URL)).json()["total"] >= 1
    pid = await policy_id(runtime, "guest", "read")
    assert (await admin_client.delete(f"/api/v1/policies/{pid}")).status_code == 204
    assert (await client.get(URL)).status_code == 401


async def test_unknown_attending_clinician_is_a_422_naming_it(staff: StaffClient) -> None:
    """Not the database's foreign-key refusal (a generic 409), and nothing is written."""
    user, client = await staff("admin")
    ghost = str(uuid.uuid4())
    body = {"mrn": "AC-1", "given_name": "Al", "family_name": "Ng"}
    refused = await client.post(URL, json={**body, "attending_clinician_id": ghost})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "attending_clinician_id"
    assert (await client.get(URL, params={"mrn": "AC-1"})).json()["items"] == []

    created = await client.post(URL, json={**body, "attending_clinician_id": str(user.id)})
    assert created.status_code == 201, created.text
    patient = created.json()["id"]
    moved = await client.patch(f"{URL}/{patient}", json={"attending_clinician_id": ghost})
    assert moved.status_code == 422, moved.text
    assert moved.json()["errors"][0]["field"] == "attending_clinician_id"
    assert (await client.get(f"{URL}/{patient}")).json()["attending_clinician_id"] == str(user.id)
