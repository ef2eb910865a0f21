"""Capped totals, search escaping, demo data seeding."""

from __future__ import annotations

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


async def test_demo_patients_are_seeded_once(app: Any) -> None:
    async with app.state.runtime.session_factory() as session:
        assert await seed_demo_patients(session, count=25) == 25
        assert await seed_demo_patients(session, count=25) == 0
        total = await session.scalar(select(func.count()).select_from(Patient))
        await session.rollback()
    assert total == 25
