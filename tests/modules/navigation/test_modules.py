from __future__ import annotations

from typing import Any

import httpx

from tests.modules.navigation.conftest import API
from tests.modules.navigation.helpers import audit_rows, authz_version


async def test_module_crud_audited_and_bumps_version(su: httpx.AsyncClient, app: Any) -> None:
    version = await authz_version(app)
    created = await su.post(
        f"{API}/modules",
        json={"name": "clinic", "label": "Clinic", "icon": "stethoscope", "order": 5},
    )
    assert created.status_code == 201, created.text
    module = created.json()
    assert module["name"] == "clinic" and module["is_active"] is True
    assert module["description"] is None and module["created_at"]
    assert await authz_version(app) > version

    fetched = await su.get(f"{API}/modules/{module['id']}")
    assert fetched.status_code == 200 and fetched.json()["label"] == "Clinic"

    updated = await su.put(
        f"{API}/modules/{module['id']}", json={"label": "Clinics", "description": "Outpatient"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["label"] == "Clinics" and updated.json()["icon"] == "stethoscope"

    toggled = await su.patch(f"{API}/modules/{module['id']}/toggle-status")
    assert toggled.status_code == 200 and toggled.json()["is_active"] is False
    toggled = await su.patch(f"{API}/modules/{module['id']}/toggle-status")
    assert toggled.json()["is_active"] is True

    deleted = await su.delete(f"{API}/modules/{module['id']}")
    assert deleted.status_code == 204
    assert (await su.get(f"{API}/modules/{module['id']}")).status_code == 404

    rows = await audit_rows(app, "module", module["id"])
    actions = [r.action for r in rows]
    assert actions == [
        "module.create",
        "module.update",
        "module.toggle_status",
        "module.toggle_status",
        "module.delete",
    ]
    assert rows[1].changes == {
        "label": {"before": "Clinic", "after": "Clinics"},
        "description": {"before": None, "after": "Outpatient"},
    }
    assert rows[2].changes == {"is_active": {"before": True, "after": False}}
    assert rows[4].changes is not None and rows[4].changes["name"]["before"] == "clinic"


async def test_modules_list_ordered_paginated_and_filtered(
    su: httpx.AsyncClient, make_module: Any
) -> None:
    await make_module(name="zz-late", label="Late", order=900)
    await make_module(name="aa-early", label="Early", order=-5, is_active=False)
    page = (await su.get(f"{API}/modules", params={"limit": 100})).json()
    names = [m["name"] for m in page["items"]]
    assert names[0] == "aa-early" and names[-1] == "zz-late"
    assert {"general", "patients", "administration"} <= set(names)
    assert page["total"] == len(names)

    inactive = (await su.get(f"{API}/modules", params={"is_active": False})).json()
    assert [m["name"] for m in inactive["items"]] == ["aa-early"]

    first = (await su.get(f"{API}/modules", params={"limit": 1, "offset": 1})).json()
    assert first["items"][0]["name"] == names[1] and first["total"] == len(names)
    assert (await su.get(f"{API}/modules", params={"limit": 101})).status_code == 422


async def test_module_permissions(
    client: httpx.AsyncClient, as_role: Any, make_module: Any
) -> None:
    module = await make_module()
    user = await as_role("user")
    calls = [
        ("GET", f"{API}/modules", None),
        ("GET", f"{API}/modules/{module['id']}", None),
        ("GET", f"{API}/modules/{module['id']}/routes", None),
        ("POST", f"{API}/modules", {"name": "x", "label": "X"}),
        ("PUT", f"{API}/modules/{module['id']}", {"label": "Y"}),
        ("PATCH", f"{API}/modules/{module['id']}/toggle-status", None),
        ("DELETE", f"{API}/modules/{module['id']}", None),
    ]
    for method, url, body in calls:
        guest = await client.request(method, url, json=body)
        assert guest.status_code == 401, (method, url)
        denied = await user.request(method, url, json=body)
        assert denied.status_code == 403, (method, url)
        assert denied.json()["code"] == "permission_denied"

    admin = await as_role("admin")  # admin holds module:* through the template
    assert (await admin.get(f"{API}/modules/{module['id']}")).status_code == 200
    assert (await admin.patch(f"{API}/modules/{module['id']}/toggle-status")).status_code == 200


async def test_module_validation(su: httpx.AsyncClient, make_module: Any) -> None:
    bad_name = await su.post(f"{API}/modules", json={"name": "Bad Name", "label": "X"})
    assert bad_name.status_code == 422
    assert bad_name.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in bad_name.json()["errors"]] == ["name"]

    missing = await su.post(f"{API}/modules", json={"name": "ok"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "label"

    unknown_field = await su.post(f"{API}/modules", json={"name": "ok", "label": "Ok", "x": 1})
    assert unknown_field.status_code == 422

    module = await make_module()
    null_label = await su.put(f"{API}/modules/{module['id']}", json={"label": None})
    assert null_label.status_code == 422 and null_label.json()["errors"][0]["field"] == "label"

    taken = await su.post(f"{API}/modules", json={"name": module["name"], "label": "Dup"})
    assert taken.status_code == 409 and taken.json()["code"] == "module_exists"
    rename = await su.put(f"{API}/modules/{module['id']}", json={"name": "patients"})
    assert rename.status_code == 409
    same = await su.put(f"{API}/modules/{module['id']}", json={"name": module["name"]})
    assert same.status_code == 200

    assert (await su.get(f"{API}/modules/not-a-uuid")).status_code == 422
    missing_id = "01890000-0000-7000-8000-000000000000"
    assert (await su.get(f"{API}/modules/{missing_id}")).status_code == 404
    assert (await su.put(f"{API}/modules/{missing_id}", json={"label": "x"})).status_code == 404
    assert (await su.delete(f"{API}/modules/{missing_id}")).status_code == 404
    assert (await su.get(f"{API}/modules/{missing_id}/routes")).status_code == 404


async def test_module_routes_and_delete_with_routes(
    su: httpx.AsyncClient, make_module: Any, make_route: Any, app: Any
) -> None:
    module = await make_module()
    other = await make_module()
    first = await make_route(module, order=2)
    second = await make_route(module, order=1)
    child = await make_route(module, parent_id=first["id"])
    await make_route(other)

    listed = (await su.get(f"{API}/modules/{module['id']}/routes")).json()
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"], child["id"]]
    assert listed["total"] == 3

    refused = await su.delete(f"{API}/modules/{module['id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "module_has_routes"
    assert refused.json()["route_count"] == 3
    assert (await su.get(f"{API}/routes/{first['id']}")).status_code == 200

    forced = await su.delete(f"{API}/modules/{module['id']}", params={"force": True})
    assert forced.status_code == 204
    for route in (first, second, child):
        assert (await su.get(f"{API}/routes/{route['id']}")).status_code == 404
    rows = await audit_rows(app, "module", module["id"])
    assert rows[-1].action == "module.delete"
    assert rows[-1].details == {"deleted_routes": 3, "force": True}
    assert (await su.get(f"{API}/modules/{other['id']}/routes")).json()["total"] == 1
