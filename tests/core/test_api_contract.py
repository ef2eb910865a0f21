"""The API answers what its OpenAPI document says (found by fuzzing it with schemathesis):
every error is problem+json as documented, every status an operation answers is documented,
and a 405 names every method the path takes."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

PROBLEM = "application/problem+json"
SOME_ID = str(uuid.UUID("01a24915-0000-7000-8000-000000000000"))


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_documented_422_is_problem_json(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    wrong = [
        f"{method.upper()} {path}"
        for method, path, operation in _operations(spec)
        if "422" in operation["responses"]
        and set(operation["responses"]["422"].get("content", {})) != {PROBLEM}
    ]
    assert not wrong
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_undecodable_body_is_422_naming_the_body(admin_client: httpx.AsyncClient) -> None:
    # Bytes that are not UTF-8: FastAPI answers a bare 400 "error parsing the body".
    response = await admin_client.post(
        "/api/v1/groups", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    assert [e["field"] for e in body["errors"]] == ["body"]


async def test_405_allow_names_every_method_of_the_path(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.request("OPTIONS", "/api/v1/groups")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}

    response = await admin_client.patch(f"/api/v1/groups/{SOME_ID}")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}


async def test_unsupported_grant_type_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        data={"grant_type": "client_credentials", "username": "x", "password": "y"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["grant_type"]
    spec = (await client.get("/openapi.json")).json()
    assert "400" in spec["paths"]["/api/v1/auth/login"]["post"]["responses"]


async def test_every_status_answered_to_a_bad_token_is_documented(
    client: httpx.AsyncClient,
) -> None:
    # A malformed bearer token is a 401 even on the routes the guest may call.
    spec = (await client.get("/openapi.json")).json()
    undocumented = []
    for method, path, operation in _operations(spec):
        url = re.sub(r"\{[^}]+\}", SOME_ID, path)
        kwargs: dict[str, Any] = {"headers": {"Authorization": "Bearer not-a-token"}}
        if method in ("post", "put", "patch"):
            kwargs["json"] = {}
        response = await client.request(method.upper(), url, **kwargs)
        assert response.status_code < 500, (method, path, response.text)
        if str(response.status_code) not in operation["responses"]:
            undocumented.append(f"{method.upper()} {path} -> {response.status_code}")
        elif response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM, (method, path)
    assert not undocumented


async def test_405_allow_of_a_literal_path_is_its_own(admin_client: httpx.AsyncClient) -> None:
    # /users/me also fits /users/{user_id}; its Allow names only what /users/me documents.
    response = await admin_client.request("OPTIONS", "/api/v1/users/me")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH"}


async def test_a_literal_path_is_not_taken_for_an_id(admin_client: httpx.AsyncClient) -> None:
    """PUT /users/me used to reach PUT /users/{user_id} and answer a 422 about the id "me":
    /users/me is a resource of its own, without PUT, so a 405 naming what it answers."""
    for method, path, allow in (
        ("PUT", "/api/v1/users/me", {"GET", "PATCH"}),
        ("DELETE", "/api/v1/users/me", {"GET", "PATCH"}),
        ("GET", "/api/v1/users/bulk", {"POST"}),
        ("DELETE", "/api/v1/patients/export", {"GET"}),
    ):
        response = await admin_client.request(method, path, json={})
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert set(response.headers["allow"].split(", ")) == allow, (method, path)
    # an id that is no id, on a path no literal route has, is still a 422 naming it
    response = await admin_client.put("/api/v1/users/not-an-id", json={})
    assert response.status_code == 422
    assert "user_id" in [e["field"] for e in response.json()["errors"]]


# Update fields that may be left out but not cleared: the API answers null with a 422, so the
# schema must not offer null (a client generated from it would send one).
NOT_CLEARABLE = {
    "UserUpdate": ["username", "email", "is_active", "is_verified", "attributes"],
    "GroupUpdate": ["name", "is_active"],
    "RoleUpdate": ["name"],
    "PermissionUpdate": ["name"],
    "ModuleUpdate": ["name", "label", "order", "is_active"],
    "RouteUpdate": [
        "path",
        "name",
        "label",
        "order",
        "module_id",
        "show_in_sidebar",
        "is_active",
        "metadata",
    ],
    "PatientUpdate": ["mrn", "given_name", "family_name", "admission_status", "public_consent"],
}


def _offers_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_offers_null(s) for s in schema.get("anyOf", []))


async def test_fields_that_refuse_null_are_not_nullable_in_the_schema(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    nullable = [
        f"{name}.{field}"
        for name, fields in NOT_CLEARABLE.items()
        for field in fields
        if _offers_null(schemas[name]["properties"][field])
        or "default" in schemas[name]["properties"][field]
    ]
    assert not nullable
    # The minimum and maximum of a not-null number are still in its schema.
    assert schemas["ModuleUpdate"]["properties"]["order"]["minimum"] < 0
    # A field that may be cleared still offers null.
    assert _offers_null(schemas["GroupUpdate"]["properties"]["description"])


async def test_null_for_a_field_that_refuses_it_is_a_422_naming_it(
    admin_client: httpx.AsyncClient,
) -> None:
    group = await admin_client.post("/api/v1/groups", json={"name": "nullable"})
    assert group.status_code == 201, group.text
    for field in NOT_CLEARABLE["GroupUpdate"]:
        response = await admin_client.put(
            f"/api/v1/groups/{group.json()['id']}", json={field: None}
        )
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    kept = await admin_client.get(f"/api/v1/groups/{group.json()['id']}")
    assert kept.json()["name"] == "nullable" and kept.json()["is_active"] is True
