"""Gaps found by auditing issue 3 from the outside: each test failed before its fix.

* Renaming a permission held by roles is a grant (every holder now holds the new name), so it
  goes through delegation like any other grant.
* Group changes cannot take the last active super-admin away (deactivate, delete, remove the
  member, remove the super-admin role), and only a super-admin may take super-admin rights away
  through a group; a refusal leaves nothing behind.
* Update fields that may be left out may not be cleared with null (never a silent drop), group
  names may not be blank, `status=` filters permissions, and POST answers with a trailing slash
  on /roles/ and /groups/ as on /permissions/.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.factories import Factory
from tests.modules.rbac.conftest import API, Rbac


# ---- renaming a permission is a grant ------------------------------------------------------
async def test_renaming_a_held_permission_to_one_not_held_is_refused(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    gizmo = await rbac.permission_id("gizmo:read")
    await rbac.role("gizmo_holder", ["gizmo:read"])
    _, holder_client = await rbac.client("user", "gizmo_holder")
    await rbac.role("perm_editor", ["permission:read", "permission:update", "gizmo:read"])
    _, editor = await rbac.client("perm_editor")

    refused = await editor.put(f"{API}/permissions/{gizmo}", json={"name": "secret:read"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "delegation_denied"
    assert refused.json()["exceeding_permissions"] == ["secret:read"]
    rows = await rbac.audit("permission.update", outcome="denied")
    assert rows and rows[-1].details["exceeding_permissions"] == ["secret:read"]
    assert rows[-1].details["held_by_roles"] == ["gizmo_holder", "perm_editor"]
    # nothing changed: the holder still holds gizmo:read, and nobody holds secret:read
    assert (await admin_client.get(f"{API}/permissions/{gizmo}")).json()["name"] == "gizmo:read"
    assert "secret:read" not in (await rbac.me(holder_client))["permissions"]

    # renaming a permission no role holds grants nothing, so it is not a delegation matter
    loose = await rbac.permission_id("loose:read")
    renamed = await editor.put(f"{API}/permissions/{loose}", json={"name": "loose:anything"})
    assert renamed.status_code == 200, renamed.text
    # the super-admin is exempt
    done = await admin_client.put(f"{API}/permissions/{gizmo}", json={"name": "secret:read"})
    assert done.status_code == 200, done.text
    assert "secret:read" in (await rbac.me(holder_client))["permissions"]


# ---- the last super-admin, through groups ----------------------------------------------------
async def _only_superadmin_through_group(
    admin_client: httpx.AsyncClient, rbac: Rbac, factory: Factory
) -> tuple[uuid.UUID, uuid.UUID, httpx.AsyncClient, uuid.UUID]:
    """A group conferring super-admin whose one member becomes the only super-admin (the seeded
    one loses the role). Returns (group id, member id, member's client, superadmin role id)."""
    superadmin_role = await rbac.role_id("superadmin")
    member, member_client = await rbac.client("user")
    gid = await rbac.group("supers", roles=["superadmin"], members=[member])
    seeded = await factory.existing("superadmin", "unused")
    demoted = await member_client.delete(f"{API}/users/{seeded.id}/roles/{superadmin_role}")
    assert demoted.status_code == 200, demoted.text
    return gid, member.id, member_client, superadmin_role


async def _group_change(
    client: httpx.AsyncClient, change: str, gid: Any, member_id: Any, role_id: Any
) -> httpx.Response:
    """One way of taking super-admin away from a group's members."""
    if change == "remove_member":
        return await client.delete(f"{API}/groups/{gid}/members/{member_id}")
    if change == "remove_role":
        return await client.delete(f"{API}/groups/{gid}/roles/{role_id}")
    if change == "delete":
        return await client.delete(f"{API}/groups/{gid}")
    return await client.put(f"{API}/groups/{gid}", json={"is_active": False})


@pytest.mark.parametrize("change", ["remove_member", "remove_role", "delete", "deactivate"])
async def test_group_changes_cannot_remove_the_last_superadmin(
    admin_client: httpx.AsyncClient, rbac: Rbac, factory: Factory, change: str
) -> None:
    gid, member_id, member, superadmin_role = await _only_superadmin_through_group(
        admin_client, rbac, factory
    )
    response = await _group_change(member, change, gid, member_id, superadmin_role)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "last_superadmin"
    # rolled back entirely: the group, its role and its member are all still there
    group = await member.get(f"{API}/groups/{gid}")
    assert group.status_code == 200
    assert group.json()["is_active"] is True
    assert [r["name"] for r in group.json()["roles"]] == ["superadmin"]
    assert group.json()["member_count"] == 1
    assert "superadmin" in (await rbac.me(member))["roles"]


async def test_group_changes_allowed_while_another_superadmin_remains(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    member, _ = await rbac.client("user")
    gid = await rbac.group("supers", roles=["superadmin"], members=[member])
    removed = await admin_client.delete(f"{API}/groups/{gid}/members/{member.id}")
    assert removed.status_code == 204, removed.text
    assert (await admin_client.delete(f"{API}/groups/{gid}")).status_code == 204


@pytest.mark.parametrize("change", ["remove_member", "remove_role", "delete", "deactivate"])
async def test_only_a_superadmin_takes_superadmin_away_through_a_group(
    admin_client: httpx.AsyncClient, rbac: Rbac, change: str
) -> None:
    member, _ = await rbac.client("user")
    gid = await rbac.group("supers", roles=["superadmin"], members=[member])
    superadmin_role = await rbac.role_id("superadmin")
    _, admin = await rbac.client("admin")
    response = await _group_change(admin, change, gid, member.id, superadmin_role)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "superadmin_protected"
    group = (await admin_client.get(f"{API}/groups/{gid}")).json()
    assert group["is_active"] is True and group["member_count"] == 1
    assert [r["name"] for r in group["roles"]] == ["superadmin"]
    # other groups are the admin's to change as before
    other = await rbac.group("plain", roles=["user"], members=[member])
    assert (await admin.delete(f"{API}/groups/{other}/members/{member.id}")).status_code == 204
    assert (await admin.delete(f"{API}/groups/{other}")).status_code == 204


# ---- contract details ------------------------------------------------------------------------
async def test_update_fields_cannot_be_cleared_with_null(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    pid = await rbac.permission_id("widget:read")
    rid = await rbac.role("nullable_check")
    gid = await rbac.group("nullable_check")
    for path, field in (
        (f"{API}/permissions/{pid}", "name"),
        (f"{API}/roles/{rid}", "name"),
        (f"{API}/groups/{gid}", "name"),
        (f"{API}/groups/{gid}", "is_active"),
    ):
        response = await admin_client.put(path, json={field: None})
        assert response.status_code == 422, (path, field, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == [field]
    # a null category resets it to the resource
    custom = await admin_client.put(f"{API}/permissions/{pid}", json={"category": "tools"})
    assert custom.json()["category"] == "tools"
    reset = await admin_client.put(f"{API}/permissions/{pid}", json={"category": None})
    assert reset.status_code == 200 and reset.json()["category"] == "widget"


async def test_group_names_may_not_be_blank(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    blank = await admin_client.post(f"{API}/groups", json={"name": "   "})
    assert blank.status_code == 422, blank.text
    assert [e["field"] for e in blank.json()["errors"]] == ["name"]
    gid = await rbac.group("named")
    renamed = await admin_client.put(f"{API}/groups/{gid}", json={"name": " \t "})
    assert renamed.status_code == 422, renamed.text
    assert [e["field"] for e in renamed.json()["errors"]] == ["name"]
    trimmed = await admin_client.put(f"{API}/groups/{gid}", json={"name": "  renamed  "})
    assert trimmed.status_code == 200 and trimmed.json()["name"] == "renamed"


async def test_permissions_filter_by_status(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    pid = await rbac.permission_id("widget:read")
    assert (await admin_client.patch(f"{API}/permissions/{pid}/toggle-status")).status_code == 200
    inactive = await admin_client.get(f"{API}/permissions", params={"status": "inactive"})
    assert inactive.status_code == 200
    assert [p["name"] for p in inactive.json()["items"]] == ["widget:read"]
    active = await admin_client.get(f"{API}/permissions", params={"status": "active"})
    assert "widget:read" not in {p["name"] for p in active.json()["items"]}
    assert active.json()["total"] > 0
    bad = await admin_client.get(f"{API}/permissions", params={"status": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    both = await admin_client.get(
        f"{API}/permissions", params={"status": "active", "is_active": "false"}
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "status"


async def test_post_with_a_trailing_slash(admin_client: httpx.AsyncClient) -> None:
    role = await admin_client.post(f"{API}/roles/", json={"name": "slashed"})
    assert role.status_code == 201, role.text
    group = await admin_client.post(f"{API}/groups/", json={"name": "slashed"})
    assert group.status_code == 201, group.text


async def test_nul_characters_are_a_422_naming_the_field(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    """PostgreSQL cannot store or compare NUL: these were a 503 there; now a 422 everywhere."""
    gid = await rbac.group("nul_target")
    rid = await rbac.role("nul_target")
    pid = await rbac.permission_id("widget:read")
    bodies = [
        ("post", "/groups", {"name": "a\x00b"}, "name"),
        ("post", "/groups", {"name": "ok", "description": "a\x00b"}, "description"),
        ("put", f"/groups/{gid}", {"name": "a\x00b"}, "name"),
        ("post", "/permissions", {"name": "nul:x", "description": "a\x00b"}, "description"),
        ("post", "/permissions", {"name": "nul:x", "category": "a\x00b"}, "category"),
        ("put", f"/permissions/{pid}", {"description": "a\x00b"}, "description"),
        ("post", "/roles", {"name": "nulrole", "description": "a\x00b"}, "description"),
        ("post", "/roles", {"name": "nulrole", "permissions": ["a\x00b"]}, "permissions.0"),
        ("post", "/roles", {"name": "nulrole", "parents": ["a\x00b"]}, "parents.0"),
        (
            "post",
            "/roles/create-minimal",
            {"name": "nulrole", "description": "\x00"},
            "description",
        ),
        ("put", f"/roles/{rid}", {"description": "a\x00b"}, "description"),
    ]
    for method, path, body, field in bodies:
        response = await getattr(admin_client, method)(API + path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], (path, body)
    queries = [
        ("/permissions", {"q": "a\x00b"}, "q"),
        ("/permissions", {"resource": "a\x00b"}, "resource"),
        ("/permissions", {"category": "a\x00b"}, "category"),
        ("/roles", {"q": "a\x00b"}, "q"),
        ("/groups", {"q": "a\x00b"}, "q"),
    ]
    for path, params, field in queries:
        response = await admin_client.get(API + path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], (path, params)
    by_resource = await admin_client.get(f"{API}/permissions/by-resource/a%00b")
    assert by_resource.status_code == 422, by_resource.text
    assert by_resource.json()["errors"][0]["field"] == "resource"
    assert (await admin_client.get(f"{API}/groups", params={"q": "nul"})).json()["total"] == 1
