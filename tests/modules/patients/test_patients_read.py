"""Reads through the seeded roles' default policies: rows, cells, filters, sort, search, fields,
stats and export, for admin, doctor, nurse, receptionist and the anonymous public."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.modules.patients.conftest import MakePatient, StaffClient

URL = "/api/v1/patients"


@pytest.fixture
async def ward(make_patient: MakePatient, staff: StaffClient) -> dict[str, Any]:
    doctor, doctor_client = await staff("doctor", department="cardiology")
    nurse, nurse_client = await staff("nurse", ward="C1")
    receptionist, receptionist_client = await staff("receptionist", department="admissions")
    p = {
        "card_c1": await make_patient(
            department="cardiology",
            ward="C1",
            admission_status="admitted",
            public_consent=True,
            public_status="Stable",
            diagnosis="dx-card",
            medications="med-card",
            phone="+1-555-0001",
            family_name="Adams",
        ),
        "card_c2_dis": await make_patient(
            department="cardiology",
            ward="C2",
            admission_status="discharged",
            diagnosis="dx-dis",
            family_name="Baker",
        ),
        "neuro_attended": await make_patient(
            department="neurology",
            ward="N1",
            admission_status="admitted",
            attending_clinician_id=doctor.id,
            diagnosis="dx-neuro",
            family_name="Clark",
        ),
        "neuro_c1": await make_patient(
            department="neurology",
            ward="C1",
            admission_status="discharged",
            medications="med-neuro-c1",
            phone="+1-555-0004",
            diagnosis="dx-neuro-c1",
            family_name="Davis",
        ),
        "onc_out": await make_patient(
            department="oncology",
            ward=None,
            admission_status="outpatient",
            public_consent=True,
            public_status="Home",
            diagnosis="dx-onc",
            family_name="Evans",
        ),
    }
    return {
        "p": p,
        "doctor": (doctor, doctor_client),
        "nurse": (nurse, nurse_client),
        "receptionist": (receptionist, receptionist_client),
    }


def ids(body: dict[str, Any]) -> set[str]:
    return {item["id"] for item in body["items"]}


def pid(row: dict[str, Any]) -> str:
    return str(row["id"])


async def test_admin_sees_everything(admin_client: httpx.AsyncClient, ward: dict[str, Any]) -> None:
    response = await admin_client.get(URL, params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert ids(body) >= {pid(r) for r in ward["p"].values()}
    one = next(i for i in body["items"] if i["id"] == pid(ward["p"]["card_c1"]))
    assert one["diagnosis"] == "dx-card" and one["phone"] == "+1-555-0001"


async def test_doctor_department_and_attending(ward: dict[str, Any]) -> None:
    _, client = ward["doctor"]
    p = ward["p"]
    body = (await client.get(URL)).json()
    assert ids(body) == {pid(p["card_c1"]), pid(p["card_c2_dis"]), pid(p["neuro_attended"])}
    assert body["total"] == 3
    attended = next(i for i in body["items"] if i["id"] == pid(p["neuro_attended"]))
    assert attended["diagnosis"] == "dx-neuro"
    assert (await client.get(f"{URL}/{pid(p['neuro_c1'])}")).status_code == 404
    got = await client.get(f"{URL}/{pid(p['card_c2_dis'])}")
    assert got.status_code == 200 and got.json()["diagnosis"] == "dx-dis"


async def test_nurse_ward_and_cells(ward: dict[str, Any]) -> None:
    _, client = ward["nurse"]
    p = ward["p"]
    body = (await client.get(URL)).json()
    assert ids(body) == {pid(p["card_c1"]), pid(p["neuro_c1"])}
    for item in body["items"]:
        for hidden in ("diagnosis", "phone", "clinical_notes", "department", "public_status"):
            assert hidden not in item
        assert "medications" in item and "bed" in item
    assert (await client.get(f"{URL}/{pid(p['card_c2_dis'])}")).status_code == 404


async def test_receptionist_admitted_only(ward: dict[str, Any]) -> None:
    _, client = ward["receptionist"]
    p = ward["p"]
    body = (await client.get(URL)).json()
    assert ids(body) == {pid(p["card_c1"]), pid(p["neuro_attended"])}
    for item in body["items"]:
        assert "diagnosis" not in item and "medications" not in item
        assert "family_name" in item
    assert (await client.get(f"{URL}/{pid(p['card_c2_dis'])}")).status_code == 404


async def test_guest_sees_consenting_public_fields(
    client: httpx.AsyncClient, ward: dict[str, Any]
) -> None:
    p = ward["p"]
    body = (await client.get(URL)).json()
    assert ids(body) == {pid(p["card_c1"]), pid(p["onc_out"])}
    for item in body["items"]:
        assert set(item) <= {
            "id",
            "given_name",
            "family_name",
            "ward",
            "admission_status",
            "public_status",
        }
    got = await client.get(f"{URL}/{pid(p['card_c1'])}")
    assert got.status_code == 200 and got.json()["public_status"] == "Stable"
    assert (await client.get(f"{URL}/{pid(p['card_c2_dis'])}")).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"filter": json.dumps({"diagnosis": {"_eq": "dx-card"}})},
        {"sort": "-diagnosis"},
        {"fields": "given_name,diagnosis"},
        {"filter": json.dumps({"_or": [{"ward": {"_eq": "C1"}}, {"phone": {"_nnull": True}}]})},
    ],
)
async def test_nurse_naming_unreadable_fields_is_403(
    ward: dict[str, Any], params: dict[str, str]
) -> None:
    _, client = ward["nurse"]
    response = await client.get(URL, params=params)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["fields"] and set(body["fields"]) <= {"diagnosis", "phone"}
    assert "dx-" not in response.text


async def test_guest_field_filter_on_hidden_field_is_403(
    client: httpx.AsyncClient, ward: dict[str, Any]
) -> None:
    response = await client.get(URL, params={"department": "cardiology"})
    assert response.status_code == 403
    assert response.json()["fields"] == ["department"]
    stats = await client.get(f"{URL}/stats", params={"group_by": "department"})
    assert stats.status_code == 403 and stats.json()["fields"] == ["department"]


async def test_filters_sort_q_fields(ward: dict[str, Any]) -> None:
    _, client = ward["doctor"]
    p = ward["p"]
    body = (await client.get(URL, params={"ward": "C1"})).json()
    assert ids(body) == {pid(p["card_c1"])}
    body = (await client.get(URL, params={"admission_status": "discharged"})).json()
    assert ids(body) == {pid(p["card_c2_dis"])}
    body = (await client.get(URL, params={"sort": "-family_name"})).json()
    assert [i["family_name"] for i in body["items"]] == ["Clark", "Baker", "Adams"]
    body = (await client.get(URL, params={"q": "clar"})).json()
    assert ids(body) == {pid(p["neuro_attended"])}
    body = (await client.get(URL, params={"fields": "family_name,ward", "limit": 1})).json()
    assert body["total"] == 3 and len(body["items"]) == 1
    assert set(body["items"][0]) == {"id", "family_name", "ward"}
    flt = json.dumps({"_and": [{"department": {"_eq": "cardiology"}}, {"ward": {"_neq": "C1"}}]})
    body = (await client.get(URL, params={"filter": flt})).json()
    assert ids(body) == {pid(p["card_c2_dis"])}
    page2 = (await client.get(URL, params={"limit": 2, "offset": 2})).json()
    assert page2["total"] == 3 and len(page2["items"]) == 1
    empty = (await client.get(URL, params={"limit": 2, "offset": 10})).json()
    assert empty["total"] == 3 and empty["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"admission_status": "bogus"}, "admission_status"),
        ({"filter": "{not json"}, "filter"),
        ({"filter": json.dumps({"nope": {"_eq": 1}})}, "filter"),
        ({"filter": json.dumps({"ward": {"_like": "x"}})}, "filter"),
        ({"sort": "nope"}, "sort"),
        ({"limit": 1000}, "limit"),
    ],
)
async def test_bad_queries_are_422(
    ward: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    _, client = ward["doctor"]
    response = await client.get(URL, params=params)
    assert response.status_code == 422, response.text
    assert any(e["field"] == field for e in response.json()["errors"])


async def test_per_cell_merge_of_two_roles(
    ward: dict[str, Any], staff: StaffClient, factory: Any
) -> None:
    """Nurse (ward C1: medications) + receptionist (admitted: phone): each cell is visible only
    where a policy granting it admits the row; filters and sorts see hidden cells as absent."""
    user = await factory.user(roles=["nurse", "receptionist"], attributes={"ward": "C1"})
    from tests.modules.patients.conftest import _client_for

    client = await _client_for(factory, user)
    p = ward["p"]
    body = (await client.get(URL, params={"limit": 100})).json()
    by_id = {i["id"]: i for i in body["items"]}
    assert set(by_id) == {pid(p["card_c1"]), pid(p["neuro_c1"]), pid(p["neuro_attended"])}
    assert by_id[pid(p["neuro_c1"])]["medications"] == "med-neuro-c1"
    assert "phone" not in by_id[pid(p["neuro_c1"])]  # discharged: receptionist does not admit
    assert "medications" not in by_id[pid(p["neuro_attended"])]  # ward N1: nurse does not admit
    assert by_id[pid(p["card_c1"])]["phone"] == "+1-555-0001"
    # A filter on a hidden cell behaves as if the cell did not exist.
    meds = await client.get(URL, params={"filter": json.dumps({"medications": {"_nnull": True}})})
    assert ids(meds.json()) == {pid(p["card_c1"]), pid(p["neuro_c1"])}
    phone = await client.get(URL, params={"filter": json.dumps({"phone": {"_contains": "0004"}})})
    assert ids(phone.json()) == set()
    stats = (await client.get(f"{URL}/stats", params={"group_by": "admission_status"})).json()
    assert stats["total"] == 3
    await client.aclose()


async def test_sort_sees_hidden_cells_as_null(ward: dict[str, Any], factory: Any) -> None:
    """Nurse (ward C1) + receptionist (admitted: phone): neuro_c1's phone is hidden, so it sorts
    with the NULLs (last, by id) in both directions, never by its real value."""
    user = await factory.user(roles=["nurse", "receptionist"], attributes={"ward": "C1"})
    from tests.modules.patients.conftest import _client_for

    client = await _client_for(factory, user)
    p = ward["p"]
    nulls = sorted((p["neuro_c1"], p["neuro_attended"]), key=lambda r: r["id"])
    expected = [pid(p["card_c1"]), *(pid(r) for r in nulls)]
    for sort in ("phone", "-phone"):
        body = (await client.get(URL, params={"sort": sort})).json()
        assert [i["id"] for i in body["items"]] == expected, sort
    await client.aclose()


async def test_stats_obey_rows_and_cells(ward: dict[str, Any], client: httpx.AsyncClient) -> None:
    _, nurse = ward["nurse"]
    stats = (await nurse.get(f"{URL}/stats", params={"group_by": "admission_status"})).json()
    assert stats["total"] == 2
    assert {g["value"]: g["count"] for g in stats["groups"]} == {"admitted": 1, "discharged": 1}
    refused = await nurse.get(f"{URL}/stats", params={"group_by": "diagnosis"})
    assert refused.status_code == 403 and refused.json()["fields"] == ["diagnosis"]
    unknown = await nurse.get(f"{URL}/stats", params={"group_by": "nope"})
    assert unknown.status_code == 422
    public = (await client.get(f"{URL}/stats", params={"group_by": "admission_status"})).json()
    assert {g["value"]: g["count"] for g in public["groups"]} == {"admitted": 1, "outpatient": 1}


async def test_export_obeys_rows_and_cells(
    ward: dict[str, Any], admin_client: httpx.AsyncClient
) -> None:
    _, doctor = ward["doctor"]
    response = await doctor.get(f"{URL}/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["id"] for r in rows} == {
        pid(ward["p"][k]) for k in ("card_c1", "card_c2_dis", "neuro_attended")
    }
    assert {r["diagnosis"] for r in rows} == {"dx-card", "dx-dis", "dx-neuro"}
    phone = next(r["phone"] for r in rows if r["id"] == pid(ward["p"]["card_c1"]))
    assert phone == "'+1-555-0001"  # formula-like cells neutralised
    _, nurse = ward["nurse"]
    assert (await nurse.get(f"{URL}/export")).status_code == 403  # no patient:export
    everything = await admin_client.get(f"{URL}/export", params={"fields": "mrn,diagnosis"})
    header = everything.text.splitlines()[0]
    assert header == "id,mrn,diagnosis"
    refused = await doctor.get(f"{URL}/export", params={"format": "xml"})
    assert refused.status_code == 422


async def test_export_takes_the_lists_filters(ward: dict[str, Any]) -> None:
    """What a user filtered in the list is what the export holds: every equality filter,
    `filter` and `q` select the same records in both (the export in id order)."""
    _, doctor = ward["doctor"]
    adams = ward["p"]["card_c1"]
    cases: list[dict[str, str]] = [
        {"family_name": "Adams"},
        {"mrn": adams["mrn"]},
        {"public_consent": "true"},
        {"attending_clinician_id": str(ward["doctor"][0].id)},
        {"admission_status": "discharged", "department": "cardiology"},
        {"filter": '{"ward": {"_eq": "C1"}}', "q": "ada"},
    ]
    for params in cases:
        listed = await doctor.get(URL, params={**params, "limit": 100})
        assert listed.status_code == 200, (params, listed.text)
        exported = await doctor.get(f"{URL}/export", params=params)
        assert exported.status_code == 200, (params, exported.text)
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {r["id"] for r in rows} == {i["id"] for i in listed.json()["items"]}, params
        assert rows, params  # each case selects something the doctor may see
    stats = await doctor.get(f"{URL}/stats", params={"group_by": "ward", "family_name": "Adams"})
    assert stats.status_code == 200, stats.text
    assert {g["value"]: g["count"] for g in stats.json()["groups"]} == {"C1": 1}


async def test_export_sorts_as_the_list_does(ward: dict[str, Any]) -> None:
    """`sort` orders the export exactly as it orders the list (over the cells the caller may
    read: a hidden cell sorts as empty), and is refused the same way."""
    _, doctor = ward["doctor"]
    for sort in ("-family_name", "ward,-admitted_at", "diagnosis"):
        listed = await doctor.get(URL, params={"sort": sort, "limit": 100})
        assert listed.status_code == 200, listed.text
        exported = await doctor.get(f"{URL}/export", params={"sort": sort})
        assert exported.status_code == 200, exported.text
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["id"] for r in rows] == [i["id"] for i in listed.json()["items"]], sort
    assert len(rows) >= 3
    listed = await doctor.get(URL, params={"sort": "nope"})
    exported = await doctor.get(f"{URL}/export", params={"sort": "nope"})
    assert listed.status_code == exported.status_code == 422, exported.text
    assert exported.json()["errors"][0]["field"] == "sort"


async def test_export_hidden_cells_are_empty(ward: dict[str, Any], factory: Any) -> None:
    user = await factory.user(
        roles=["nurse", "receptionist", "doctor"], attributes={"ward": "C1", "department": "x"}
    )
    from tests.modules.patients.conftest import _client_for

    client = await _client_for(factory, user)
    rows = list(csv.DictReader(io.StringIO((await client.get(f"{URL}/export")).text)))
    by_id = {r["id"]: r for r in rows}
    # neuro_c1: discharged, ward C1: nurse cells only (no phone, no diagnosis)
    neuro_c1 = by_id[pid(ward["p"]["neuro_c1"])]
    assert neuro_c1["medications"] == "med-neuro-c1"
    assert neuro_c1["phone"] == "" and neuro_c1["diagnosis"] == ""
    # attended by someone else and not in department x: doctor cells hidden
    attended = by_id[pid(ward["p"]["neuro_attended"])]
    assert attended["diagnosis"] == ""
    await client.aclose()


async def test_list_is_one_sql_statement(ward: dict[str, Any], app: Any) -> None:
    _, client = ward["doctor"]
    await client.get(URL)  # warm the principal and policy caches
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = await client.get(URL, params={"limit": 50, "sort": "family_name"})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    # The shared-state poller (authorization / revocation versions) runs in the background on
    # the same engine; it is not part of the request.
    ours = [s for s in statements if "authz_state" not in s and "auth_sessions" not in s]
    assert len(ours) == 1, ours
    assert "FROM patients" in ours[0]


async def test_no_read_policy(staff: StaffClient, ward: dict[str, Any]) -> None:
    _, plain = await staff("user")
    response = await plain.get(URL)
    assert response.status_code == 403
    assert (await plain.get(f"{URL}/{pid(ward['p']['card_c1'])}")).status_code == 403
