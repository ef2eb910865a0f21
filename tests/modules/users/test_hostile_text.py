"""Text that PostgreSQL cannot store or compare (NUL characters) is a 422 naming the field on
every backend, never a database error (it used to be a 503 on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Factory
from tests.modules.users.helpers import API, assert_problem, audit_rows

PASSWORD = "Vicodin-and-Puzzles-42"


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"full_name": "a\x00b"}, "full_name"),
        ({"nickname": "a\x00b"}, "nickname"),
        ({"given_name": "a\x00b"}, "given_name"),
        ({"picture_url": "https://example.com/a\x00b.png"}, "picture_url"),
        ({"attributes": {"ward": "C\x001"}}, "attributes"),
        ({"roles": ["user\x00"]}, "roles.0"),
        ({"email": "a\x00b@example.com"}, "email"),
    ],
)
async def test_create_refuses_nul_naming_the_field(
    admin_client: httpx.AsyncClient, runtime: Any, extra: dict[str, Any], field: str
) -> None:
    payload = {"username": "nul_user", "email": "nul@example.com", "password": PASSWORD, **extra}
    body = assert_problem(await admin_client.post(API, json=payload), 422)
    assert fields(body) == [field], body
    assert await audit_rows(runtime, action="user.create") == []


async def test_updates_refuse_nul(admin_client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    body = assert_problem(
        await admin_client.patch(f"{API}/{user.id}", json={"family_name": "a\x00b"}), 422
    )
    assert fields(body) == ["family_name"]
    body = assert_problem(await admin_client.patch(f"{API}/me", json={"nickname": "\x00"}), 422)
    assert fields(body) == ["nickname"]


@pytest.mark.parametrize("param", ["q", "role"])
async def test_list_refuses_nul_in_query_text(admin_client: httpx.AsyncClient, param: str) -> None:
    body = assert_problem(await admin_client.get(API, params={param: "a\x00b"}), 422)
    assert fields(body) == [param]
