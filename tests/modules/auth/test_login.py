from __future__ import annotations

from typing import Any

import httpx
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import select

from app.modules.audit.models import AuditLog
from app.modules.auth.models import AuthSession
from app.modules.users.models import User
from tests.factories import Factory
from tests.modules.auth.conftest import API, assert_problem, bearer, comparable, login


async def test_login_by_username_returns_token_pair(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    response = await login(client, user.username, user.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == runtime.settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    assert body["access_token"] and body["refresh_token"]
    assert "no-store" in response.headers["cache-control"]
    claims = runtime.tokens.decode_access_token(body["access_token"])
    assert claims.user_id == user.id
    me = await client.get(f"{API}/sessions", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert [s["current"] for s in me.json()] == [True]
    assert me.json()[0]["ip"] == "203.0.113.10"


async def test_login_by_email_case_insensitive(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user(username="Ward.Nurse", email="Ward.Nurse@Example.com")
    for name in ("WARD.NURSE", "ward.nurse", "Ward.Nurse@EXAMPLE.com", "ward.nurse@example.com"):
        response = await login(client, name, user.password)
        assert response.status_code == 200, (name, response.text)


async def test_oauth2_password_form(client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    response = await client.post(
        f"{API}/login",
        data={"grant_type": "password", "username": user.username, "password": user.password},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    wrong = await client.post(
        f"{API}/login", data={"username": user.username, "password": "Wrong-Password-1"}
    )
    assert_problem(wrong, 401, "invalid_credentials")


async def test_openapi_declares_oauth2_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    flows = [s["flows"]["password"] for s in schemes.values() if s.get("type") == "oauth2"]
    assert flows and flows[0]["tokenUrl"] == "/api/v1/auth/login"
    login_body = schema["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(login_body)


async def test_unknown_user_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    wrong = await login(client, user.username, "Not-The-Password-7")
    unknown = await login(client, "nobody-here", "Not-The-Password-7")
    unknown_email = await login(client, "nobody@example.com", "Not-The-Password-7")
    bodies = [
        assert_problem(r, 401, "invalid_credentials") for r in (wrong, unknown, unknown_email)
    ]
    assert comparable(bodies[0]) == comparable(bodies[1]) == comparable(bodies[2])
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_unknown_user_verifies_a_dummy_hash(
    client: httpx.AsyncClient, runtime: Any, monkeypatch: Any
) -> None:
    calls: list[str | None] = []
    original = runtime.hasher.verify_and_update

    async def spy(password: str, hashed: str | None) -> Any:
        calls.append(hashed)
        return await original(password, hashed)

    monkeypatch.setattr(runtime.hasher, "verify_and_update", spy)
    assert_problem(await login(client, "ghost", "Whatever-Pass-1"), 401)
    assert calls == [None]  # the hasher verifies its dummy hash when given None


async def test_failed_login_audit_rows_persist(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    assert_problem(await login(client, user.username, "Wrong-Password-1"), 401)
    assert_problem(await login(client, "ghost-user", "Wrong-Password-1"), 401)
    async with runtime.session_factory() as session:
        rows = (
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.action == "auth.login_failed")
                .order_by(AuditLog.created_at)
            )
        ).all()
        assert [r.outcome for r in rows] == ["failure", "failure"]
        assert rows[0].resource_id == str(user.id)
        assert rows[0].ip == "203.0.113.10"
        assert "Wrong-Password-1" not in str(rows[0].details)
        assert rows[1].resource_id is None
        db_user = await session.get(User, user.id)
        assert db_user is not None and db_user.failed_login_count == 1
    ok = await login(client, user.username, user.password)
    assert ok.status_code == 200
    async with runtime.session_factory() as session:
        success = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.login"))
        ).all()
        assert len(success) == 1 and success[0].actor_id == user.id


async def test_inactive_user_gets_the_generic_error(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user(is_active=False)
    inactive = await login(client, user.username, user.password)
    unknown = await login(client, "ghost-user", user.password)
    assert comparable(assert_problem(inactive, 401, "invalid_credentials")) == comparable(
        assert_problem(unknown, 401)
    )


async def test_deleted_user_cannot_log_in(
    client: httpx.AsyncClient, factory: Factory, runtime: Any, clock: Any
) -> None:
    user = await factory.user()
    async with runtime.session_factory() as session:
        db_user = await session.get(User, user.id)
        assert db_user is not None
        db_user.deleted_at = clock.now()
        await session.commit()
    assert_problem(await login(client, user.username, user.password), 401, "invalid_credentials")


async def test_bcrypt_hash_is_upgraded_on_login(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    async with runtime.session_factory() as session:
        db_user = await session.get(User, user.id)
        assert db_user is not None
        db_user.password_hash = BcryptHasher(rounds=4).hash(user.password)
        await session.commit()
    assert (await login(client, user.username, user.password)).status_code == 200
    async with runtime.session_factory() as session:
        db_user = await session.get(User, user.id)
        assert db_user is not None and db_user.password_hash is not None
        assert db_user.password_hash.startswith("$argon2id$")
    # and the upgraded hash still verifies
    assert (await login(client, user.username, user.password)).status_code == 200


async def test_login_records_session_with_user_agent(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    response = await login(
        client, user.username, user.password, headers={"User-Agent": "ward-pc/1.0"}
    )
    assert response.status_code == 200
    async with runtime.session_factory() as session:
        rows = (
            await session.scalars(select(AuthSession).where(AuthSession.user_id == user.id))
        ).all()
        assert len(rows) == 1
        assert rows[0].user_agent == "ward-pc/1.0" and rows[0].ip == "203.0.113.10"
        assert rows[0].revoked_at is None


async def test_login_validation_errors(client: httpx.AsyncClient) -> None:
    assert_problem(
        await client.post(f"{API}/login", json={"username": "x"}), 422, "validation_error"
    )
    assert_problem(
        await client.post(
            f"{API}/login", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    assert_problem(
        await client.post(
            f"{API}/login",
            data={"grant_type": "client_credentials", "username": "a", "password": "b"},
        ),
        400,
        "unsupported_grant_type",
    )


async def test_overlong_password_is_refused_without_hashing(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    response = await login(client, user.username, "x" * 1000)
    assert_problem(response, 401, "invalid_credentials")
