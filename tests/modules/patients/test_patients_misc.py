"""Capped totals, search escaping, demo data seeding."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.modules.patients import service as patients_service
from app.modules.patients.models import Patient
from app.modules.patients.seed import seed_demo_patients
from tests.modules.patients.conftest import MakePatient

URL = "/api/v1/patients"


async def test_total_is_exact_up_to_the_cap(
    admin_client: httpx.AsyncClient, make_patient: MakePatient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(4):
        await make_patient(ward="CAP1")
    monkeypatch.setattr(patients_service, "COUNT_CAP", 10)
    exact = (await admin_client.get(URL, params={"ward": "CAP1", "limit": 2})).json()
    assert exact["total"] == 4 and exact["total_exact"] is True and len(exact["items"]) == 2
    monkeypatch.setattr(patients_service, "COUNT_CAP", 3)
    capped = (await admin_client.get(URL, params={"ward": "CAP1", "limit": 2})).json()
    assert capped["total"] == 3 and capped["total_exact"] is False
    beyond = (await admin_client.get(URL, params={"ward": "CAP1", "limit": 2, "offset": 2})).json()
    assert len(beyond["items"]) == 2 and beyond["total"] == 4
    empty = (await admin_client.get(URL, params={"ward": "CAP1", "limit": 2, "offset": 8})).json()
    assert empty["items"] == [] and empty["total"] == 3 and empty["total_exact"] is False


async def test_search_is_a_case_insensitive_prefix_with_literal_wildcards(
    admin_client: httpx.AsyncClient, make_patient: MakePatient
) -> None:
    a = await make_patient(family_name="O'Brien_x", ward="SRCH")
    await make_patient(family_name="Obrienxx", ward="SRCH")
    body = (await admin_client.get(URL, params={"q": "o'bri", "ward": "SRCH"})).json()
    assert [i["id"] for i in body["items"]] == [str(a["id"])]
    assert (await admin_client.get(URL, params={"q": "%", "ward": "SRCH"})).json()["total"] == 0
    underscore = await admin_client.get(URL, params={"q": "o'brien_", "ward": "SRCH"})
    assert underscore.json()["total"] == 1
    assert (await admin_client.get(URL, params={"q": "brien", "ward": "SRCH"})).json()["total"] == 0


async def test_search_matches_any_field_once_in_order_and_capped(
    admin_client: httpx.AsyncClient, make_patient: MakePatient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each searchable field is searched on its own (one index each): a row matching several
    fields is listed and counted once, pages follow the sort, the total is capped."""
    both = await make_patient(given_name="Zorro", family_name="Zorrino", ward="UNI1")
    given = await make_patient(given_name="Zorba", family_name="Adler", ward="UNI1")
    family = await make_patient(given_name="Anna", family_name="Zorn", ward="UNI1")
    mrn = await make_patient(mrn="ZOR-0001", family_name="Brandt", ward="UNI1")
    await make_patient(given_name="Anna", family_name="Azor", ward="UNI1")  # not a prefix
    await make_patient(given_name="Zorro", family_name="Zorrino", ward="UNI2")  # other ward
    expected = [str(r["id"]) for r in (given, mrn, family, both)]  # by family_name
    params = {"q": "ZOR", "ward": "UNI1"}
    body = (await admin_client.get(URL, params=params)).json()
    assert [i["id"] for i in body["items"]] == expected
    assert body["total"] == 4 and body["total_exact"] is True
    page = (await admin_client.get(URL, params={**params, "limit": 2, "offset": 1})).json()
    assert [i["id"] for i in page["items"]] == expected[1:3] and page["total"] == 4
    by_given = (await admin_client.get(URL, params={**params, "sort": "-given_name"})).json()
    # Zorro, Zorba, Given<n> (the generated given name of the MRN match), Anna
    assert [i["id"] for i in by_given["items"]] == [
        str(r["id"]) for r in (both, given, mrn, family)
    ]
    monkeypatch.setattr(patients_service, "COUNT_CAP", 3)
    capped = (await admin_client.get(URL, params={**params, "limit": 2})).json()
    assert capped["total"] == 3 and capped["total_exact"] is False
    assert [i["id"] for i in capped["items"]] == expected[:2]
    beyond = (await admin_client.get(URL, params={**params, "limit": 2, "offset": 2})).json()
    assert [i["id"] for i in beyond["items"]] == expected[2:] and beyond["total"] == 4
    empty = (await admin_client.get(URL, params={**params, "limit": 2, "offset": 8})).json()
    assert empty["items"] == [] and empty["total"] == 3 and empty["total_exact"] is False


async def test_sort_puts_nulls_last_in_both_directions(
    admin_client: httpx.AsyncClient, make_patient: MakePatient
) -> None:
    early = await make_patient(ward="NUL1", admitted_at=datetime(2026, 1, 1, 8, tzinfo=UTC))
    none_a = await make_patient(ward="NUL1", admitted_at=None)
    late = await make_patient(ward="NUL1", admitted_at=datetime(2026, 2, 1, 8, tzinfo=UTC))
    none_b = await make_patient(ward="NUL1", admitted_at=None)
    nulls = [str(r["id"]) for r in sorted((none_a, none_b), key=lambda r: r["id"])]

    async def order(sort: str) -> list[str]:
        body = (await admin_client.get(URL, params={"ward": "NUL1", "sort": sort})).json()
        return [i["id"] for i in body["items"]]

    assert await order("admitted_at") == [str(early["id"]), str(late["id"]), *nulls]
    assert await order("-admitted_at") == [str(late["id"]), str(early["id"]), *nulls]
    paged = await admin_client.get(
        URL, params={"ward": "NUL1", "sort": "-admitted_at", "limit": 2, "offset": 1}
    )
    assert [i["id"] for i in paged.json()["items"]] == [str(early["id"]), nulls[0]]


async def test_demo_patients_are_seeded_once(app: Any) -> None:
    async with app.state.runtime.session_factory() as session:
        assert await seed_demo_patients(session, count=25) == 25
        assert await seed_demo_patients(session, count=25) == 0
        total = await session.scalar(select(func.count()).select_from(Patient))
        await session.rollback()
    assert total == 25
