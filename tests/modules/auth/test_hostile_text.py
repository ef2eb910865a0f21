"""Text that PostgreSQL cannot store or compare (NUL characters) is a 422 naming the field on
every backend, never a database error (it used to be a 503 on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.modules.auth.conftest import API, assert_problem

PASSWORD = "Plum-Orchard-Lantern-4"


def fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        (
            "/register",
            {
                "username": "nul",
                "email": "nul@example.com",
                "password": PASSWORD,
                "full_name": "a\x00b",
            },
            "full_name",
        ),
        ("/login", {"username": "a\x00b", "password": PASSWORD}, "username"),
        ("/login", {"username": "a\x00b@example.com", "password": PASSWORD}, "username"),
        ("/forgot-password", {"email": "a\x00b@example.com"}, "email"),
        ("/request-verify-email", {"email": "a\x00b@example.com"}, "email"),
    ],
)
async def test_nul_characters_are_refused_naming_the_field(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], field: str
) -> None:
    body = assert_problem(await client.post(f"{API}{path}", json=payload), 422)
    assert fields(body) == {field}, body


async def test_nul_in_the_oauth2_form_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/login", data={"username": "a\x00b", "password": PASSWORD, "grant_type": "password"}
    )
    assert fields(assert_problem(response, 422)) == {"username"}
