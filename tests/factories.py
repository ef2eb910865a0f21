"""Test data factories and authenticated clients."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from app.authz.models import AuthzState
from app.bootstrap import ensure_user
from app.modules.users.models import User

_counter = itertools.count(1)
DEFAULT_PASSWORD = "Correct-Horse-Battery-9"


@dataclass
class TestUser:
    __test__ = False  # not a test class, despite the name

    id: uuid.UUID
    username: str
    email: str
    password: str
    access_token: str | None = None
    refresh_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        assert self.access_token, "log the user in first (factory.login)"
        return {"Authorization": f"Bearer {self.access_token}"}


class Factory:
    def __init__(self, app: Any, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self.runtime = app.state.runtime

    async def user(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        roles: Iterable[str] = ("user",),
        attributes: dict[str, str] | None = None,
        full_name: str | None = None,
        is_active: bool = True,
        is_verified: bool = True,
    ) -> TestUser:
        n = next(_counter)
        username = username or f"user{n}_{uuid.uuid4().hex[:6]}"
        email = email or f"{username}@example.com"
        async with self.runtime.session_factory() as session:
            user, _ = await ensure_user(
                session,
                self.runtime.hasher,
                username=username,
                email=email,
                password=password,
                roles=list(roles),
                full_name=full_name,
                attributes=attributes,
            )
            user.is_active = is_active
            user.is_verified = is_verified
            state = await session.get(AuthzState, 1)
            assert state is not None
            state.version += 1
            await session.commit()
            version = state.version
        await self.runtime.state.authz_changed(version)
        return TestUser(
            id=user.id, username=username.lower(), email=email.lower(), password=password
        )

    async def existing(self, username: str, password: str) -> TestUser:
        async with self.runtime.session_factory() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None, username
            return TestUser(id=user.id, username=user.username, email=user.email, password=password)

    async def login(self, user: TestUser) -> TestUser:
        response = await self.client.post(
            f"{self.runtime.settings.API_PREFIX}/auth/login",
            json={"username": user.username, "password": user.password},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        user.access_token = body["access_token"]
        user.refresh_token = body["refresh_token"]
        return user

    async def client_for(self, user: TestUser) -> httpx.AsyncClient:
        """A second client on the same app, authenticated as `user`."""
        if user.access_token is None:
            await self.login(user)
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.20", 50001))
        client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=user.headers
        )
        return client

    async def logged_in(self, **kwargs: Any) -> TestUser:
        return await self.login(await self.user(**kwargs))
