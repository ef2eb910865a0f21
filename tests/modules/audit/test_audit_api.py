"""GET /audit-logs: filters, pagination, permission, read-only; audit rows share the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.modules.audit.service import AuditService
from tests.factories import Factory, TestUser
from tests.modules.users.helpers import assert_problem, audit_rows, make_role

AUDIT = "/api/v1/audit-logs"
USERS = "/api/v1/users"


async def test_audit_requires_audit_read(client: httpx.AsyncClient, factory: Factory) -> None:
    assert_problem(await client.get(AUDIT), 401)
    plain = await factory.client_for(await factory.logged_in())
    body = assert_problem(await plain.get(AUDIT), 403, "permission_denied")
    assert body["missing_permissions"] == ["audit:read"]
    admin = await factory.client_for(await factory.logged_in(roles=["admin"]))
    assert (await admin.get(AUDIT)).status_code == 200


async def test_audit_filters_and_order(
    admin_client: httpx.AsyncClient, factory: Factory, superadmin: TestUser
) -> None:
    user = await factory.user()
    other = await factory.user()
    await admin_client.patch(f"{USERS}/{user.id}", json={"nickname": "first"})
    await admin_client.patch(f"{USERS}/{user.id}", json={"nickname": "second"})
    await admin_client.patch(f"{USERS}/{other.id}/toggle-status")

    def items(response: httpx.Response) -> list[dict[str, Any]]:
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["items"]
        return result

    mine = items(
        await admin_client.get(AUDIT, params={"resource_type": "user", "resource_id": str(user.id)})
    )
    assert [e["changes"]["nickname"]["after"] for e in mine] == ["second", "first"]  # newest first
    assert all(e["actor_id"] == str(superadmin.id) for e in mine)
    assert mine[0]["actor_username"] == "superadmin"
    assert mine[0]["ip"] == "203.0.113.20" and mine[0]["request_id"]
    by_actor = items(
        await admin_client.get(
            AUDIT, params={"actor_id": str(superadmin.id), "action": "user.update"}
        )
    )
    assert len(by_actor) == 3
    assert items(await admin_client.get(AUDIT, params={"outcome": "denied"})) == []
    now = datetime.now(UTC)
    since = items(
        await admin_client.get(
            AUDIT,
            params={"since": (now - timedelta(minutes=5)).isoformat(), "action": "user.update"},
        )
    )
    assert len(since) == 3
    until = items(
        await admin_client.get(
            AUDIT, params={"until": (now - timedelta(days=1)).isoformat(), "action": "user.update"}
        )
    )
    assert until == []
    page = await admin_client.get(AUDIT, params={"action": "user.update", "limit": 1, "offset": 1})
    assert page.json()["total"] == 3 and len(page.json()["items"]) == 1
    assert_problem(await admin_client.get(AUDIT, params={"limit": 101}), 422)
    assert_problem(await admin_client.get(AUDIT, params={"since": "yesterday"}), 422)
    assert_problem(await admin_client.get(AUDIT, params={"outcome": "maybe"}), 422)
    bad_range = {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}
    assert_problem(await admin_client.get(AUDIT, params=bad_range), 422)
    one = await admin_client.get(f"{AUDIT}/{mine[0]['id']}")
    assert one.status_code == 200 and one.json() == mine[0]
    assert_problem(await admin_client.get(f"{AUDIT}/{uuid.uuid4()}"), 404)


async def test_audit_records_cannot_be_changed(
    admin_client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    await admin_client.patch(f"{USERS}/{user.id}", json={"nickname": "x"})
    entry = (await admin_client.get(AUDIT)).json()["items"][0]
    for method in ("PUT", "PATCH", "DELETE"):
        for url in (AUDIT, f"{AUDIT}/{entry['id']}"):
            response = await admin_client.request(method, url, json={"action": "forged"})
            assert_problem(response, 405, "method_not_allowed")
    assert_problem(await admin_client.post(AUDIT, json={"action": "forged"}), 405)
    assert (await admin_client.get(f"{AUDIT}/{entry['id']}")).json() == entry


async def test_password_hash_never_in_audit(admin_client: httpx.AsyncClient, runtime: Any) -> None:
    response = await admin_client.post(
        USERS,
        json={
            "username": "secretive",
            "email": "secretive@example.com",
            "password": "Hidden-Pass-99x",
        },
    )
    assert response.status_code == 201
    for row in await audit_rows(runtime):
        text = str(row.changes) + str(row.details)
        assert "Hidden-Pass-99x" not in text and "argon2" not in text
        assert "password_hash" not in (row.changes or {})


async def test_audit_row_shares_the_transaction(runtime: Any) -> None:
    """Rolled back with the change it describes; committed with it."""
    before = len(await audit_rows(runtime))
    async with runtime.session_factory() as session:
        AuditService(session).record("test.rolled_back", "thing", uuid.uuid4())
        await session.flush()
        await session.rollback()
    assert len(await audit_rows(runtime)) == before
    async with runtime.session_factory() as session:
        AuditService(session).record("test.committed", "thing", "x")
        await session.commit()
    assert [r.action for r in await audit_rows(runtime, resource_type="thing")] == [
        "test.committed"
    ]


async def test_failed_request_leaves_no_audit_row(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    """A request that fails after writing leaves neither its change nor its audit row."""
    user = await factory.user()
    other = await factory.user()
    before = len(await audit_rows(runtime))
    # the first item is written (and audited) in its savepoint, the second fails: atomic
    response = await admin_client.post(
        f"{USERS}/bulk",
        json={
            "action": "deactivate",
            "user_ids": [str(user.id), str(uuid.uuid4())],
            "atomic": True,
        },
    )
    assert response.status_code == 409
    assert len(await audit_rows(runtime)) == before
    assert (await admin_client.get(f"{USERS}/{user.id}")).json()["is_active"] is True
    assert (await admin_client.get(f"{USERS}/{other.id}")).status_code == 200


async def test_denied_refusals_are_listed(factory: Factory, runtime: Any) -> None:
    await make_role(runtime, "auditing_manager", ["user:*", "audit:read"])
    manager = await factory.client_for(await factory.logged_in(roles=["auditing_manager"]))
    target = await factory.user()
    async with runtime.session_factory() as session:
        from sqlalchemy import select

        from app.authz.models import Role

        sa = await session.scalar(select(Role.id).where(Role.name == "superadmin"))
    assert_problem(await manager.post(f"{USERS}/{target.id}/roles/{sa}"), 403, "delegation_denied")
    denied = (await manager.get(AUDIT, params={"outcome": "denied"})).json()
    assert denied["total"] == 1
    assert denied["items"][0]["details"]["exceeding_permissions"]


async def test_nul_in_text_filters_is_a_422_naming_the_parameter(
    admin_client: httpx.AsyncClient,
) -> None:
    # PostgreSQL cannot compare text holding NUL: refused up front on every backend.
    for param in ("action", "resource_type", "resource_id"):
        body = assert_problem(await admin_client.get(AUDIT, params={param: "a\x00b"}), 422)
        assert [e["field"] for e in body["errors"]] == [param], body


async def test_since_until_outside_the_utc_range_is_a_422_naming_the_parameter(
    admin_client: httpx.AsyncClient,
) -> None:
    # Valid ISO datetimes whose UTC instant lies outside datetime's range (found by fuzzing):
    # converting them for the query raised OverflowError, a 500.
    for param, value in (
        ("since", "0001-01-01T00:00:00+01:00"),
        ("until", "9999-12-31T23:59:59-01:00"),
    ):
        body = assert_problem(await admin_client.get(AUDIT, params={param: value}), 422)
        assert [e["field"] for e in body["errors"]] == [param], body
    # The very edges themselves are fine, and offsets still count.
    response = await admin_client.get(
        AUDIT, params={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59+00:00"}
    )
    assert response.status_code == 200, response.text
