from __future__ import annotations

import httpx
import pytest

from tests.modules.rbac.conftest import API, Rbac

URL = f"{API}/permissions"


async def test_permissions_require_permission(client: httpx.AsyncClient, rbac: Rbac) -> None:
    assert (await client.get(URL)).status_code == 401
    _, plain = await rbac.client("user")
    response = await plain.get(URL)
    assert response.status_code == 403
    assert response.json()["missing_permissions"] == ["permission:read"]
    assert (await plain.post(URL, json={"name": "x:y"})).status_code == 403


async def test_list_search_filter_paginate(admin_client: httpx.AsyncClient) -> None:
    body = (await admin_client.get(URL, params={"limit": 5})).json()
    assert body["limit"] == 5 and len(body["items"]) == 5 and body["total"] > 20
    names = [p["name"] for p in body["items"]]
    assert names == sorted(names)
    second = (await admin_client.get(URL, params={"limit": 5, "offset": 5})).json()
    assert not {p["id"] for p in second["items"]} & {p["id"] for p in body["items"]}

    by_resource = (await admin_client.get(URL, params={"resource": "role"})).json()
    assert {p["name"] for p in by_resource["items"]} >= {"role:read", "role:create", "role:*"}
    assert all(p["resource"] == "role" for p in by_resource["items"])
    by_category = (await admin_client.get(URL, params={"category": "group"})).json()
    assert all(p["category"] == "group" for p in by_category["items"])
    search = (await admin_client.get(URL, params={"q": "EXPLAIN"})).json()
    assert [p["name"] for p in search["items"]] == ["authz:explain"]
    assert (await admin_client.get(URL, params={"q": "%"})).json()["total"] == 0
    assert (await admin_client.get(URL, params={"limit": 101})).status_code == 422

    pid = by_resource["items"][0]["id"]
    await admin_client.patch(f"{URL}/{pid}/toggle-status")
    inactive = (await admin_client.get(URL, params={"is_active": False})).json()
    assert [p["id"] for p in inactive["items"]] == [pid]
    assert (await admin_client.get(f"{URL}/")).status_code == 200


async def test_create_get_update_delete(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    response = await admin_client.post(
        URL, json={"name": "lab:approve", "description": "Approve lab results"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["resource"] == "lab" and created["action"] == "approve"
    assert created["category"] == "lab" and created["is_system"] is False
    assert created["is_active"] is True
    pid = created["id"]
    assert (await admin_client.get(f"{URL}/{pid}")).json()["name"] == "lab:approve"

    dup = await admin_client.post(URL, json={"name": "lab:approve"})
    assert dup.status_code == 409 and dup.json()["code"] == "permission_exists"

    renamed = await admin_client.put(f"{URL}/{pid}", json={"name": "lab:sign"})
    assert renamed.status_code == 200
    assert renamed.json()["action"] == "sign" and renamed.json()["name"] == "lab:sign"
    recat = await admin_client.put(f"{URL}/{pid}", json={"category": "laboratory"})
    assert recat.json()["category"] == "laboratory"

    by_resource = await admin_client.get(f"{URL}/by-resource/lab")
    assert [p["name"] for p in by_resource.json()] == ["lab:sign"]

    await rbac.role("lab_signer", ["lab:sign"])
    assert (await admin_client.delete(f"{URL}/{pid}")).status_code == 204
    assert (await admin_client.get(f"{URL}/{pid}")).status_code == 404
    role = (await admin_client.get(f"{API}/roles/{await rbac.role_id('lab_signer')}")).json()
    assert role["permissions"] == []

    create_rows = await rbac.audit("permission.create", resource_id=pid)
    assert create_rows[0].changes["name"] == {"before": None, "after": "lab:approve"}
    update_rows = await rbac.audit("permission.update", resource_id=pid)
    assert update_rows[0].changes["name"] == {"before": "lab:approve", "after": "lab:sign"}
    delete_rows = await rbac.audit("permission.delete", resource_id=pid)
    assert delete_rows[0].details["removed_from_roles"] == ["lab_signer"]
    assert delete_rows[0].actor_username == "superadmin"


@pytest.mark.parametrize(
    "name", ["patient", "Patient:read", "patient:", ":read", "a:b:c", "pa tient:read", "**:read"]
)
async def test_invalid_names_refused(admin_client: httpx.AsyncClient, name: str) -> None:
    response = await admin_client.post(URL, json={"name": name})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "name"


@pytest.mark.parametrize("name", ["lab:*", "*:approve", "*:*"])
async def test_wildcard_names_accepted(admin_client: httpx.AsyncClient, name: str) -> None:
    response = await admin_client.post(URL, json={"name": name})
    if name == "*:*":  # seeded already
        assert response.status_code == 409
    else:
        assert response.status_code == 201
        resource, action = name.split(":")
        assert response.json()["resource"] == resource and response.json()["action"] == action


async def test_system_permissions_toggle_but_no_delete_or_rename(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    pid = await rbac.permission_id("patient:read")
    rename = await admin_client.put(f"{URL}/{pid}", json={"name": "patient:see"})
    assert rename.status_code == 409 and rename.json()["code"] == "system_permission"
    describe = await admin_client.put(f"{URL}/{pid}", json={"description": "Read charts"})
    assert describe.status_code == 200 and describe.json()["description"] == "Read charts"
    assert (await admin_client.delete(f"{URL}/{pid}")).status_code == 409
    toggled = await admin_client.patch(f"{URL}/{pid}/toggle-status")
    assert toggled.status_code == 200 and toggled.json()["is_active"] is False
    rows = await rbac.audit("permission.toggle_status", resource_id=str(pid))
    assert rows[0].changes == {"is_active": {"before": True, "after": False}}
    everything = await rbac.permission_id("*:*")
    refused = await admin_client.patch(f"{URL}/{everything}/toggle-status")
    assert refused.status_code == 409


async def test_inactive_permission_grants_nothing(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    await rbac.role("chart_reader", ["chart:read"])
    _, reader = await rbac.client("chart_reader")
    assert "chart:read" in (await rbac.me(reader))["permissions"]
    pid = await rbac.permission_id("chart:read")
    await admin_client.patch(f"{URL}/{pid}/toggle-status")
    assert "chart:read" not in (await rbac.me(reader))["permissions"]
    await admin_client.patch(f"{URL}/{pid}/toggle-status")
    assert "chart:read" in (await rbac.me(reader))["permissions"]


async def test_unknown_permission_is_404(admin_client: httpx.AsyncClient) -> None:
    missing = "0190a0a0-0000-7000-8000-000000000000"
    assert (await admin_client.get(f"{URL}/{missing}")).status_code == 404
    assert (await admin_client.put(f"{URL}/{missing}", json={})).status_code == 404
    assert (await admin_client.delete(f"{URL}/{missing}")).status_code == 404
    assert (await admin_client.get(f"{URL}/not-a-uuid")).status_code == 422
