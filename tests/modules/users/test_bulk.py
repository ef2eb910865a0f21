"""POST /users/bulk: per-item results, SAVEPOINT per item, all-or-nothing with atomic."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.factories import Factory, TestUser
from tests.modules.users.helpers import API, assert_problem, audit_rows, role_id, user_row


async def test_bulk_non_atomic_reports_per_item(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    a, b = await factory.user(), await factory.user()
    missing = uuid.uuid4()
    response = await admin_client.post(
        f"{API}/bulk",
        json={"action": "deactivate", "user_ids": [str(a.id), str(missing), str(b.id)]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["succeeded"] == 2 and body["failed"] == 1
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        (str(a.id), "ok"),
        (str(missing), "error"),
        (str(b.id), "ok"),
    ]
    assert body["results"][1]["error"] == "user_not_found"
    assert not (await user_row(runtime, a.id)).is_active
    assert not (await user_row(runtime, b.id)).is_active
    rows = await audit_rows(runtime, action="user.update")
    assert {r.resource_id for r in rows} >= {str(a.id), str(b.id)}
    again = await admin_client.post(
        f"{API}/bulk", json={"action": "activate", "user_ids": [str(a.id), str(b.id)]}
    )
    assert again.json()["succeeded"] == 2
    assert (await user_row(runtime, a.id)).is_active


async def test_bulk_failed_item_leaves_no_trace(
    admin_client: httpx.AsyncClient, factory: Factory, superadmin: TestUser, runtime: Any
) -> None:
    """A failing item's own writes (and audit row) are rolled back with its savepoint."""
    user = await factory.user()
    before = len(await audit_rows(runtime))
    response = await admin_client.post(
        f"{API}/bulk",
        json={"action": "delete", "user_ids": [str(superadmin.id), str(user.id)]},
    )
    assert [r["status"] for r in response.json()["results"]] == ["error", "ok"]
    rows = await audit_rows(runtime)
    assert len(rows) == before + 1
    assert rows[-1].action == "user.delete" and rows[-1].resource_id == str(user.id)
    assert (await user_row(runtime, superadmin.id)).deleted_at is None


async def test_bulk_atomic_all_or_nothing(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    a, b = await factory.user(), await factory.user()
    missing = uuid.uuid4()
    before = len(await audit_rows(runtime))
    response = await admin_client.post(
        f"{API}/bulk",
        json={
            "action": "delete",
            "user_ids": [str(a.id), str(missing), str(b.id)],
            "atomic": True,
        },
    )
    body = assert_problem(response, 409, "bulk_failed")
    assert [r["status"] for r in body["results"]] == ["ok", "error", "ok"]
    assert (await user_row(runtime, a.id)).deleted_at is None
    assert (await user_row(runtime, b.id)).deleted_at is None
    assert len(await audit_rows(runtime)) == before  # audit rows rolled back with the change
    ok = await admin_client.post(
        f"{API}/bulk",
        json={"action": "delete", "user_ids": [str(a.id), str(b.id)], "atomic": True},
    )
    assert ok.status_code == 200 and ok.json()["succeeded"] == 2
    assert (await user_row(runtime, a.id)).deleted_at is not None
    restored = await admin_client.post(
        f"{API}/bulk",
        json={"action": "restore", "user_ids": [str(a.id), str(b.id)], "atomic": True},
    )
    assert restored.json()["succeeded"] == 2
    assert (await user_row(runtime, b.id)).deleted_at is None


async def test_bulk_roles(admin_client: httpx.AsyncClient, factory: Factory, runtime: Any) -> None:
    a, b = await factory.user(), await factory.user()
    admin_role = await role_id(runtime, "admin")
    ids = [str(a.id), str(b.id)]
    assign = await admin_client.post(
        f"{API}/bulk", json={"action": "assign_role", "role_id": str(admin_role), "user_ids": ids}
    )
    assert assign.json()["succeeded"] == 2
    assert (await admin_client.get(f"{API}/{a.id}")).json()["roles"] == ["admin", "user"]
    remove = await admin_client.post(
        f"{API}/bulk",
        json={"action": "remove_role", "role_id": str(admin_role), "user_ids": ids, "atomic": True},
    )
    assert remove.json()["succeeded"] == 2
    assert (await admin_client.get(f"{API}/{b.id}")).json()["roles"] == ["user"]
    assert_problem(
        await admin_client.post(
            f"{API}/bulk",
            json={"action": "assign_role", "role_id": str(uuid.uuid4()), "user_ids": ids},
        ),
        404,
    )


async def test_bulk_validation(admin_client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    ids = [str(user.id)]
    for action in ("assign_role", "remove_role"):
        body = assert_problem(
            await admin_client.post(f"{API}/bulk", json={"action": action, "user_ids": ids}), 422
        )
        # The problem names the missing field, not the whole body.
        assert [e["field"] for e in body["errors"]] == ["role_id"], body
    assert_problem(
        await admin_client.post(f"{API}/bulk", json={"action": "explode", "user_ids": ids}), 422
    )
    assert_problem(
        await admin_client.post(f"{API}/bulk", json={"action": "delete", "user_ids": []}), 422
    )
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    assert_problem(
        await admin_client.post(f"{API}/bulk", json={"action": "delete", "user_ids": too_many}), 422
    )
