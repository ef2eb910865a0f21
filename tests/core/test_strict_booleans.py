"""A JSON boolean in a request body must be a JSON boolean: `0`, `1`, `"true"` or `"no"` is a
422 naming the field, not quietly read as true or false (Pydantic's lax mode would); and a
number is not a boolean either (`"order": true`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

API = "/api/v1"
NOT_BOOLEANS = [0, 1, "true", "false", "no"]


def _assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in response.json()["errors"]}, response.text


@pytest.mark.parametrize("value", NOT_BOOLEANS)
async def test_body_flags_refuse_numbers_and_strings(
    admin_client: httpx.AsyncClient, value: Any
) -> None:
    user = {"username": "flag_user", "email": "flag@example.org", "password": "Long-Enough-Pass-7"}
    _assert_refused(
        await admin_client.post(f"{API}/users", json={**user, "is_active": value}), "is_active"
    )
    _assert_refused(
        await admin_client.post(f"{API}/groups", json={"name": "flags", "is_active": value}),
        "is_active",
    )
    _assert_refused(
        await admin_client.post(
            f"{API}/modules", json={"name": "flags", "label": "Flags", "is_active": value}
        ),
        "is_active",
    )
    _assert_refused(
        await admin_client.post(
            f"{API}/users/bulk",
            json={"action": "activate", "user_ids": [str(uuid.uuid4())], "atomic": value},
        ),
        "atomic",
    )
    # A number is a JSON number: `true` is not 1.
    module = {"name": "flags", "label": "Flags", "order": True}
    _assert_refused(await admin_client.post(f"{API}/modules", json=module), "order")
    # Nothing was written by any of them.
    users = await admin_client.get(f"{API}/users", params={"q": "flag_user"})
    assert users.json()["total"] == 0
    groups = (await admin_client.get(f"{API}/groups", params={"limit": 100})).json()
    assert all(group["name"] != "flags" for group in groups["items"])


async def test_body_flags_take_json_booleans(admin_client: httpx.AsyncClient) -> None:
    created = await admin_client.post(
        f"{API}/users",
        json={
            "username": "flag_user",
            "email": "flag@example.org",
            "password": "Long-Enough-Pass-7",
            "is_active": False,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["is_active"] is False
    module = await admin_client.post(
        f"{API}/modules", json={"name": "flags", "label": "Flags", "is_active": True}
    )
    assert module.status_code == 201 and module.json()["is_active"] is True
