"""The general per-principal rate limit across processes: shared through Redis (on the
PostgreSQL backend), each process's own without it (SQLite)."""

from __future__ import annotations

import time

import httpx

from app.core.config import Settings
from tests.conftest import SUPERADMIN_PASSWORD
from tests.e2e.conftest import StartServer

LIMIT = 8
REQUESTS = 24
# Longer than a flush (50 ms) with room for a busy machine: each process has added its count
# to Redis before the next request arrives.
PAUSE = 0.25


def test_the_general_limit_is_shared_by_every_process(
    start_server: StartServer, settings: Settings
) -> None:
    limits = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_REQUESTS": str(LIMIT),
        "RATE_LIMIT_WINDOW": "60",
        "AUTH_RATE_LIMIT_REQUESTS": "100",
    }
    servers = [start_server(**limits), start_server(**limits)]
    login = httpx.post(
        f"{servers[0].url}/api/v1/auth/login",
        json={"username": "superadmin", "password": SUPERADMIN_PASSWORD},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    statuses: list[int] = []
    for i in range(REQUESTS):
        response = httpx.get(f"{servers[i % 2].url}/api/v1/users/me", headers=headers, timeout=10)
        assert response.status_code in (200, 429), response.text
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
        statuses.append(response.status_code)
        time.sleep(PAUSE)
    admitted = statuses.count(200)
    if settings.REDIS_URL is not None:
        # Each process may admit one more before it learns the total: at most LIMIT + 2.
        assert LIMIT <= admitted <= LIMIT + 2, statuses
    else:
        assert admitted == 2 * LIMIT, statuses
    assert statuses[-4:] == [429] * 4, statuses  # both processes refuse in the end
