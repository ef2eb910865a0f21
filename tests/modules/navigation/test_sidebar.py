from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

from tests.modules.navigation.conftest import API

SIDEBAR = f"{API}/routes/sidebar"
ADMIN_ROUTES = ["users", "roles", "permissions", "groups", "policies", "navigation", "audit"]


def outline(body: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """{module name: [route name, or (route name, [children...]) when it has children]}."""

    def node(n: dict[str, Any]) -> Any:
        return (n["name"], [node(c) for c in n["children"]]) if n["children"] else n["name"]

    return {section["module"]["name"]: [node(r) for r in section["routes"]] for section in body}


async def sidebar(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(SIDEBAR)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return list(response.json())


async def test_seeded_sidebar_per_role(
    client: httpx.AsyncClient, su: httpx.AsyncClient, as_role: Any
) -> None:
    everything = outline(await sidebar(su))
    assert everything == {
        "general": ["home", "account"],
        "patients": ["patients", "patient-lookup"],
        "administration": ADMIN_ROUTES,
    }
    user = await as_role("user")
    assert outline(await sidebar(user)) == {
        "general": ["home", "account"],
        "patients": ["patient-lookup"],
    }
    assert outline(await sidebar(client)) == {
        "general": ["home"],
        "patients": ["patient-lookup"],
    }
    admin = outline(await sidebar(await as_role("admin")))
    assert admin["administration"] == ADMIN_ROUTES

    body = await sidebar(su)
    module = body[0]["module"]
    assert set(module) == {"id", "name", "label", "icon", "order", "description"}
    home = body[0]["routes"][0]
    assert home["path"] == "/" and home["clickable"] is True and home["children"] == []
    assert set(home) == {
        "id",
        "name",
        "label",
        "path",
        "icon",
        "order",
        "clickable",
        "metadata",
        "children",
    }


async def test_inactive_and_hidden_are_left_out(
    su: httpx.AsyncClient, client: httpx.AsyncClient, make_module: Any, make_route: Any
) -> None:
    patients = next(s for s in await sidebar(su) if s["module"]["name"] == "patients")
    toggled = await su.patch(f"{API}/modules/{patients['module']['id']}/toggle-status")
    assert toggled.status_code == 200
    assert "patients" not in outline(await sidebar(su))
    assert outline(await sidebar(client)) == {"general": ["home"]}

    module = await make_module(name="ward", order=50)
    shown = await make_route(module, name="shown")
    off = await make_route(module, name="off", is_active=False)
    hidden = await make_route(module, name="hidden", show_in_sidebar=False)
    await make_route(module, name="under-off", parent_id=off["id"])
    await make_route(module, name="under-hidden", parent_id=hidden["id"])
    assert outline(await sidebar(client))["ward"] == ["shown"]

    await su.patch(f"{API}/routes/{shown['id']}/toggle-status")
    await su.patch(f"{API}/routes/{off['id']}/toggle-status")
    assert outline(await sidebar(client))["ward"] == [("off", ["under-off"])]


async def test_parent_kept_as_group_when_child_visible(
    client: httpx.AsyncClient, as_role: Any, make_module: Any, make_route: Any
) -> None:
    module = await make_module(name="records", order=60)
    parent = await make_route(
        module, name="reports", path="/reports", required_permission="audit:read"
    )
    await make_route(module, name="public-report", parent_id=parent["id"])
    await make_route(
        module, name="secret-report", parent_id=parent["id"], required_permission="audit:read"
    )
    lonely = await make_route(module, name="lonely", required_permission="audit:read")
    await make_route(module, name="lonely-kid", parent_id=lonely["id"], required_permission="x:y")

    section = next(s for s in await sidebar(client) if s["module"]["name"] == "records")
    assert outline([section]) == {"records": [("reports", ["public-report"])]}
    group = section["routes"][0]
    assert group["clickable"] is False and group["path"] is None
    assert group["children"][0]["clickable"] is True

    admin = next(
        s for s in await sidebar(await as_role("admin")) if s["module"]["name"] == "records"
    )
    assert outline([admin]) == {
        "records": [("reports", ["public-report", "secret-report"]), "lonely"]
    }
    assert admin["routes"][0]["clickable"] is True and admin["routes"][0]["path"] == "/reports"


async def test_ordering(
    su: httpx.AsyncClient, client: httpx.AsyncClient, make_module: Any, make_route: Any
) -> None:
    late = await make_module(name="late", order=-1)
    early = await make_module(name="early", order=-2)
    await make_route(late, name="l-b", label="B", order=1)
    await make_route(late, name="l-a", label="A", order=1)
    await make_route(late, name="l-first", label="Z", order=0)
    await make_route(early, name="e-only")
    names = list(outline(await sidebar(client)))
    assert names[:2] == ["early", "late"]
    assert outline(await sidebar(client))["late"] == ["l-first", "l-a", "l-b"]

    # Modules without any visible route are left out.
    await make_module(name="empty", order=-3)
    assert "empty" not in outline(await sidebar(su))


async def test_changes_show_on_the_next_request(
    su: httpx.AsyncClient, client: httpx.AsyncClient, as_role: Any, make_module: Any
) -> None:
    user = await as_role("user")
    before = outline(await sidebar(client))
    assert outline(await sidebar(user))["general"] == ["home", "account"]
    general = (await sidebar(su))[0]
    module_id = general["module"]["id"]

    created = await su.post(
        f"{API}/routes",
        json={"path": "/news", "name": "news", "label": "News", "module_id": module_id, "order": 5},
    )
    assert created.status_code == 201
    assert outline(await sidebar(client))["general"] == ["home", "news"]
    assert outline(await sidebar(user))["general"] == ["home", "news", "account"]

    route_id = created.json()["id"]
    await su.put(f"{API}/routes/{route_id}", json={"required_permission": "profile:read"})
    assert outline(await sidebar(client)) == before
    assert outline(await sidebar(user))["general"] == ["home", "news", "account"]

    await su.put(f"{API}/routes/{route_id}", json={"label": "Latest news", "order": 50})
    node = (await sidebar(user))[0]["routes"][-1]
    assert node["label"] == "Latest news"

    await su.patch(f"{API}/routes/{route_id}/toggle-sidebar")
    assert outline(await sidebar(user))["general"] == ["home", "account"]

    await su.put(f"{API}/modules/{module_id}", json={"order": 99, "label": "Start"})
    body = await sidebar(user)
    assert body[-1]["module"]["name"] == "general" and body[-1]["module"]["label"] == "Start"

    await su.delete(f"{API}/routes/{route_id}")
    await su.delete(f"{API}/modules/{module_id}", params={"force": True})
    assert "general" not in outline(await sidebar(user))


async def test_compressed_and_plain_bodies_match(client: httpx.AsyncClient) -> None:
    plain = await client.get(SIDEBAR, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    for accept in ("gzip", "br;q=1.0, gzip;q=0.5", "*"):
        raw = await client.send(
            client.build_request("GET", SIDEBAR, headers={"Accept-Encoding": accept}),
            stream=True,
        )
        compressed = b"".join([chunk async for chunk in raw.aiter_raw()])
        await raw.aclose()
        assert raw.headers["content-encoding"] == "gzip", accept
        assert json.loads(gzip.decompress(compressed)) == plain.json()
    refused = await client.get(SIDEBAR, headers={"Accept-Encoding": "gzip;q=0, deflate"})
    assert "content-encoding" not in refused.headers
    assert refused.json() == plain.json()
