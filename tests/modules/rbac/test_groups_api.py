from __future__ import annotations

import httpx

from tests.modules.rbac.conftest import API, Rbac

URL = f"{API}/groups"


async def test_groups_require_permission(client: httpx.AsyncClient, rbac: Rbac) -> None:
    assert (await client.get(URL)).status_code == 401
    _, plain = await rbac.client("user")
    assert (await plain.get(URL)).status_code == 403
    assert (await plain.post(URL, json={"name": "g"})).status_code == 403


async def test_crud(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    created = await admin_client.post(URL, json={"name": "Ward C1", "description": "Nurses"})
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["roles"] == [] and group["member_count"] == 0 and group["is_active"]
    gid = group["id"]
    assert (await admin_client.get(f"{URL}/{gid}")).json()["name"] == "Ward C1"
    assert (await admin_client.post(URL, json={"name": "Ward C1"})).status_code == 409

    listed = (await admin_client.get(URL, params={"q": "ward"})).json()
    assert [g["name"] for g in listed["items"]] == ["Ward C1"]
    assert (await admin_client.get(f"{URL}/")).json()["total"] == 1

    updated = await admin_client.put(f"{URL}/{gid}", json={"name": "Ward C2", "is_active": False})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Ward C2" and updated.json()["is_active"] is False
    assert (await admin_client.get(URL, params={"is_active": True})).json()["total"] == 0

    assert (await admin_client.delete(f"{URL}/{gid}")).status_code == 204
    assert (await admin_client.get(f"{URL}/{gid}")).status_code == 404

    assert (await rbac.audit("group.create", resource_id=gid))[0].changes["name"][
        "after"
    ] == "Ward C1"
    update = (await rbac.audit("group.update", resource_id=gid))[0]
    assert update.changes == {
        "name": {"before": "Ward C1", "after": "Ward C2"},
        "is_active": {"before": True, "after": False},
    }
    assert (await rbac.audit("group.delete", resource_id=gid))[0].changes["name"]["before"]


async def test_group_roles_reach_members(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    await rbac.role("inherited_r", ["inherited:read"])
    await rbac.role("group_r", ["grp:read"], parents=["inherited_r"])
    member, member_client = await rbac.client("user")
    gid = await rbac.group("team", roles=["group_r"], members=[member])

    me = await rbac.me(member_client)
    assert me["groups"] == ["team"]
    assert {"grp:read", "inherited:read", "profile:read"} <= set(me["permissions"])
    assert {"group_r", "inherited_r", "user"} <= set(me["roles"]) and me["direct_roles"] == ["user"]

    group = (await admin_client.get(f"{URL}/{gid}")).json()
    assert [r["name"] for r in group["roles"]] == ["group_r"] and group["member_count"] == 1
    members = (await admin_client.get(f"{URL}/{gid}/members")).json()
    assert members["total"] == 1 and members["items"][0]["username"] == member.username
    user_groups = await admin_client.get(f"{API}/users/{member.id}/groups")
    assert user_groups.status_code == 200 and [g["name"] for g in user_groups.json()] == ["team"]
    # users show their groups, one by one and in lists
    user = (await admin_client.get(f"{API}/users/{member.id}")).json()
    assert user["groups"] == ["team"] and user["roles"] == ["user"]
    listed = (await admin_client.get(f"{API}/users", params={"q": member.username})).json()
    assert [u["groups"] for u in listed["items"]] == [["team"]]

    # an inactive group contributes nothing
    await admin_client.put(f"{URL}/{gid}", json={"is_active": False})
    me = await rbac.me(member_client)
    assert "grp:read" not in me["permissions"] and me["groups"] == []
    await admin_client.put(f"{URL}/{gid}", json={"is_active": True})
    assert "grp:read" in (await rbac.me(member_client))["permissions"]

    # removing the role, then the member
    rid = await rbac.role_id("group_r")
    removed = await admin_client.delete(f"{URL}/{gid}/roles/{rid}")
    assert removed.status_code == 200 and removed.json()["roles"] == []
    assert "grp:read" not in (await rbac.me(member_client))["permissions"]
    assert (await admin_client.delete(f"{URL}/{gid}/roles/{rid}")).status_code == 404
    assert (await admin_client.delete(f"{URL}/{gid}/members/{member.id}")).status_code == 204
    assert (await rbac.me(member_client))["groups"] == []
    assert (await admin_client.delete(f"{URL}/{gid}/members/{member.id}")).status_code == 404

    assert (await rbac.audit("group.role_add", resource_id=str(gid)))[0].changes == {
        "roles": {"before": [], "after": ["group_r"]}
    }
    assert (await rbac.audit("group.role_remove", resource_id=str(gid)))[0].changes == {
        "roles": {"before": ["group_r"], "after": []}
    }
    add = (await rbac.audit("group.member_add", resource_id=str(gid)))[0]
    assert add.details["user_id"] == str(member.id)
    remove = (await rbac.audit("group.member_remove", resource_id=str(gid)))[0]
    assert remove.details["user_id"] == str(member.id)


async def test_members_paginated(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    users = [await rbac.factory.user() for _ in range(5)]
    gid = await rbac.group("many", members=users)
    first = (await admin_client.get(f"{URL}/{gid}/members", params={"limit": 2})).json()
    rest = (await admin_client.get(f"{URL}/{gid}/members", params={"limit": 2, "offset": 2})).json()
    assert first["total"] == 5 and len(first["items"]) == 2 and len(rest["items"]) == 2
    names = [m["username"] for m in first["items"] + rest["items"]]
    assert names == sorted(names) and len(set(names)) == 4
    assert (await admin_client.post(f"{URL}/{gid}/members/{users[0].id}")).status_code == 204


async def test_unknown_targets(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    missing = "0190a0a0-0000-7000-8000-000000000000"
    gid = await rbac.group("g404")
    assert (await admin_client.post(f"{URL}/{gid}/members/{missing}")).status_code == 404
    assert (await admin_client.post(f"{URL}/{gid}/roles/{missing}")).status_code == 404
    assert (await admin_client.post(f"{URL}/{missing}/members/{missing}")).status_code == 404
    assert (await admin_client.get(f"{API}/users/{missing}/groups")).status_code == 404
    assert (await admin_client.get(f"{URL}/{missing}/members")).status_code == 404
