from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.core.clock import FrozenClock
from app.modules.audit.models import AuditLog
from app.modules.users.models import User
from tests import factories
from tests.factories import Factory
from tests.modules.auth.conftest import assert_problem, comparable, login

WRONG = "Wrong-Password-0"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"LOCKOUT_THRESHOLD": 5, "LOCKOUT_MINUTES": 15, "LOCKOUT_MAX_MINUTES": 45}


async def fail(client: httpx.AsyncClient, user: factories.TestUser, times: int) -> None:
    for _ in range(times):
        assert_problem(await login(client, user.username, WRONG), 401, "invalid_credentials")


async def db_user(runtime: Any, user: factories.TestUser) -> User:
    async with runtime.session_factory() as session:
        row = await session.get(User, user.id)
        assert row is not None
        return row


async def test_five_failures_lock_the_account(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, runtime: Any
) -> None:
    user = await factory.user()
    await fail(client, user, 4)
    assert (await db_user(runtime, user)).locked_until is None
    await fail(client, user, 1)
    locked = await db_user(runtime, user)
    assert locked.locked_until is not None
    assert abs((locked.locked_until - clock.now()).total_seconds() - 15 * 60) < 1

    # Even the right password gets the same generic error while locked.
    right = await login(client, user.username, user.password)
    wrong = await login(client, user.username, WRONG)
    assert comparable(assert_problem(right, 401, "invalid_credentials")) == comparable(
        assert_problem(wrong, 401)
    )
    async with runtime.session_factory() as session:
        lockouts = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.lockout"))
        ).all()
        assert len(lockouts) == 1 and lockouts[0].resource_id == str(user.id)


async def test_failures_while_locked_do_not_extend_the_lock(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, runtime: Any
) -> None:
    user = await factory.user()
    await fail(client, user, 5)
    until = (await db_user(runtime, user)).locked_until
    clock.advance(minutes=10)
    await fail(client, user, 10)
    assert (await db_user(runtime, user)).locked_until == until
    clock.advance(minutes=4)
    assert_problem(await login(client, user.username, user.password), 401)
    clock.advance(minutes=1, seconds=1)  # 15 minutes after the lock
    assert (await login(client, user.username, user.password)).status_code == 200


async def test_lock_grows_on_repeat_and_is_capped(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, runtime: Any
) -> None:
    user = await factory.user()
    durations = []
    for _ in range(3):
        await fail(client, user, 5)
        row = await db_user(runtime, user)
        assert row.locked_until is not None
        durations.append(round((row.locked_until - clock.now()).total_seconds() / 60))
        clock.set(row.locked_until)
        clock.advance(seconds=1)
    assert durations == [15, 30, 45]  # doubled, then capped by LOCKOUT_MAX_MINUTES


async def test_success_resets_the_count(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user()
    await fail(client, user, 4)
    assert (await db_user(runtime, user)).failed_login_count == 4
    assert (await login(client, user.username, user.password)).status_code == 200
    assert (await db_user(runtime, user)).failed_login_count == 0
    await fail(client, user, 4)  # four more are not enough: the count started again
    assert (await db_user(runtime, user)).locked_until is None
    assert (await login(client, user.username, user.password)).status_code == 200


async def test_admin_reset_of_counters_unlocks(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    """What the users module's unlock endpoint does (reset the counters) is honoured by login."""
    user = await factory.user()
    await fail(client, user, 5)
    async with runtime.session_factory() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.locked_until = None
        row.failed_login_count = 0
        await session.commit()
    assert (await login(client, user.username, user.password)).status_code == 200


async def test_parallel_failures_all_count(
    client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    """Wrong passwords sent at once are counted in the database, not read-modify-written:
    eight parallel guesses against a threshold of five lock the account, exactly once."""
    import asyncio

    user = await factory.user()
    answers = await asyncio.gather(*(login(client, user.username, WRONG) for _ in range(8)))
    assert all(a.status_code == 401 for a in answers)
    assert (await db_user(runtime, user)).locked_until is not None
    async with runtime.session_factory() as session:
        lockouts = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "auth.lockout"))
        ).all()
        assert len(lockouts) == 1
