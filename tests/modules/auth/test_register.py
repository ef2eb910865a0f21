from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.authz.models import Role, UserRole
from app.modules.audit.models import AuditLog
from app.modules.users.models import User
from tests.modules.auth.conftest import API, assert_problem, login

PASSWORD = "Plum-Orchard-Lantern-4"


def payload(**extra: Any) -> dict[str, Any]:
    return {"username": "NewNurse", "email": "New.Nurse@Example.com", "password": PASSWORD, **extra}


async def test_register_creates_user_with_default_role(
    client: httpx.AsyncClient, runtime: Any
) -> None:
    response = await client.post(f"{API}/register", json=payload(full_name="New Nurse"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "newnurse"
    assert body["email"] == "new.nurse@example.com"
    assert body["full_name"] == "New Nurse"
    assert body["is_active"] is True and body["is_verified"] is False
    assert "password" not in body and "password_hash" not in body
    async with runtime.session_factory() as session:
        roles = (
            await session.scalars(
                select(Role.name)
                .join(UserRole, UserRole.role_id == Role.id)
                .where(UserRole.user_id == uuid.UUID(body["id"]))
            )
        ).all()
        assert list(roles) == ["user"]
        audit = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.register"))
        ).all()
        assert len(audit) == 1 and audit[0].resource_id == body["id"]
        assert "password" not in str(audit[0].changes) or "[redacted]" in str(audit[0].changes)
    # and the new account can log in
    assert (await login(client, "newnurse", PASSWORD)).status_code == 200


async def test_mass_assignment_is_ignored(client: httpx.AsyncClient, runtime: Any) -> None:
    response = await client.post(
        f"{API}/register",
        json=payload(
            is_superuser=True,
            roles=["superadmin"],
            is_active=False,
            is_verified=True,
            id="00000000-0000-0000-0000-000000000001",
            failed_login_count=-100,
            password_hash="$argon2id$forged",
        ),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["is_active"] is True and body["is_verified"] is False
    assert body["id"] != "00000000-0000-0000-0000-000000000001"
    async with runtime.session_factory() as session:
        user = await session.scalar(select(User).where(User.username == "newnurse"))
        assert user is not None
        assert user.password_hash and user.password_hash.startswith("$argon2id$")
        assert user.password_hash != "$argon2id$forged"
        assert user.failed_login_count == 0
        roles = (
            await session.scalars(
                select(Role.name)
                .join(UserRole, UserRole.role_id == Role.id)
                .where(UserRole.user_id == user.id)
            )
        ).all()
        assert list(roles) == ["user"]


@pytest.mark.parametrize("password", ["password", "123456", "qwerty123", "QWERTY123", "short"])
async def test_weak_passwords_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(f"{API}/register", json=payload(password=password))
    body = assert_problem(response, 422)
    assert any(e["field"] == "password" for e in body["errors"])


async def test_password_containing_username_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/register", json=payload(password="xx-newnurse-2024-zz"))
    assert_problem(response, 422)


async def test_duplicate_username_or_email_conflicts(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/register", json=payload())).status_code == 201
    again = await client.post(f"{API}/register", json=payload(email="other@example.com"))
    assert_problem(again, 409)
    again = await client.post(f"{API}/register", json=payload(username="other"))
    assert_problem(again, 409)


async def test_invalid_fields_are_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/register", json={"username": "a b", "email": "not-an-email", "password": PASSWORD}
    )
    body = assert_problem(response, 422, "validation_error")
    assert {e["field"] for e in body["errors"]} >= {"username", "email"}
    assert PASSWORD not in response.text


class TestRegistrationDisabled:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"USER_REGISTRATION_ENABLED": False}

    async def test_register_forbidden(self, client: httpx.AsyncClient, runtime: Any) -> None:
        response = await client.post(f"{API}/register", json=payload())
        assert_problem(response, 403, "registration_disabled")
        async with runtime.session_factory() as session:
            assert await session.scalar(select(User).where(User.username == "newnurse")) is None
