from __future__ import annotations

import json
from typing import Any

import httpx

from tests.modules.navigation.conftest import API
from tests.modules.navigation.helpers import audit_rows, authz_version

MISSING = "01890000-0000-7000-8000-000000000000"


async def test_route_crud_audited(su: httpx.AsyncClient, make_module: Any, app: Any) -> None:
    module = await make_module()
    version = await authz_version(app)
    created = await su.post(
        f"{API}/routes",
        json={
            "path": "/wards",
            "name": "wards",
            "label": "Wards",
            "icon": "bed",
            "order": 3,
            "module_id": module["id"],
            "required_permission": "patient:read",
            "metadata": {"badge": "new", "nested": {"a": [1, 2]}},
        },
    )
    assert created.status_code == 201, created.text
    route = created.json()
    assert route["metadata"] == {"badge": "new", "nested": {"a": [1, 2]}}
    assert route["parent_id"] is None and route["show_in_sidebar"] is True
    assert route["required_permission"] == "patient:read"
    assert await authz_version(app) > version

    fetched = await su.get(f"{API}/routes/{route['id']}")
    assert fetched.status_code == 200 and fetched.json() == route

    updated = await su.put(
        f"{API}/routes/{route['id']}",
        json={"label": "All wards", "required_permission": None, "metadata": {}},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["label"] == "All wards" and body["required_permission"] is None
    assert body["metadata"] == {} and body["path"] == "/wards"

    hidden = await su.patch(f"{API}/routes/{route['id']}/toggle-sidebar")
    assert hidden.status_code == 200 and hidden.json()["show_in_sidebar"] is False
    inactive = await su.patch(f"{API}/routes/{route['id']}/toggle-status")
    assert inactive.status_code == 200 and inactive.json()["is_active"] is False

    assert (await su.delete(f"{API}/routes/{route['id']}")).status_code == 204
    assert (await su.get(f"{API}/routes/{route['id']}")).status_code == 404

    rows = await audit_rows(app, "route", route["id"])
    assert [r.action for r in rows] == [
        "route.create",
        "route.update",
        "route.toggle_sidebar",
        "route.toggle_status",
        "route.delete",
    ]
    assert rows[0].changes is not None
    assert rows[0].changes["metadata"]["after"] == {"badge": "new", "nested": {"a": [1, 2]}}
    assert rows[1].changes == {
        "label": {"before": "Wards", "after": "All wards"},
        "required_permission": {"before": "patient:read", "after": None},
        "metadata": {"before": {"badge": "new", "nested": {"a": [1, 2]}}, "after": {}},
    }
    assert rows[2].changes == {"show_in_sidebar": {"before": True, "after": False}}


async def test_route_permissions(
    client: httpx.AsyncClient, as_role: Any, make_module: Any, make_route: Any
) -> None:
    module = await make_module()
    route = await make_route(module)
    user = await as_role("user")
    body = {"path": "/x", "name": "x", "label": "X", "module_id": module["id"]}
    calls = [
        ("GET", f"{API}/routes", None),
        ("GET", f"{API}/routes/{route['id']}", None),
        ("GET", f"{API}/routes/top-level", None),
        ("GET", f"{API}/routes/module/{module['id']}", None),
        ("GET", f"{API}/routes/parent/{route['id']}/children", None),
        ("POST", f"{API}/routes", body),
        ("PUT", f"{API}/routes/{route['id']}", {"label": "Y"}),
        ("PATCH", f"{API}/routes/{route['id']}/toggle-status", None),
        ("PATCH", f"{API}/routes/{route['id']}/toggle-sidebar", None),
        ("DELETE", f"{API}/routes/{route['id']}", None),
    ]
    for method, url, payload in calls:
        assert (await client.request(method, url, json=payload)).status_code == 401, url
        denied = await user.request(method, url, json=payload)
        assert denied.status_code == 403, url
        assert denied.json()["missing_permissions"][0].startswith("route:")
    # The sidebar is open to everyone.
    assert (await client.get(f"{API}/routes/sidebar")).status_code == 200
    assert (await user.get(f"{API}/routes/sidebar")).status_code == 200

    admin = await as_role("admin")
    assert (await admin.get(f"{API}/routes/{route['id']}")).status_code == 200
    created = await admin.post(f"{API}/routes", json=body)
    assert created.status_code == 201


async def test_route_validation(su: httpx.AsyncClient, make_module: Any, make_route: Any) -> None:
    module = await make_module()
    other = await make_module()
    base = {"path": "/v", "name": "valid", "label": "V", "module_id": module["id"]}

    for bad in ("patient", "Patient:read", "patient:read:x", "pa tient:read", "*:*", "patient:*"):
        response = await su.post(f"{API}/routes", json={**base, "required_permission": bad})
        assert response.status_code == 422, bad
        assert [e["field"] for e in response.json()["errors"]] == ["required_permission"]

    unknown_module = await su.post(f"{API}/routes", json={**base, "module_id": MISSING})
    assert unknown_module.status_code == 422
    assert unknown_module.json()["errors"] == [{"field": "module_id", "message": "Unknown module"}]

    unknown_parent = await su.post(f"{API}/routes", json={**base, "parent_id": MISSING})
    assert unknown_parent.status_code == 422
    assert unknown_parent.json()["errors"][0]["field"] == "parent_id"

    foreign = await make_route(other)
    cross = await su.post(f"{API}/routes", json={**base, "parent_id": foreign["id"]})
    assert cross.status_code == 422 and cross.json()["errors"][0]["field"] == "parent_id"

    no_slash = await su.post(f"{API}/routes", json={**base, "path": "relative"})
    assert no_slash.status_code == 422 and no_slash.json()["errors"][0]["field"] == "path"

    not_object = await su.post(f"{API}/routes", json={**base, "metadata": [1, 2]})
    assert not_object.status_code == 422 and not_object.json()["errors"][0]["field"] == "metadata"
    huge = await su.post(f"{API}/routes", json={**base, "metadata": {"x": "y" * 9000}})
    assert huge.status_code == 422

    route = await make_route(module)
    taken = await su.post(f"{API}/routes", json={**base, "name": route["name"]})
    assert taken.status_code == 409 and taken.json()["code"] == "route_exists"
    null_path = await su.put(f"{API}/routes/{route['id']}", json={"path": None})
    assert null_path.status_code == 422 and null_path.json()["errors"][0]["field"] == "path"
    bad_update = await su.put(f"{API}/routes/{route['id']}", json={"required_permission": "nope"})
    assert bad_update.status_code == 422
    assert bad_update.json()["errors"][0]["field"] == "required_permission"
    assert (
        await su.put(f"{API}/routes/{route['id']}", json={"module_id": MISSING})
    ).status_code == 422
    assert (await su.put(f"{API}/routes/{MISSING}", json={"label": "x"})).status_code == 404
    assert (await su.get(f"{API}/routes/nope")).status_code == 422

    ok = await su.post(f"{API}/routes", json={**base, "required_permission": " audit:read "})
    assert ok.status_code == 201 and ok.json()["required_permission"] == "audit:read"
    # Nothing was half-written by the refused requests.
    listed = (await su.get(f"{API}/routes", params={"module_id": module["id"]})).json()
    assert sorted(r["name"] for r in listed["items"]) == sorted([route["name"], "valid"])


async def test_cycles_refused(
    su: httpx.AsyncClient, make_module: Any, make_route: Any, app: Any
) -> None:
    module = await make_module()
    a = await make_route(module, name="node-a")
    b = await make_route(module, name="node-b", parent_id=a["id"])
    c = await make_route(module, name="node-c", parent_id=b["id"])
    d = await make_route(module, name="node-d", parent_id=c["id"])

    own = await su.put(f"{API}/routes/{a['id']}", json={"parent_id": a["id"]})
    assert own.status_code == 409 and own.json()["code"] == "route_cycle"
    assert "node-a -> node-a" in own.json()["detail"]

    two = await su.put(f"{API}/routes/{a['id']}", json={"parent_id": b["id"]})
    assert two.status_code == 409
    assert two.json()["cycle"] == ["node-a", "node-b", "node-a"]

    longer = await su.put(f"{API}/routes/{a['id']}", json={"parent_id": d["id"]})
    assert longer.status_code == 409
    assert longer.json()["cycle"] == ["node-a", "node-d", "node-c", "node-b", "node-a"]
    assert "node-a -> node-d -> node-c -> node-b -> node-a" in longer.json()["detail"]

    middle = await su.put(f"{API}/routes/{b['id']}", json={"parent_id": d["id"]})
    assert middle.status_code == 409
    assert middle.json()["cycle"] == ["node-b", "node-d", "node-c", "node-b"]

    # Nothing changed, nothing audited beyond the creations.
    assert (await su.get(f"{API}/routes/{a['id']}")).json()["parent_id"] is None
    assert [r.action for r in await audit_rows(app, "route", a["id"])] == ["route.create"]

    # Re-parenting that keeps a tree is fine: d moves under a directly.
    moved = await su.put(f"{API}/routes/{d['id']}", json={"parent_id": a["id"]})
    assert moved.status_code == 200 and moved.json()["parent_id"] == a["id"]
    detached = await su.put(f"{API}/routes/{b['id']}", json={"parent_id": None})
    assert detached.status_code == 200 and detached.json()["parent_id"] is None


async def test_children_top_level_module_listing_and_filters(
    su: httpx.AsyncClient, make_module: Any, make_route: Any
) -> None:
    module = await make_module()
    other = await make_module()
    root = await make_route(module, order=1)
    sibling = await make_route(module, order=0, show_in_sidebar=False)
    kid_b = await make_route(module, parent_id=root["id"], order=5, label="Beta")
    kid_a = await make_route(module, parent_id=root["id"], order=5, label="Alpha")
    off = await make_route(module, parent_id=root["id"], order=9, is_active=False)
    elsewhere = await make_route(other)

    children = (await su.get(f"{API}/routes/parent/{root['id']}/children")).json()
    assert [r["id"] for r in children["items"]] == [kid_a["id"], kid_b["id"], off["id"]]
    assert (await su.get(f"{API}/routes/parent/{MISSING}/children")).status_code == 404

    top = (await su.get(f"{API}/routes/top-level", params={"module_id": module["id"]})).json()
    assert [r["id"] for r in top["items"]] == [sibling["id"], root["id"]]
    all_top = (await su.get(f"{API}/routes/top-level", params={"limit": 100})).json()
    top_ids = {r["id"] for r in all_top["items"]}
    assert {root["id"], sibling["id"], elsewhere["id"]} <= top_ids
    assert kid_a["id"] not in top_ids

    by_module = (await su.get(f"{API}/routes/module/{module['id']}")).json()
    assert by_module["total"] == 5
    assert elsewhere["id"] not in {r["id"] for r in by_module["items"]}
    assert (await su.get(f"{API}/routes/module/{MISSING}")).status_code == 404

    def ids(page: dict[str, Any]) -> set[str]:
        return {r["id"] for r in page["items"]}

    mid = module["id"]
    inactive = (await su.get(f"{API}/routes", params={"module_id": mid, "is_active": False})).json()
    assert ids(inactive) == {off["id"]}
    no_sidebar = (
        await su.get(f"{API}/routes", params={"module_id": mid, "show_in_sidebar": False})
    ).json()
    assert ids(no_sidebar) == {sibling["id"]}
    kids = (await su.get(f"{API}/routes", params={"parent_id": root["id"]})).json()
    assert ids(kids) == {kid_a["id"], kid_b["id"], off["id"]} and kids["total"] == 3
    paged = (await su.get(f"{API}/routes", params={"module_id": mid, "limit": 2})).json()
    assert len(paged["items"]) == 2 and paged["total"] == 5


async def test_delete_with_children_and_move_module(
    su: httpx.AsyncClient, make_module: Any, make_route: Any, app: Any
) -> None:
    module = await make_module()
    target = await make_module()
    root = await make_route(module)
    child = await make_route(module, parent_id=root["id"])
    grandchild = await make_route(module, parent_id=child["id"])

    # Moving a route with a parent in the old module is refused; moving a root moves its subtree.
    stuck = await su.put(f"{API}/routes/{child['id']}", json={"module_id": target["id"]})
    assert stuck.status_code == 422 and stuck.json()["errors"][0]["field"] == "parent_id"
    moved = await su.put(f"{API}/routes/{root['id']}", json={"module_id": target["id"]})
    assert moved.status_code == 200
    for route in (child, grandchild):
        fetched = (await su.get(f"{API}/routes/{route['id']}")).json()
        assert fetched["module_id"] == target["id"]
    update_row = (await audit_rows(app, "route", root["id"]))[-1]
    assert update_row.action == "route.update" and update_row.details is not None
    assert update_row.changes == {"module_id": {"before": module["id"], "after": target["id"]}}
    assert set(update_row.details["moved_descendants"]) == {child["id"], grandchild["id"]}

    refused = await su.delete(f"{API}/routes/{root['id']}")
    assert refused.status_code == 409 and refused.json()["descendant_count"] == 2
    forced = await su.delete(f"{API}/routes/{root['id']}", params={"force": True})
    assert forced.status_code == 204
    for route in (root, child, grandchild):
        assert (await su.get(f"{API}/routes/{route['id']}")).status_code == 404
    row = (await audit_rows(app, "route", root["id"]))[-1]
    assert row.action == "route.delete" and row.details is not None
    assert set(row.details["deleted_descendants"]) == {child["id"], grandchild["id"]}


async def test_unstorable_metadata_is_a_422_naming_the_field(
    su: httpx.AsyncClient, make_module: Any, make_route: Any
) -> None:
    """Metadata orjson cannot store (nested beyond its depth limit, an integer beyond 64 bits)
    was a 500; NaN was silently stored as null. Each is now a 422 naming `metadata`."""
    module = await make_module()
    base = {"path": "/v", "name": "valid", "label": "V", "module_id": module["id"]}
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    headers = {"content-type": "application/json"}
    prefix = json.dumps(base)[:-1]  # the base object, left open for a raw metadata member
    bodies = [
        json.dumps({**base, "metadata": deep}),
        prefix + ', "metadata": {"n": ' + "9" * 30 + "}}",
        prefix + ', "metadata": {"n": NaN}}',
    ]
    for body in bodies:
        response = await su.post(f"{API}/routes", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["metadata"]
    route = await make_route(module)
    update = await su.put(
        f"{API}/routes/{route['id']}", content=json.dumps({"metadata": deep}), headers=headers
    )
    assert update.status_code == 422 and update.json()["errors"][0]["field"] == "metadata"
    listed = await su.get(f"{API}/routes", params={"module_id": module["id"]})
    assert [r["name"] for r in listed.json()["items"]] == [route["name"]]


async def test_nul_characters_are_a_422_naming_the_field(
    su: httpx.AsyncClient, make_module: Any, make_route: Any
) -> None:
    """PostgreSQL cannot store NUL: these were a 503 there; now a 422 on every backend."""
    module = await make_module()
    route = await make_route(module)
    base = {"path": "/v", "name": "valid", "label": "V", "module_id": module["id"]}
    cases = [
        ("post", "/modules", {"name": "nm", "label": "a\x00b"}, "label"),
        ("post", "/modules", {"name": "nm", "label": "l", "icon": "\x00"}, "icon"),
        ("post", "/modules", {"name": "nm", "label": "l", "description": "\x00"}, "description"),
        ("put", f"/modules/{module['id']}", {"label": "a\x00b"}, "label"),
        ("post", "/routes", {**base, "label": "a\x00b"}, "label"),
        ("post", "/routes", {**base, "path": "/a\x00b"}, "path"),
        ("post", "/routes", {**base, "icon": "\x00"}, "icon"),
        ("put", f"/routes/{route['id']}", {"label": "a\x00b"}, "label"),
        ("put", f"/routes/{route['id']}", {"path": "/\x00"}, "path"),
        ("post", "/routes", {**base, "metadata": {"note": "a\x00b"}}, "metadata"),
        ("put", f"/routes/{route['id']}", {"metadata": {"deep": [{"k\x00": 1}]}}, "metadata"),
    ]
    for method, path, body, field in cases:
        response = await getattr(su, method)(API + path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], (path, body)
