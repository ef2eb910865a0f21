from __future__ import annotations

import httpx

from tests.modules.rbac.conftest import API, Rbac

URL = f"{API}/roles"


async def test_roles_require_permission(client: httpx.AsyncClient, rbac: Rbac) -> None:
    assert (await client.get(URL)).status_code == 401
    _, plain = await rbac.client("user")
    assert (await plain.get(URL)).status_code == 403
    assert (await plain.post(URL, json={"name": "x"})).status_code == 403


async def test_create_with_permissions_and_parents(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    base = await rbac.role("staff", ["profile:read"])
    pid = await rbac.permission_id("ward:read")
    response = await admin_client.post(
        URL,
        json={
            "name": "nurse_x",
            "description": "Nurse",
            "permissions": [str(pid), "patient:read"],
            "parents": ["staff"],
        },
    )
    assert response.status_code == 201, response.text
    role = response.json()
    assert sorted(p["name"] for p in role["permissions"]) == ["patient:read", "ward:read"]
    assert [p["id"] for p in role["parents"]] == [str(base)]
    assert role["is_system"] is False and role["is_active"] is True
    fetched = (await admin_client.get(f"{URL}/{role['id']}")).json()
    assert fetched == role

    listed = (await admin_client.get(URL, params={"q": "nurse_"})).json()
    assert [r["name"] for r in listed["items"]] == ["nurse_x"]
    assert (await admin_client.get(URL, params={"is_active": False})).json()["total"] == 0

    rows = await rbac.audit("role.create", resource_id=role["id"])
    assert rows[0].changes["permissions"]["after"] == ["patient:read", "ward:read"]
    assert rows[0].changes["parents"]["after"] == ["staff"]


async def test_create_validation(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    unknown = await admin_client.post(URL, json={"name": "r1", "permissions": ["nope:nope"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "permissions"
    bad_parent = await admin_client.post(URL, json={"name": "r1", "parents": ["ghost"]})
    assert bad_parent.status_code == 422 and bad_parent.json()["errors"][0]["field"] == "parents"
    assert (await admin_client.post(URL, json={"name": "Bad Name"})).status_code == 422
    assert (await admin_client.post(URL, json={"name": "admin"})).status_code == 409
    # nothing was written by the refused requests
    assert (await admin_client.get(URL, params={"q": "r1"})).json()["total"] == 0


async def test_create_minimal_holds_user_template_defaults(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(f"{URL}/create-minimal", json={"name": "basic"})
    assert response.status_code == 201, response.text
    assert sorted(p["name"] for p in response.json()["permissions"]) == [
        "profile:read",
        "profile:update",
    ]
    assert response.json()["parents"] == []


async def test_update_rename_and_builtin_protection(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    rid = await rbac.role("temp_role")
    response = await admin_client.put(f"{URL}/{rid}", json={"name": "renamed", "description": "d"})
    assert response.status_code == 200 and response.json()["name"] == "renamed"
    rows = await rbac.audit("role.update", resource_id=str(rid))
    assert rows[0].changes["name"] == {"before": "temp_role", "after": "renamed"}
    for builtin in ("superadmin", "admin", "user", "guest"):
        bid = await rbac.role_id(builtin)
        assert (await admin_client.put(f"{URL}/{bid}", json={"name": "x"})).status_code == 409
        assert (await admin_client.delete(f"{URL}/{bid}")).status_code == 409
        assert (
            await admin_client.put(f"{URL}/{bid}", json={"description": "still editable"})
        ).status_code == 200
    await rbac.role("taken")
    assert (await admin_client.put(f"{URL}/{rid}", json={"name": "taken"})).status_code == 409


async def test_delete_inherited_role_needs_force(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    """A role other roles inherit from is in use: deleting it would silently strip them."""
    parent = await rbac.role("base_parent", ["base:read"])
    await rbac.role("heir", ["heir:read"], parents=["base_parent"])
    _, heir_client = await rbac.client("heir")
    refused = await admin_client.delete(f"{URL}/{parent}")
    assert refused.status_code == 409 and refused.json()["child_roles"] == ["heir"]
    assert "base:read" in (await rbac.me(heir_client))["permissions"]

    assert (await admin_client.delete(f"{URL}/{parent}", params={"force": True})).status_code == 204
    assert "base:read" not in (await rbac.me(heir_client))["permissions"]
    rows = await rbac.audit("role.delete", resource_id=str(parent))
    assert rows[0].details["detached_child_roles"] == ["heir"]


async def test_delete_in_use_needs_force(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    rid = await rbac.role("doomed", ["thing:read"])
    user, user_client = await rbac.client("doomed")
    await rbac.group("doomed_group", roles=["doomed"])
    refused = await admin_client.delete(f"{URL}/{rid}")
    assert refused.status_code == 409 and refused.json()["code"] == "role_in_use"
    assert refused.json()["users"] == 1 and refused.json()["groups"] == 1
    assert "thing:read" in (await rbac.me(user_client))["permissions"]

    assert (await admin_client.delete(f"{URL}/{rid}", params={"force": True})).status_code == 204
    assert (await admin_client.get(f"{URL}/{rid}")).status_code == 404
    me = await rbac.me(user_client)
    assert "thing:read" not in me["permissions"] and "doomed" not in me["roles"]
    rows = await rbac.audit("role.delete", resource_id=str(rid))
    assert rows[0].details["force"] is True
    assert rows[0].details["unassigned_users"] == [str(user.id)]
    assert len(rows[0].details["unassigned_groups"]) == 1

    unused = await rbac.role("unused")
    assert (await admin_client.delete(f"{URL}/{unused}")).status_code == 204


async def test_add_remove_permission(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    rid = await rbac.role("editor")
    _, editor = await rbac.client("editor")
    pid = await rbac.permission_id("doc:write")
    added = await admin_client.post(f"{URL}/{rid}/permissions/{pid}")
    assert added.status_code == 200
    assert [p["name"] for p in added.json()["permissions"]] == ["doc:write"]
    assert "doc:write" in (await rbac.me(editor))["permissions"]
    again = await admin_client.post(f"{URL}/{rid}/permissions/{pid}")  # idempotent
    assert again.status_code == 200 and len(again.json()["permissions"]) == 1
    removed = await admin_client.delete(f"{URL}/{rid}/permissions/{pid}")
    assert removed.status_code == 200 and removed.json()["permissions"] == []
    assert "doc:write" not in (await rbac.me(editor))["permissions"]
    assert (await admin_client.delete(f"{URL}/{rid}/permissions/{pid}")).status_code == 404

    add_rows = await rbac.audit("role.permission_add", resource_id=str(rid))
    assert len(add_rows) == 1
    assert add_rows[0].changes == {"permissions": {"before": [], "after": ["doc:write"]}}
    remove_rows = await rbac.audit("role.permission_remove", resource_id=str(rid))
    assert remove_rows[0].changes == {"permissions": {"before": ["doc:write"], "after": []}}


async def test_toggle_role_inactive_contributes_nothing(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    await rbac.role("base_role", ["base:read"])
    rid = await rbac.role("child_role", ["child:read"], parents=["base_role"])
    _, child = await rbac.client("child_role")
    assert {"base:read", "child:read"} <= set((await rbac.me(child))["permissions"])

    base = await rbac.role_id("base_role")
    toggled = await admin_client.patch(f"{URL}/{base}/toggle-status")
    assert toggled.json()["is_active"] is False
    me = await rbac.me(child)
    assert "base:read" not in me["permissions"] and "child:read" in me["permissions"]
    assert "base_role" not in me["roles"]

    await admin_client.patch(f"{URL}/{base}/toggle-status")
    await admin_client.patch(f"{URL}/{rid}/toggle-status")
    me = await rbac.me(child)  # the inactive role passes nothing on, not even what it inherits
    assert "base:read" not in me["permissions"] and "child:read" not in me["permissions"]
    rows = await rbac.audit("role.toggle_status", resource_id=str(rid))
    assert rows[0].changes == {"is_active": {"before": True, "after": False}}


async def test_superadmin_protections(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    sid = await rbac.role_id("superadmin")
    everything = await rbac.permission_id("*:*")
    empty = await admin_client.delete(f"{URL}/{sid}/permissions/{everything}")
    assert empty.status_code == 409 and empty.json()["code"] == "superadmin_protected"
    assert (await admin_client.patch(f"{URL}/{sid}/toggle-status")).status_code == 409
    assert (await admin_client.delete(f"{URL}/{sid}", params={"force": True})).status_code == 409
    role = (await admin_client.get(f"{URL}/{sid}")).json()
    assert role["is_active"] and [p["name"] for p in role["permissions"]] == ["*:*"]


async def test_inheritance_closure_depth(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    previous: list[str] = []
    for level in range(6):
        await rbac.role(f"level{level}", [f"level{level}:read"], parents=previous)
        previous = [f"level{level}"]
    _, deepest = await rbac.client("level5")
    me = await rbac.me(deepest)
    assert {f"level{i}:read" for i in range(6)} <= set(me["permissions"])
    assert {f"level{i}" for i in range(6)} <= set(me["roles"])
    assert me["direct_roles"] == ["level5"]

    eff = await admin_client.get(f"{URL}/{await rbac.role_id('level5')}/effective-permissions")
    assert eff.status_code == 200
    by_name = {e["permission"]: e for e in eff.json()["permissions"]}
    assert by_name["level5:read"]["inherited"] is False
    assert by_name["level0:read"]["inherited"] is True
    assert by_name["level0:read"]["sources"] == [
        {"role": "level0", "path": ["level5", "level4", "level3", "level2", "level1", "level0"]}
    ]

    # cut the chain in the middle
    l2, l3 = await rbac.role_id("level2"), await rbac.role_id("level3")
    cut = await admin_client.delete(f"{URL}/{l3}/parents/{l2}")
    assert cut.status_code == 200 and cut.json()["parents"] == []
    me = await rbac.me(deepest)
    assert "level2:read" not in me["permissions"] and "level3:read" in me["permissions"]
    assert (await admin_client.delete(f"{URL}/{l3}/parents/{l2}")).status_code == 404
    rows = await rbac.audit("role.parent_remove", resource_id=str(l3))
    assert rows[0].changes == {"parents": {"before": ["level2"], "after": []}}


async def test_cycles_refused_with_path(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    await rbac.role("ca")
    await rbac.role("cb", parents=["ca"])
    cc = await rbac.role("cc", parents=["cb"])
    ca = await rbac.role_id("ca")
    refused = await admin_client.post(f"{URL}/{ca}/parents/{cc}")
    assert refused.status_code == 409
    assert refused.json()["code"] == "role_cycle"
    assert "ca -> cc -> cb -> ca" in refused.json()["detail"]
    assert refused.json()["cycle"] == ["ca", "cc", "cb", "ca"]
    self_loop = await admin_client.post(f"{URL}/{ca}/parents/{ca}")
    assert self_loop.status_code == 409 and "ca -> ca" in self_loop.json()["detail"]
    assert (await admin_client.get(f"{URL}/{ca}")).json()["parents"] == []

    # a diamond is a DAG, not a cycle
    cd = await rbac.role("cd", parents=["ca"])
    added = await admin_client.post(f"{URL}/{cc}/parents/{cd}")
    assert added.status_code == 200
    assert sorted(p["name"] for p in added.json()["parents"]) == ["cb", "cd"]
    rows = await rbac.audit("role.parent_add", resource_id=str(cc))
    assert rows[0].changes == {"parents": {"before": ["cb"], "after": ["cb", "cd"]}}


async def test_wildcards(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    await rbac.role("patient_all", ["patient:*"])
    await rbac.role("reader_all", ["*:read"])
    _, patient_all = await rbac.client("patient_all")
    _, reader_all = await rbac.client("reader_all")
    # patient:* grants every patient action, nothing else
    assert (await patient_all.get(f"{API}/permissions")).status_code == 403
    # *:read grants every read: permissions, roles, groups...
    assert (await reader_all.get(f"{API}/permissions")).status_code == 200
    assert (await reader_all.get(URL)).status_code == 200
    assert (await reader_all.post(URL, json={"name": "zz"})).status_code == 403
    check = await admin_client.post(
        f"{API}/authz/check",
        json={
            "user_id": str((await rbac.me(patient_all))["user_id"]),
            "permissions": ["patient:read", "patient:export", "user:read"],
        },
    )
    assert [d["allowed"] for d in check.json()["decisions"]] == [True, True, False]


async def test_admin_may_create_minimal_but_not_exceed(rbac: Rbac) -> None:
    _, admin = await rbac.client("admin")
    response = await admin.post(f"{URL}/create-minimal", json={"name": "minimal_by_admin"})
    assert response.status_code == 201, response.text
    await rbac.role("narrow", ["profile:read"])
    _, narrow_manager = await rbac.client("narrow")
    # role:create is missing: plain 403, not a delegation refusal
    refused = await narrow_manager.post(f"{URL}/create-minimal", json={"name": "nope"})
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    await rbac.role("creator", ["role:create"])
    _, creator = await rbac.client("creator")
    denied = await creator.post(f"{URL}/create-minimal", json={"name": "nope"})
    assert denied.status_code == 403 and denied.json()["code"] == "delegation_denied"
    assert denied.json()["exceeding_permissions"] == ["profile:read", "profile:update"]


async def test_superadmin_is_never_inherited(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    """Super-admin is held only by assignment, so its holders can be counted and the last one
    protected: it cannot become a parent, by creation or by adding a parent."""
    created = await admin_client.post(URL, json={"name": "shadow", "parents": ["superadmin"]})
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["field"] == "parents"
    assert (await admin_client.get(URL, params={"q": "shadow"})).json()["total"] == 0

    role = await rbac.role("shadow2", ["profile:read"])
    listed = (await admin_client.get(URL, params={"q": "superadmin"})).json()["items"]
    superadmin = next(r for r in listed if r["name"] == "superadmin")
    added = await admin_client.post(f"{URL}/{role}/parents/{superadmin['id']}")
    assert added.status_code == 409, added.text
    assert added.json()["code"] == "superadmin_not_inheritable"
    assert (await admin_client.get(f"{URL}/{role}")).json()["parents"] == []
