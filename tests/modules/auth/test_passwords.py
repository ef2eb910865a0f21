from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.core.clock import FrozenClock
from app.core.passwords import common_passwords, password_problems
from app.modules.audit.models import AuditLog
from tests.factories import DEFAULT_PASSWORD, Factory
from tests.modules.auth.conftest import (
    API,
    MailBox,
    assert_problem,
    bearer,
    login,
    smtp_settings,
    token_from,
)

NEW_PASSWORD = "Granite-Meadow-Falcon-8"


@pytest.fixture
def settings_overrides(mailbox: MailBox) -> dict[str, Any]:
    return smtp_settings(mailbox)


def test_blocklist_holds_the_10000_most_common(runtime: Any) -> None:
    blocklist = common_passwords()
    assert len(blocklist) >= 10_000
    assert {"password", "123456", "qwerty123", "iloveyou"} <= blocklist
    assert all(p == p.lower() for p in blocklist)
    for weak in ("password", "123456", "qwerty123", "Password"):
        assert password_problems(weak, runtime.settings), weak
    assert password_problems(DEFAULT_PASSWORD, runtime.settings) == []


# ---- change password ------------------------------------------------------------------------
async def test_change_password_revokes_other_sessions_only(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    current = (await login(client, user.username, user.password)).json()
    other = (await login(client, user.username, user.password)).json()
    response = await client.post(
        f"{API}/change-password",
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=bearer(current["access_token"]),
    )
    assert response.status_code == 204, response.text
    assert (
        await client.get(f"{API}/sessions", headers=bearer(current["access_token"]))
    ).status_code == 200
    assert_problem(await client.get(f"{API}/sessions", headers=bearer(other["access_token"])), 401)
    assert_problem(
        await client.post(f"{API}/refresh", json={"refresh_token": other["refresh_token"]}), 401
    )
    assert_problem(await login(client, user.username, user.password), 401)
    assert (await login(client, user.username, NEW_PASSWORD)).status_code == 200
    async with runtime.session_factory() as session:
        rows = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action == "auth.password_changed")
            )
        ).all()
        assert len(rows) == 1 and rows[0].actor_id == user.id
        assert NEW_PASSWORD not in str(rows[0].changes) + str(rows[0].details)


async def test_change_password_checks_current_and_policy(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.logged_in()
    wrong = await client.post(
        f"{API}/change-password",
        json={"current_password": "Not-My-Password-1", "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    body = assert_problem(wrong, 400, "invalid_password")
    assert body["errors"][0]["field"] == "current_password"
    weak = await client.post(
        f"{API}/change-password",
        json={"current_password": user.password, "new_password": "qwerty123"},
        headers=user.headers,
    )
    body = assert_problem(weak, 422, "weak_password")
    assert body["errors"][0]["field"] == "new_password"
    # nothing changed
    assert (await login(client, user.username, user.password)).status_code == 200


# ---- forgot / reset -------------------------------------------------------------------------
async def test_forgot_password_is_enumeration_safe(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox
) -> None:
    user = await factory.user()
    known = await client.post(f"{API}/forgot-password", json={"email": user.email.upper()})
    unknown = await client.post(f"{API}/forgot-password", json={"email": "nobody@example.com"})
    not_an_email = await client.post(f"{API}/forgot-password", json={"email": user.username})
    for response in (known, unknown, not_an_email):
        assert response.status_code == 202
    assert known.json() == unknown.json() == not_an_email.json()
    message = await mailbox.next()
    assert message["To"] == user.email
    assert mailbox.pending() == 0


async def test_reset_password_end_to_end(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox, runtime: Any
) -> None:
    user = await factory.user()
    old = (await login(client, user.username, user.password)).json()
    assert (
        await client.post(f"{API}/forgot-password", json={"email": user.email})
    ).status_code == 202
    message = await mailbox.next()
    assert message["To"] == user.email and "reset" in message["Subject"].lower()
    token = token_from(message, "Reset token")

    weak = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": "password"}
    )
    assert_problem(weak, 422, "weak_password")

    response = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.text
    # Single use: the token was bound to the old password hash.
    again = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": "Another-Secret-Value-3"}
    )
    assert_problem(again, 400, "invalid_token")
    # All sessions revoked; the new password works, the old one no longer.
    assert_problem(await client.get(f"{API}/sessions", headers=bearer(old["access_token"])), 401)
    assert_problem(await login(client, user.username, user.password), 401)
    assert (await login(client, user.username, NEW_PASSWORD)).status_code == 200
    async with runtime.session_factory() as session:
        rows = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.password_reset"))
        ).all()
        assert len(rows) == 1 and rows[0].resource_id == str(user.id)


async def test_reset_token_is_short_lived(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox, runtime: Any, clock: FrozenClock
) -> None:
    user = await factory.user()
    await client.post(f"{API}/forgot-password", json={"email": user.email})
    token = token_from(await mailbox.next(), "Reset token")
    # Tokens are signed with the frozen clock's time; re-sign "now" minus the lifetime to expire.
    payload = runtime.tokens.decode_purpose_token("password_reset", token)
    expired = runtime.tokens.create_purpose_token(
        "password_reset",
        payload["sub"],
        clock.now() - timedelta(minutes=runtime.settings.RESET_TOKEN_EXPIRE_MINUTES + 1),
        timedelta(minutes=runtime.settings.RESET_TOKEN_EXPIRE_MINUTES),
        fp=payload["fp"],
    )
    response = await client.post(
        f"{API}/reset-password", json={"token": expired, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400, "invalid_token")


async def test_reset_token_dies_when_password_changes_otherwise(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox
) -> None:
    user = await factory.logged_in()
    await client.post(f"{API}/forgot-password", json={"email": user.email})
    token = token_from(await mailbox.next(), "Reset token")
    changed = await client.post(
        f"{API}/change-password",
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert changed.status_code == 204
    response = await client.post(
        f"{API}/reset-password", json={"token": token, "new_password": "Another-Secret-Value-3"}
    )
    assert_problem(response, 400, "invalid_token")


async def test_reset_rejects_garbage_and_other_purpose_tokens(
    client: httpx.AsyncClient, factory: Factory, runtime: Any, clock: FrozenClock
) -> None:
    user = await factory.user()
    assert_problem(
        await client.post(
            f"{API}/reset-password", json={"token": "garbage", "new_password": NEW_PASSWORD}
        ),
        400,
        "invalid_token",
    )
    verify = runtime.tokens.create_purpose_token(
        "verify_email", str(user.id), clock.now(), timedelta(hours=1), email=user.email
    )
    assert_problem(
        await client.post(
            f"{API}/reset-password", json={"token": verify, "new_password": NEW_PASSWORD}
        ),
        400,
        "invalid_token",
    )
