"""Nobody grants what they do not hold; every refusal is a 403 naming the excess, audited, and
leaves nothing else behind."""

from __future__ import annotations

import httpx

from tests.modules.rbac.conftest import API, Rbac


async def _delegate(rbac: Rbac) -> tuple[object, httpx.AsyncClient]:
    """A role manager: manages roles and groups, and holds patient:read only."""
    await rbac.role(
        "role_manager",
        ["role:*", "group:*", "permission:read", "patient:read", "user:read"],
    )
    return await rbac.client("role_manager")


async def _denied(rbac: Rbac, action: str) -> list:
    rows = await rbac.audit(action, outcome="denied")
    assert rows, f"no denied audit row for {action}"
    return rows


async def test_cannot_grant_permission_not_held(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    _, manager = await _delegate(rbac)
    rid = await rbac.role("target")
    export = await rbac.permission_id("patient:export")
    refused = await manager.post(f"{API}/roles/{rid}/permissions/{export}")
    assert refused.status_code == 403
    assert refused.json()["code"] == "delegation_denied"
    assert refused.json()["exceeding_permissions"] == ["patient:export"]
    row = (await _denied(rbac, "role.permission_add"))[0]
    assert row.details["exceeding_permissions"] == ["patient:export"]
    assert row.resource_id == str(rid)
    assert (await admin_client.get(f"{API}/roles/{rid}")).json()["permissions"] == []

    read = await rbac.permission_id("patient:read")
    assert (await manager.post(f"{API}/roles/{rid}/permissions/{read}")).status_code == 200
    # a wildcard needs the wildcard (or *:*)
    star = await rbac.permission_id("patient:*")
    wild = await manager.post(f"{API}/roles/{rid}/permissions/{star}")
    assert wild.status_code == 403 and wild.json()["exceeding_permissions"] == ["patient:*"]


async def test_cannot_create_role_with_permissions_not_held(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    _, manager = await _delegate(rbac)
    refused = await manager.post(
        f"{API}/roles", json={"name": "sneaky", "permissions": ["patient:read", "user:delete"]}
    )
    assert refused.status_code == 403
    assert refused.json()["exceeding_permissions"] == ["user:delete"]
    assert (await admin_client.get(f"{API}/roles", params={"q": "sneaky"})).json()["total"] == 0
    row = (await _denied(rbac, "role.create"))[0]
    assert row.details["name"] == "sneaky"
    assert row.details["exceeding_permissions"] == ["user:delete"]
    ok = await manager.post(f"{API}/roles", json={"name": "fine", "permissions": ["patient:read"]})
    assert ok.status_code == 201


async def test_cannot_add_parent_exceeding(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    _, manager = await _delegate(rbac)
    child = await rbac.role("child_d")
    await rbac.role("grand_d", ["audit:read"])
    parent = await rbac.role("parent_d", ["patient:read"], parents=["grand_d"])
    refused = await manager.post(f"{API}/roles/{child}/parents/{parent}")
    assert refused.status_code == 403
    assert refused.json()["exceeding_permissions"] == ["audit:read"]  # inherited counts
    assert (await _denied(rbac, "role.parent_add"))[0].details["parent"] == "parent_d"
    assert (await admin_client.get(f"{API}/roles/{child}")).json()["parents"] == []
    # also when creating a role with that parent
    create = await manager.post(
        f"{API}/roles", json={"name": "with_parent", "parents": ["parent_d"]}
    )
    assert create.status_code == 403
    admin = await rbac.role_id("admin")
    assert (await manager.post(f"{API}/roles/{child}/parents/{admin}")).status_code == 403


async def test_cannot_assign_exceeding_role_to_group(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    _, manager = await _delegate(rbac)
    gid = await rbac.group("grp_d")
    admin = await rbac.role_id("admin")
    refused = await manager.post(f"{API}/groups/{gid}/roles/{admin}")
    assert refused.status_code == 403
    assert "user:*" in refused.json()["exceeding_permissions"]
    assert (await _denied(rbac, "group.role_add"))[0].details["role"] == "admin"
    assert (await admin_client.get(f"{API}/groups/{gid}")).json()["roles"] == []
    small = await rbac.role("small", ["patient:read"])
    assert (await manager.post(f"{API}/groups/{gid}/roles/{small}")).status_code == 200


async def test_cannot_add_member_to_group_conferring_more(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    _, manager = await _delegate(rbac)
    other = await rbac.factory.user()
    gid = await rbac.group("admins_grp", roles=["admin"])
    refused = await manager.post(f"{API}/groups/{gid}/members/{other.id}")
    assert refused.status_code == 403
    assert (await _denied(rbac, "group.member_add"))[0].details["user_id"] == str(other.id)
    assert (await admin_client.get(f"{API}/groups/{gid}/members")).json()["total"] == 0


async def test_cannot_add_self_or_change_own_roles(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    me_user, manager = await _delegate(rbac)
    gid = await rbac.group("self_grp")
    refused = await manager.post(f"{API}/groups/{gid}/members/{me_user.id}")  # type: ignore[attr-defined]
    assert refused.status_code == 403 and refused.json()["code"] == "delegation_denied"
    assert "yourself" in refused.json()["detail"]
    assert await _denied(rbac, "group.member_add")

    # a group the manager belongs to: its roles are the manager's own roles
    await admin_client.post(f"{API}/groups/{gid}/members/{me_user.id}")  # type: ignore[attr-defined]
    small = await rbac.role("small2", ["patient:read"])
    own = await manager.post(f"{API}/groups/{gid}/roles/{small}")
    assert own.status_code == 403
    assert (
        (await _denied(rbac, "group.role_add"))[0]
        .details["reason"]
        .startswith("You cannot change your own roles")
    )
    leave = await manager.delete(f"{API}/groups/{gid}/members/{me_user.id}")  # type: ignore[attr-defined]
    assert leave.status_code == 403
    assert await _denied(rbac, "group.member_remove")
    assert (await admin_client.get(f"{API}/groups/{gid}/members")).json()["total"] == 1


async def test_superadmin_is_exempt(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    gid = await rbac.group("exempt")
    admin = await rbac.role_id("admin")
    assert (await admin_client.post(f"{API}/groups/{gid}/roles/{admin}")).status_code == 200
    superadmin = await rbac.factory.existing("superadmin", "x")
    assert (
        await admin_client.post(f"{API}/groups/{gid}/members/{superadmin.id}")
    ).status_code == 204
    assert await rbac.audit("group.role_add", outcome="denied") == []


async def test_reactivation_is_a_grant(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    """Switching a role, a group or a permission back on gives its holders their permissions
    again, so it is checked like granting them; switching off takes nothing from anyone."""
    await rbac.role("toggler", ["role:*", "group:*", "permission:*", "patient:read"])
    _, manager = await rbac.client("toggler")

    rid = await rbac.role("audit_reader", ["audit:read"])
    assert (await manager.patch(f"{API}/roles/{rid}/toggle-status")).json()["is_active"] is False
    refused = await manager.patch(f"{API}/roles/{rid}/toggle-status")
    assert refused.status_code == 403 and refused.json()["exceeding_permissions"] == ["audit:read"]
    assert (await admin_client.get(f"{API}/roles/{rid}")).json()["is_active"] is False
    assert (await _denied(rbac, "role.toggle_status"))[0].resource_id == str(rid)
    assert (await admin_client.patch(f"{API}/roles/{rid}/toggle-status")).json()["is_active"]

    gid = await rbac.group("auditors", roles=["audit_reader"])
    off = await manager.put(f"{API}/groups/{gid}", json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    on = await manager.put(f"{API}/groups/{gid}", json={"is_active": True})
    assert on.status_code == 403 and on.json()["exceeding_permissions"] == ["audit:read"]
    assert (await admin_client.get(f"{API}/groups/{gid}")).json()["is_active"] is False
    assert (await _denied(rbac, "group.update"))[0].resource_id == str(gid)
    safe = await rbac.group("readers", roles=["toggler"])
    await manager.put(f"{API}/groups/{safe}", json={"is_active": False})
    assert (await manager.put(f"{API}/groups/{safe}", json={"is_active": True})).status_code == 200

    export = await rbac.permission_id("patient:export")
    assert (
        await admin_client.patch(f"{API}/permissions/{export}/toggle-status")
    ).status_code == 200
    back = await manager.patch(f"{API}/permissions/{export}/toggle-status")
    assert back.status_code == 403 and back.json()["exceeding_permissions"] == ["patient:export"]
    assert (await _denied(rbac, "permission.toggle_status"))[0].resource_id == str(export)
    assert (await admin_client.patch(f"{API}/permissions/{export}/toggle-status")).json()[
        "is_active"
    ]
