"""The rules: session revocation, the last super-admin, own roles, delegation safety,
super-admin accounts protected from administrators."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TestUser
from tests.modules.users.helpers import (
    API,
    assert_problem,
    audit_rows,
    live_sessions,
    make_role,
    role_id,
    user_row,
)


@pytest.mark.parametrize("how", ["delete", "toggle", "patch", "bulk"])
async def test_deactivation_and_deletion_revoke_sessions(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any, how: str
) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    assert (await c.get(f"{API}/me")).status_code == 200
    assert await live_sessions(runtime, user.id) == 1
    url = f"{API}/{user.id}"
    if how == "delete":
        response = await admin_client.delete(url)
    elif how == "toggle":
        response = await admin_client.patch(f"{url}/toggle-status")
    elif how == "patch":
        response = await admin_client.patch(url, json={"is_active": False})
    else:
        response = await admin_client.post(
            f"{API}/bulk", json={"action": "deactivate", "user_ids": [str(user.id)]}
        )
    assert response.status_code in (200, 204), response.text
    assert_problem(await c.get(f"{API}/me"), 401)
    assert await live_sessions(runtime, user.id) == 0
    # Coming back does not revive the old token: its session was revoked.
    if how == "delete":
        await admin_client.post(f"{url}/restore")
    else:
        await admin_client.patch(url, json={"is_active": True})
    assert (await user_row(runtime, user.id)).is_active
    assert_problem(await c.get(f"{API}/me"), 401)
    assert (await factory.login(user)).access_token


async def _only_superadmin(factory: Factory, superadmin: TestUser) -> TestUser:
    await factory.login(superadmin)
    return superadmin


async def test_last_superadmin_cannot_be_deactivated_deleted_or_demoted(
    admin_client: httpx.AsyncClient, superadmin: TestUser, runtime: Any
) -> None:
    url = f"{API}/{superadmin.id}"
    sa_role = await role_id(runtime, "superadmin")
    assert_problem(await admin_client.patch(f"{url}/toggle-status"), 409, "last_superadmin")
    assert_problem(await admin_client.patch(url, json={"is_active": False}), 409, "last_superadmin")
    assert_problem(
        await admin_client.put(
            url, json={"username": "superadmin", "email": superadmin.email, "is_active": False}
        ),
        409,
        "last_superadmin",
    )
    assert_problem(await admin_client.delete(url), 409, "last_superadmin")
    assert_problem(await admin_client.delete(f"{url}/roles/{sa_role}"), 409, "last_superadmin")
    for action in ("deactivate", "delete"):
        bulk = await admin_client.post(
            f"{API}/bulk", json={"action": action, "user_ids": [str(superadmin.id)]}
        )
        assert bulk.status_code == 200, bulk.text
        assert bulk.json()["results"] == [
            {
                "id": str(superadmin.id),
                "status": "error",
                "error": "last_superadmin",
                "detail": bulk.json()["results"][0]["detail"],
            }
        ]
    bulk = await admin_client.post(
        f"{API}/bulk",
        json={"action": "remove_role", "role_id": str(sa_role), "user_ids": [str(superadmin.id)]},
    )
    assert bulk.json()["results"][0]["error"] == "last_superadmin"
    row = await user_row(runtime, superadmin.id)
    assert row.is_active and row.deleted_at is None
    assert (await admin_client.get(f"{API}/me")).json()["roles"] == ["superadmin"]


async def test_a_superadmin_can_go_when_another_remains(
    admin_client: httpx.AsyncClient, factory: Factory, superadmin: TestUser, runtime: Any
) -> None:
    second = await factory.user(roles=["superadmin"])
    sa_role = await role_id(runtime, "superadmin")
    response = await admin_client.delete(f"{API}/{second.id}/roles/{sa_role}")
    assert response.status_code == 200 and response.json()["roles"] == []
    await admin_client.post(f"{API}/{second.id}/roles/{sa_role}")
    # Now the seeded super-admin may deactivate itself; the second one may not follow.
    second_client = await factory.client_for(await factory.login(second))
    assert (await admin_client.patch(f"{API}/{superadmin.id}/toggle-status")).status_code == 200
    assert_problem(
        await second_client.patch(f"{API}/{second.id}/toggle-status"), 409, "last_superadmin"
    )
    # Both in one bulk: the first succeeds, the second is the last one and fails.
    await second_client.patch(f"{API}/{superadmin.id}/toggle-status")
    bulk = await second_client.post(
        f"{API}/bulk",
        json={"action": "delete", "user_ids": [str(superadmin.id), str(second.id)]},
    )
    assert [r["status"] for r in bulk.json()["results"]] == ["ok", "error"]


async def test_role_assign_and_remove(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    admin_role = await role_id(runtime, "admin")
    response = await admin_client.post(f"{API}/{user.id}/roles/{admin_role}")
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["admin", "user"]
    assert "admin" in (await c.get(f"{API}/me")).json()["roles"]  # principal refreshed
    assert (await c.get(API)).status_code == 200
    again = await admin_client.post(f"{API}/{user.id}/roles/{admin_role}")
    assert again.json()["roles"] == ["admin", "user"]
    removed = await admin_client.delete(f"{API}/{user.id}/roles/{admin_role}")
    assert removed.json()["roles"] == ["user"]
    assert_problem(await c.get(API), 403)
    rows = await audit_rows(runtime, resource_id=str(user.id))
    assert [r.action for r in rows if r.action.startswith("user.")] == [
        "user.role_assign",
        "user.role_remove",
    ]
    changes = [r.changes for r in rows if r.action.startswith("user.")]
    assert changes == [
        {"roles": {"before": ["user"], "after": ["admin", "user"]}},
        {"roles": {"before": ["admin", "user"], "after": ["user"]}},
    ]
    assert_problem(await admin_client.post(f"{API}/{user.id}/roles/{uuid.uuid4()}"), 404)
    assert_problem(await admin_client.post(f"{API}/{uuid.uuid4()}/roles/{admin_role}"), 404)
    assert_problem(await admin_client.delete(f"{API}/{user.id}/roles/{uuid.uuid4()}"), 404)


async def test_nobody_changes_their_own_roles_except_superadmin(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any, superadmin: TestUser
) -> None:
    admin = await factory.logged_in(roles=["admin"])
    ac = await factory.client_for(admin)
    user_role = await role_id(runtime, "user")
    admin_role = await role_id(runtime, "admin")
    assert_problem(await ac.post(f"{API}/{admin.id}/roles/{user_role}"), 403, "self_role_change")
    assert_problem(await ac.delete(f"{API}/{admin.id}/roles/{admin_role}"), 403, "self_role_change")
    bulk = await ac.post(
        f"{API}/bulk",
        json={"action": "remove_role", "role_id": str(admin_role), "user_ids": [str(admin.id)]},
    )
    assert bulk.json()["results"][0]["error"] == "self_role_change"
    ok = await admin_client.post(f"{API}/{superadmin.id}/roles/{user_role}")
    assert ok.status_code == 200 and "user" in ok.json()["roles"]


async def test_delegation_refused_and_audited(factory: Factory, runtime: Any) -> None:
    await make_role(runtime, "user_manager", ["user:*"])
    manager = await factory.logged_in(roles=["user_manager"])
    mc = await factory.client_for(manager)
    target = await factory.user()
    for name in ("superadmin", "admin"):
        rid = await role_id(runtime, name)
        body = assert_problem(
            await mc.post(f"{API}/{target.id}/roles/{rid}"), 403, "delegation_denied"
        )
        assert body["exceeding_permissions"]
        assert ("*:*" in body["exceeding_permissions"]) == (name == "superadmin")
        assert all(p in body["detail"] for p in body["exceeding_permissions"])
    denied = await audit_rows(runtime, action="user.role_assign", outcome="denied")
    assert len(denied) == 2 and all(r.actor_id == manager.id for r in denied)
    assert denied[0].details is not None and denied[0].details["exceeding_permissions"]
    roles = (await user_row(runtime, target.id), await mc.get(f"{API}/{target.id}"))
    assert roles[1].json()["roles"] == ["user"]
    # creation with a role beyond the caller's, and bulk assignment
    created = await mc.post(
        API,
        json={
            "username": "sneaky",
            "email": "sneaky@example.com",
            "password": "Sneaky-Pass-Word-1",
            "roles": ["admin"],
        },
    )
    assert_problem(created, 403, "delegation_denied")
    assert (await mc.get(API, params={"q": "sneaky"})).json()["total"] == 0
    sa_role = await role_id(runtime, "superadmin")
    bulk = await mc.post(
        f"{API}/bulk",
        json={"action": "assign_role", "role_id": str(sa_role), "user_ids": [str(target.id)]},
    )
    assert_problem(bulk, 403, "delegation_denied")
    assert len(await audit_rows(runtime, outcome="denied")) == 4
    # a role within the manager's own permissions is fine
    mine = await role_id(runtime, "user_manager")
    assert (await mc.post(f"{API}/{target.id}/roles/{mine}")).status_code == 200


async def test_administrators_cannot_touch_superadmin_accounts(
    factory: Factory, superadmin: TestUser, runtime: Any
) -> None:
    admin = await factory.logged_in(roles=["admin"])
    ac = await factory.client_for(admin)
    url = f"{API}/{superadmin.id}"
    assert (await ac.get(url)).status_code == 200
    assert_problem(
        await ac.patch(url, json={"email": "mine@evil.org"}), 403, "superadmin_protected"
    )
    assert_problem(await ac.patch(f"{url}/toggle-status"), 403, "superadmin_protected")
    assert_problem(await ac.delete(url), 403, "superadmin_protected")
    # Unlocking too: else an administrator could keep guessing a super-admin's password.
    assert_problem(await ac.post(f"{url}/unlock"), 403, "superadmin_protected")
    assert (await user_row(runtime, superadmin.id)).email == superadmin.email


async def test_concurrent_demotions_keep_one_superadmin(
    admin_client: httpx.AsyncClient, factory: Factory, superadmin: TestUser, runtime: Any
) -> None:
    """Two super-admins deactivating each other at the same moment: at most one succeeds."""
    import asyncio

    second = await factory.user(roles=["superadmin"])
    second_client = await factory.client_for(await factory.login(second))
    first, other = await asyncio.gather(
        admin_client.patch(f"{API}/{second.id}", json={"is_active": False}),
        second_client.patch(f"{API}/{superadmin.id}", json={"is_active": False}),
    )
    statuses = sorted([first.status_code, other.status_code])
    assert statuses[0] == 200 and statuses[1] in (401, 409, 503), (first.text, other.text)
    rows = [await user_row(runtime, superadmin.id), await user_row(runtime, second.id)]
    assert sum(1 for r in rows if r.is_active) == 1


async def test_a_value_taken_concurrently_is_a_409_naming_the_field(
    admin_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the uniqueness check and the write another request may take the username or
    email: the database's unique index refuses it, and the answer still names the field."""
    from app.modules.users.repository import UserRepository

    taken = await factory.user()
    other = await factory.user()

    async def nothing_taken(self: Any, **_: Any) -> set[str]:
        return set()  # as if the check ran before the other transaction committed

    monkeypatch.setattr(UserRepository, "exists", nothing_taken)
    body = {"username": "racer", "email": taken.email, "password": "Vicodin-and-Puzzles-42"}
    problem = assert_problem(await admin_client.post(API, json=body), 409, "user_exists")
    assert [e["field"] for e in problem["errors"]] == ["email"]
    problem = assert_problem(
        await client.post("/api/v1/auth/register", json={**body, "username": taken.username}),
        409,
        "user_exists",
    )
    assert {e["field"] for e in problem["errors"]} <= {"username", "email"}
    assert problem["errors"]
    problem = assert_problem(
        await admin_client.patch(f"{API}/{other.id}", json={"username": taken.username}),
        409,
        "user_exists",
    )
    assert [e["field"] for e in problem["errors"]] == ["username"]
    assert (await admin_client.get(API, params={"q": "racer"})).json()["total"] == 0
