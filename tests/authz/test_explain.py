"""The engine's endpoints: /authz/me, /authz/explain (every grant path, every denial reason),
/authz/check, and `gatehouse explain` on the command line."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from tests.factories import Factory
from tests.modules.rbac.conftest import API, Rbac

EXPLAIN = f"{API}/authz/explain"


@pytest.fixture
async def rbac(app: Any, factory: Factory, admin_client: httpx.AsyncClient) -> Rbac:
    return Rbac(app, factory, admin_client)


async def _explain(client: httpx.AsyncClient, user_id: Any, permission: str) -> dict[str, Any]:
    response = await client.get(EXPLAIN, params={"user_id": str(user_id), "permission": permission})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_me_for_guest_and_user(client: httpx.AsyncClient, rbac: Rbac) -> None:
    guest = await rbac.me(client)
    assert guest["is_guest"] is True and guest["user_id"] is None
    assert guest["username"] == "guest" and guest["direct_roles"] == ["guest"]
    assert "profile:read" not in guest["permissions"]
    user, user_client = await rbac.client("user")
    me = await rbac.me(user_client)
    assert me["is_guest"] is False and me["user_id"] == str(user.id)
    assert me["roles"] == ["user"] and me["groups"] == []
    assert me["permissions"] == ["profile:read", "profile:update"]


async def test_explain_requires_permission(client: httpx.AsyncClient, rbac: Rbac) -> None:
    user, plain = await rbac.client("user")
    params = {"user_id": str(user.id), "permission": "profile:read"}
    assert (await client.get(EXPLAIN, params=params)).status_code == 401
    assert (await plain.get(EXPLAIN, params=params)).status_code == 403
    body = {"user_id": str(user.id), "permissions": ["profile:read"]}
    assert (await plain.post(f"{API}/authz/check", json=body)).status_code == 403
    _, admin = await rbac.client("admin")
    assert (await admin.get(EXPLAIN, params=params)).status_code == 200


async def test_explain_direct_group_inheritance_wildcard(
    admin_client: httpx.AsyncClient, rbac: Rbac
) -> None:
    await rbac.role("staff_e", ["ward:read"])
    await rbac.role("nurse_e", ["chart:read"], parents=["staff_e"])
    await rbac.role("chart_all", ["chart:*"])
    user, _ = await rbac.client("nurse_e")
    await rbac.group("ward_team", roles=["nurse_e", "chart_all"], members=[user])

    direct = await _explain(admin_client, user.id, "chart:read")
    assert direct["allowed"] is True and direct["reasons"] == []
    paths = {p["path"] for p in direct["grants"]}
    assert f"user {user.username} -> role nurse_e -> permission chart:read" in paths
    assert (
        f"user {user.username} -> group ward_team -> role nurse_e -> permission chart:read" in paths
    )
    assert (
        f"user {user.username} -> group ward_team -> role chart_all -> permission chart:*"
        " (wildcard)" in paths
    )
    wildcard = next(p for p in direct["grants"] if p["wildcard"])
    assert wildcard["via"] == "group" and wildcard["group"] == "ward_team"

    inherited = await _explain(admin_client, user.id, "ward:read")
    assert inherited["allowed"] is True
    assert (
        f"user {user.username} -> role nurse_e -> inherited role staff_e -> permission ward:read"
        in {p["path"] for p in inherited["grants"]}
    )
    assert inherited["grants"][0]["roles"] == ["nurse_e", "staff_e"]

    superadmin = await rbac.factory.existing("superadmin", "x")
    everything = await _explain(admin_client, superadmin.id, "patient:delete")
    assert everything["allowed"] is True
    assert everything["grants"][0]["permission"] == "*:*" and everything["grants"][0]["wildcard"]


async def test_explain_denial_reasons(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    await rbac.role("base_x", ["lab:read"])
    await rbac.role("top_x", parents=["base_x"])
    user, _ = await rbac.client("top_x")
    gid = await rbac.group("lab_team", roles=["base_x"], members=[user])

    # not assigned
    nothing = await _explain(admin_client, user.id, "patient:delete")
    assert nothing["allowed"] is False and nothing["grants"] == []
    assert [r["reason"] for r in nothing["reasons"]] == ["not_assigned"]
    unknown = await _explain(admin_client, user.id, "nothing:here")
    assert {r["reason"] for r in unknown["reasons"]} == {"not_assigned", "unknown_permission"}

    # permission inactive
    pid = await rbac.permission_id("lab:read")
    await admin_client.patch(f"{API}/permissions/{pid}/toggle-status")
    inactive_perm = await _explain(admin_client, user.id, "lab:read")
    assert inactive_perm["allowed"] is False
    assert {"reason": "permission_inactive", "name": "lab:read"} in inactive_perm["blocked"][0][
        "blocked_by"
    ]
    assert [r["reason"] for r in inactive_perm["reasons"]] == ["permission_inactive"]
    await admin_client.patch(f"{API}/permissions/{pid}/toggle-status")

    # role inactive (inherited one blocks both paths)
    base = await rbac.role_id("base_x")
    await admin_client.patch(f"{API}/roles/{base}/toggle-status")
    inactive_role = await _explain(admin_client, user.id, "lab:read")
    assert inactive_role["allowed"] is False and len(inactive_role["blocked"]) == 2
    assert inactive_role["reasons"] == [
        {"reason": "role_inactive", "message": "role base_x is inactive"}
    ]
    await admin_client.patch(f"{API}/roles/{base}/toggle-status")

    # group inactive: the direct path still grants
    await admin_client.put(f"{API}/groups/{gid}", json={"is_active": False})
    partly = await _explain(admin_client, user.id, "lab:read")
    assert partly["allowed"] is True and len(partly["grants"]) == 1
    assert partly["blocked"][0]["blocked_by"] == [{"reason": "group_inactive", "name": "lab_team"}]
    top = await rbac.role_id("top_x")
    await admin_client.patch(f"{API}/roles/{top}/toggle-status")
    none_left = await _explain(admin_client, user.id, "lab:read")
    assert {r["reason"] for r in none_left["reasons"]} == {"group_inactive", "role_inactive"}

    # user inactive
    inactive_user = await rbac.factory.user(roles=["admin"], is_active=False)
    result = await _explain(admin_client, inactive_user.id, "user:read")
    assert result["allowed"] is False and result["grants"]
    assert result["reasons"][0]["reason"] == "user_inactive"


async def test_explain_validation(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    user = await rbac.factory.user()
    bad = await admin_client.get(EXPLAIN, params={"user_id": str(user.id), "permission": "nope"})
    assert bad.status_code == 422
    missing = "0190a0a0-0000-7000-8000-000000000000"
    assert (
        await admin_client.get(EXPLAIN, params={"user_id": missing, "permission": "a:b"})
    ).status_code == 404


async def test_check(admin_client: httpx.AsyncClient, rbac: Rbac) -> None:
    await rbac.role("reader_c", ["*:read"])
    user = await rbac.factory.user(roles=["reader_c", "user"])
    response = await admin_client.post(
        f"{API}/authz/check",
        json={
            "user_id": str(user.id),
            "permissions": ["patient:read", "patient:update", "profile:update", "role:read"],
        },
    )
    assert response.status_code == 200
    assert response.json()["decisions"] == [
        {"permission": "patient:read", "allowed": True},
        {"permission": "patient:update", "allowed": False},
        {"permission": "profile:update", "allowed": True},
        {"permission": "role:read", "allowed": True},
    ]
    bad = await admin_client.post(
        f"{API}/authz/check", json={"user_id": str(user.id), "permissions": ["bad"]}
    )
    assert bad.status_code == 422
    missing = "0190a0a0-0000-7000-8000-000000000000"
    gone = await admin_client.post(
        f"{API}/authz/check", json={"user_id": missing, "permissions": ["a:b"]}
    )
    assert gone.status_code == 404


async def test_cli_explain(admin_client: httpx.AsyncClient, rbac: Rbac, settings: Settings) -> None:
    await rbac.role("cli_role", ["cli:run"])
    user, _ = await rbac.client("cli_role")
    await rbac.group("cli_group", roles=["cli_role"], members=[user])
    runner = CliRunner()
    env = {
        "DATABASE_URL": settings.DATABASE_URL,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "s" * 48,
        "REDIS_URL": "",
    }

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["explain", *args], env=env)

    allowed = await asyncio.to_thread(invoke, user.username, "cli:run")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.startswith(f"ALLOWED: {user.username} -> cli:run")
    assert f"user {user.username} -> role cli_role -> permission cli:run" in allowed.output
    assert f"user {user.username} -> group cli_group -> role cli_role" in allowed.output

    denied = await asyncio.to_thread(invoke, str(user.id), "patient:read")
    assert denied.exit_code == 1
    assert denied.output.startswith("DENIED") and "not_assigned" in denied.output

    as_json = await asyncio.to_thread(invoke, user.username, "cli:run", "--json")
    assert as_json.exit_code == 0
    assert orjson.loads(as_json.output)["allowed"] is True

    assert (await asyncio.to_thread(invoke, "nobody_here", "cli:run")).exit_code == 2
    assert (await asyncio.to_thread(invoke, user.username, "bad")).exit_code == 2
