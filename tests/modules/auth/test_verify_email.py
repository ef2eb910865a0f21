from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.modules.audit.models import AuditLog
from tests.factories import Factory
from tests.modules.auth.conftest import (
    API,
    MailBox,
    assert_problem,
    bearer,
    login,
    smtp_settings,
    token_from,
)

PASSWORD = "Plum-Orchard-Lantern-4"


@pytest.fixture
def settings_overrides(mailbox: MailBox) -> dict[str, Any]:
    return {**smtp_settings(mailbox), "EMAIL_VALIDATION_ENABLED": True}


async def test_registration_sends_verification_and_login_waits_for_it(
    client: httpx.AsyncClient, mailbox: MailBox, runtime: Any
) -> None:
    response = await client.post(
        f"{API}/register",
        json={"username": "fresh", "email": "fresh@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    message = await mailbox.next()
    assert message["To"] == "fresh@example.com"
    token = token_from(message, "Verification token")

    blocked = await login(client, "fresh", PASSWORD)
    assert_problem(blocked, 403, "email_not_verified")
    # A wrong password still gets the generic answer (no hint that the account exists).
    assert_problem(await login(client, "fresh", "Wrong-Password-1"), 401, "invalid_credentials")

    verified = await client.post(f"{API}/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True
    assert (await login(client, "fresh", PASSWORD)).status_code == 200
    # Single use: already verified.
    assert_problem(
        await client.post(f"{API}/verify-email", json={"token": token}), 400, "invalid_token"
    )
    async with runtime.session_factory() as session:
        rows = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.email_verified"))
        ).all()
        assert len(rows) == 1


async def test_request_verify_email_for_logged_in_user(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox, runtime: Any
) -> None:
    # Unverified users cannot log in here, so mint a session through a verified login first.
    user = await factory.user(is_verified=True)
    tokens = (await login(client, user.username, user.password)).json()
    already = await client.post(
        f"{API}/request-verify-email", headers=bearer(tokens["access_token"])
    )
    assert_problem(already, 400, "already_verified")
    assert_problem(await client.post(f"{API}/request-verify-email"), 401)


class TestWithoutEnforcement:
    @pytest.fixture
    def settings_overrides(self, mailbox: MailBox) -> dict[str, Any]:
        return smtp_settings(mailbox)

    async def test_verify_flow_for_logged_in_user(
        self, client: httpx.AsyncClient, factory: Factory, mailbox: MailBox
    ) -> None:
        user = await factory.user(is_verified=False)
        tokens = (await login(client, user.username, user.password)).json()
        assert mailbox.pending() == 0  # no mail at login or registration when not enforced
        response = await client.post(
            f"{API}/request-verify-email", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 202
        message = await mailbox.next()
        assert message["To"] == user.email
        token = token_from(message, "Verification token")
        verified = await client.post(f"{API}/verify-email", json={"token": token})
        assert verified.status_code == 200 and verified.json()["is_verified"] is True

    async def test_token_bound_to_the_email(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Any, clock: Any
    ) -> None:
        from datetime import timedelta

        from app.modules.users.models import User

        user = await factory.user(is_verified=False)
        token = runtime.tokens.create_purpose_token(
            "verify_email", str(user.id), clock.now(), timedelta(hours=1), email=user.email
        )
        async with runtime.session_factory() as session:
            row = await session.get(User, user.id)
            assert row is not None
            row.email = "changed@example.com"
            await session.commit()
        response = await client.post(f"{API}/verify-email", json={"token": token})
        assert_problem(response, 400, "invalid_token")


async def test_guest_can_ask_for_a_new_link_enumeration_safe(
    client: httpx.AsyncClient, factory: Factory, mailbox: MailBox
) -> None:
    user = await factory.user(is_verified=False)
    known = await client.post(f"{API}/request-verify-email", json={"email": user.email.upper()})
    unknown = await client.post(f"{API}/request-verify-email", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    token = token_from(await mailbox.next(), "Verification token")
    assert mailbox.pending() == 0
    assert (await client.post(f"{API}/verify-email", json={"token": token})).status_code == 200
    assert (await login(client, user.username, user.password)).status_code == 200
