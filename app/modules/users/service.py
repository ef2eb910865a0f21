"""Users: use cases and rules."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.authz.principal import Identity
from app.authz.versioning import bump_authz_version
from app.core.errors import Conflict, ValidationFailed
from app.core.passwords import validate_password
from app.core.runtime import Runtime
from app.modules.audit.service import AuditService, diff
from app.modules.users.models import User
from app.modules.users.repository import UserRepository, fetch_identity_row

PROFILE_FIELDS = (
    "id",
    "username",
    "email",
    "full_name",
    "given_name",
    "family_name",
    "nickname",
    "picture_url",
    "phone",
    "is_active",
    "is_verified",
    "attributes",
    "created_at",
    "updated_at",
    "last_login_at",
)


async def load_identity(conn: AsyncConnection, user_id: uuid.UUID) -> Identity | None:
    """The identity source of the principal store (wired in app/main.py)."""
    row = await fetch_identity_row(conn, user_id)
    if row is None:
        return None
    return Identity(
        id=row["id"],  # type: ignore[arg-type]
        username=str(row["username"]),
        email=str(row["email"]),
        is_active=bool(row["is_active"]),
        is_verified=bool(row["is_verified"]),
        deleted=row["deleted_at"] is not None,
        attributes=dict(row["attributes"] or {}),  # type: ignore[call-overload]
        profile={k: row[k] for k in PROFILE_FIELDS},
    )


class UsersService:
    """User use cases shared with other modules (auth registers users through `create_user`)."""

    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.repository = UserRepository(session)
        self.audit = AuditService(session)

    async def get(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> User | None:
        return await self.repository.get(user_id, include_deleted=include_deleted)

    async def get_by_login(self, login: str) -> User | None:
        return await self.repository.get_by_login(login)

    async def create_user(
        self,
        *,
        username: str,
        email: str,
        password: str,
        full_name: str | None = None,
        roles: list[str] | None = None,
        is_verified: bool = False,
        is_active: bool = True,
        attributes: dict[str, Any] | None = None,
        audit_action: str = "user.create",
        granted_by: uuid.UUID | None = None,
    ) -> User:
        """Validate, hash off the event loop, insert, assign roles (default role when none),
        bump the authorization version and audit: all in the caller's transaction."""
        settings = self.runtime.settings
        username, email = username.strip().lower(), email.strip().lower()
        validate_password(password, settings, username=username, email=email)
        taken = await self.repository.exists(username=username, email=email)
        if taken:
            raise Conflict(
                "A user with this username or email already exists",
                code="user_exists",
                errors=[
                    {"field": f, "message": f"{f} is already registered"} for f in sorted(taken)
                ],
            )
        user = await self.repository.add(
            User(
                username=username,
                email=email,
                full_name=full_name,
                password_hash=await self.runtime.hasher.hash(password),
                is_verified=is_verified,
                is_active=is_active,
                attributes=attributes or {},
                password_changed_at=self.runtime.clock.now(),
            )
        )
        role_names = roles if roles is not None else [settings.DEFAULT_ROLE]
        role_ids = await self.repository.role_ids_by_name(role_names)
        missing = sorted(set(role_names) - set(role_ids))
        if missing:
            raise ValidationFailed.for_field("roles", f"Unknown role: {', '.join(missing)}")
        await self.repository.add_roles(user.id, list(role_ids.values()), granted_by)
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record(
            audit_action,
            "user",
            user.id,
            changes=diff(
                None,
                {
                    "username": username,
                    "email": email,
                    "full_name": full_name,
                    "roles": sorted(role_names),
                    "is_active": is_active,
                },
            ),
        )
        return user
