"""Patients fixtures: patients inserted directly, staff of each seeded role, their clients."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.core.database import new_id
from app.modules.patients.models import Patient
from tests.factories import Factory, TestUser

_mrn = itertools.count(1)

MakePatient = Callable[..., Awaitable[dict[str, Any]]]
StaffClient = Callable[..., Awaitable[tuple[TestUser, httpx.AsyncClient]]]


def patient_row(**fields: Any) -> dict[str, Any]:
    n = next(_mrn)
    row: dict[str, Any] = {
        "id": new_id(),
        "mrn": f"T{uuid.uuid4().hex[:8]}{n:05d}",
        "given_name": f"Given{n}",
        "family_name": f"Family{n}",
        "admission_status": "admitted",
        "public_consent": False,
    }
    row.update(fields)
    return row


@pytest.fixture
def make_patient(app: Any) -> MakePatient:
    runtime = app.state.runtime

    async def make(**fields: Any) -> dict[str, Any]:
        row = patient_row(**fields)
        async with runtime.session_factory() as session:
            await session.execute(insert(Patient), [row])
            await session.commit()
        return row

    return make


async def _client_for(factory: Factory, user: TestUser) -> httpx.AsyncClient:
    """A client logged in as `user` through POST /auth/login."""
    return await factory.client_for(user)


@pytest.fixture
async def staff(factory: Factory) -> AsyncIterator[StaffClient]:
    clients: list[httpx.AsyncClient] = []

    async def make(role: str, **attributes: str) -> tuple[TestUser, httpx.AsyncClient]:
        user = await factory.user(roles=[role], attributes=attributes)
        client = await _client_for(factory, user)
        clients.append(client)
        return user, client

    yield make
    for client in clients:
        await client.aclose()
