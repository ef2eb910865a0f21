"""Users: use cases and rules.

Rules owned here: uniqueness of username / email, soft delete and restore, the last active
super-admin, nobody changing their own roles (super-admins excepted), only super-admins touching
super-admin accounts, delegation safety on role grants, session revocation on deactivation and
deletion, an authorization-version bump for anything the principal cache holds, and an audit row
(with before / after values, never the password hash) for every change.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.authz.delegation import DelegationDenied, ensure_can_grant_roles
from app.authz.principal import SUPERADMIN_ROLE, Identity, Principal
from app.authz.versioning import bump_authz_version
from app.core.database import Write
from app.core.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from app.core.passwords import validate_password
from app.core.runtime import Runtime
from app.modules.audit.service import AuditLog, AuditService, diff
from app.modules.auth.service import revoke_user_sessions
from app.modules.users.models import LoginAccount, User
from app.modules.users.repository import (
    DuplicateValues,
    UserQuery,
    UserRepository,
    fetch_identity_row,
)

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
# What an administrator may set on a user (PUT replaces all of them, PATCH any subset).
EDITABLE_FIELDS = (
    "username",
    "email",
    "full_name",
    "given_name",
    "family_name",
    "nickname",
    "picture_url",
    "is_active",
    "is_verified",
    "attributes",
)
# What a user may set on their own profile.
SELF_EDITABLE_FIELDS = ("full_name", "given_name", "family_name", "nickname", "picture_url")
# Audited state of a user (never the password hash).
_AUDITED_FIELDS = (*EDITABLE_FIELDS, "deleted_at", "failed_login_count", "locked_until")


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


@dataclass
class UserView:
    """A user with the names of its directly assigned roles and of the groups it belongs to."""

    user: User
    roles: list[str]
    groups: list[str] = field(default_factory=list)


def _snapshot(user: User) -> dict[str, Any]:
    data = {name: getattr(user, name) for name in _AUDITED_FIELDS}
    data["attributes"] = dict(user.attributes or {})
    return data


class UsersService:
    """User use cases (auth registers users through `create_user`)."""

    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.repository = UserRepository(session)
        self.audit = AuditService(session)

    # ---- reads -----------------------------------------------------------------------------
    async def get(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> User | None:
        return await self.repository.get(user_id, include_deleted=include_deleted)

    async def get_by_login(self, login: str) -> User | None:
        return await self.repository.get_by_login(login)

    async def get_login_account(self, login: str) -> LoginAccount | None:
        return await self.repository.get_login_account(login)

    def login_write(
        self, user: LoginAccount, *, now: datetime, password_hash: str | None = None
    ) -> Write:
        """A successful login's UPDATE: last_login_at, counters reset (only written when set),
        an upgraded hash."""
        return self.repository.login_write(
            user.id,
            now=now,
            password_hash=password_hash,
            reset_counters=bool(
                user.failed_login_count or user.lockout_count or user.locked_until is not None
            ),
        )

    async def count_failed_login(self, user: LoginAccount) -> tuple[int, int]:
        """(failed_login_count, lockout_count) after counting one more failure, atomically."""
        return await self.repository.count_failed_login(user.id)

    async def lock_out(self, user: LoginAccount, *, threshold: int, until: datetime) -> bool:
        """True when this call locked the account (never twice for one run of failures)."""
        return await self.repository.lock_out(user.id, threshold=threshold, until=until)

    async def get_or_404(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> User:
        user = await self.repository.get(user_id, include_deleted=include_deleted)
        if user is None:
            raise NotFound("User not found", code="user_not_found")
        return user

    async def view(self, user: User) -> UserView:
        roles = await self.repository.role_names_for([user.id])
        groups = await self.repository.group_names_for([user.id])
        return UserView(user, roles[user.id], groups[user.id])

    async def get_view(self, user_id: uuid.UUID, *, include_deleted: bool = False) -> UserView:
        return await self.view(await self.get_or_404(user_id, include_deleted=include_deleted))

    async def search(
        self, query: UserQuery, *, limit: int, offset: int
    ) -> tuple[list[UserView], int]:
        users, total = await self.repository.search(query, limit=limit, offset=offset)
        roles = await self.repository.role_names_for(u.id for u in users)
        groups = await self.repository.group_names_for(u.id for u in users)
        return [UserView(u, roles[u.id], groups[u.id]) for u in users], total

    async def activity(
        self, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[AuditLog], int]:
        """What a user did and what was done to their account, newest first."""
        return await self.audit.search(related_user=user_id, limit=limit, offset=offset)

    async def me_activity(
        self, principal: Principal, *, limit: int, offset: int
    ) -> tuple[Sequence[AuditLog], int]:
        assert principal.user_id is not None
        return await self.activity(principal.user_id, limit=limit, offset=offset)

    # ---- creation --------------------------------------------------------------------------
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
        profile: Mapping[str, Any] | None = None,
    ) -> User:
        """Validate, hash off the event loop, insert, assign roles (default role when none),
        bump the authorization version and audit: all in the caller's transaction."""
        settings = self.runtime.settings
        username, email = username.strip().lower(), email.strip().lower()
        validate_password(password, settings, username=username, email=email)
        await self._ensure_unique(username=username, email=email)
        user = await self._insert(
            User(
                username=username,
                email=email,
                full_name=full_name,
                password_hash=await self.runtime.hasher.hash(password),
                is_verified=is_verified,
                is_active=is_active,
                attributes=attributes or {},
                password_changed_at=self.runtime.clock.now(),
                **{
                    k: v
                    for k, v in (profile or {}).items()
                    if k in SELF_EDITABLE_FIELDS and k != "full_name"
                },
            )
        )
        role_names = roles if roles is not None else [settings.DEFAULT_ROLE]
        role_ids = await self.repository.role_ids_by_name(role_names)
        missing = sorted(set(role_names) - set(role_ids))
        if missing:
            raise ValidationFailed.for_field("roles", f"Unknown role: {', '.join(missing)}")
        await self.repository.add_roles(user.id, list(role_ids.values()), granted_by)
        await bump_authz_version(self.session, self.runtime.state)
        after = {
            k: v
            for k, v in _snapshot(user).items()
            if k in EDITABLE_FIELDS and v is not None and v != {}
        }
        after["roles"] = sorted(role_names)
        self.audit.record(audit_action, "user", user.id, changes=diff(None, after))
        return user

    async def create(self, principal: Principal, data: Mapping[str, Any]) -> UserView:
        """An administrator creates a user; explicit roles go through delegation safety."""
        roles: list[str] | None = data.get("roles")
        if roles is not None:
            roles = sorted(set(roles))
            role_ids = await self.repository.role_ids_by_name(roles)
            missing = sorted(set(roles) - set(role_ids))
            if missing:
                raise ValidationFailed.for_field("roles", f"Unknown role: {', '.join(missing)}")
            await self._ensure_can_grant(
                principal, list(role_ids.values()), "user.create", None, {"roles": roles}
            )
        user = await self.create_user(
            username=data["username"],
            email=data["email"],
            password=data["password"],
            full_name=data.get("full_name"),
            roles=roles,
            is_verified=bool(data.get("is_verified", False)),
            is_active=bool(data.get("is_active", True)),
            attributes=dict(data.get("attributes") or {}),
            granted_by=principal.user_id,
            profile=data,
        )
        return await self.view(user)

    # ---- updates ---------------------------------------------------------------------------
    async def update(
        self, principal: Principal, user_id: uuid.UUID, data: Mapping[str, Any]
    ) -> UserView:
        """PATCH (the fields sent) and PUT (every editable field) of an administrator."""
        user = await self.get_or_404(user_id)
        await self._ensure_may_modify(principal, user)
        changes = {k: v for k, v in data.items() if k in EDITABLE_FIELDS}
        await self._apply(user, changes, action="user.update")
        return await self.view(user)

    async def update_profile(self, principal: Principal, data: Mapping[str, Any]) -> User:
        assert principal.user_id is not None
        user = await self.get_or_404(principal.user_id)
        changes = {k: v for k, v in data.items() if k in SELF_EDITABLE_FIELDS}
        await self._apply(user, changes, action="user.profile_update")
        return user

    async def set_active(self, principal: Principal, user_id: uuid.UUID, active: bool) -> UserView:
        user = await self.get_or_404(user_id)
        await self._ensure_may_modify(principal, user)
        await self._apply(user, {"is_active": active}, action="user.update")
        return await self.view(user)

    async def toggle_status(self, principal: Principal, user_id: uuid.UUID) -> UserView:
        user = await self.get_or_404(user_id)
        await self._ensure_may_modify(principal, user)
        await self._apply(user, {"is_active": not user.is_active}, action="user.update")
        return await self.view(user)

    async def delete(self, principal: Principal, user_id: uuid.UUID) -> None:
        """Soft delete: hidden everywhere, sessions revoked, restorable."""
        user = await self.get_or_404(user_id)
        await self._ensure_may_modify(principal, user)
        before = _snapshot(user)
        was_superadmin = await self._holds_superadmin(user)
        user.deleted_at = self.runtime.clock.now()
        await self.repository.flush()
        if was_superadmin:
            await self._ensure_superadmin_remains()
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record("user.delete", "user", user.id, changes=diff(before, _snapshot(user)))
        await self._revoke_sessions(user.id, "user_deleted")

    async def restore(self, principal: Principal, user_id: uuid.UUID) -> UserView:
        user = await self.get_or_404(user_id, include_deleted=True)
        if user.deleted_at is None:
            raise Conflict("User is not deleted", code="user_not_deleted")
        await self._ensure_may_modify(principal, user)
        before = _snapshot(user)
        user.deleted_at = None
        await self.repository.flush()
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record("user.restore", "user", user.id, changes=diff(before, _snapshot(user)))
        return await self.view(user)

    async def unlock(self, principal: Principal, user_id: uuid.UUID) -> UserView:
        user = await self.get_or_404(user_id)
        # Else an administrator could unlock a super-admin again and again and keep guessing.
        await self._ensure_may_modify(principal, user)
        before = _snapshot(user)
        user.failed_login_count = 0
        user.locked_until = None
        await self.repository.flush()
        self.audit.record("user.unlock", "user", user.id, changes=diff(before, _snapshot(user)))
        return await self.view(user)

    # ---- roles -----------------------------------------------------------------------------
    async def assign_role(
        self,
        principal: Principal,
        user_id: uuid.UUID,
        role_id: uuid.UUID,
        *,
        check_delegation: bool = True,
    ) -> UserView:
        user, role_name = await self._role_change_target(principal, user_id, role_id)
        if check_delegation:
            await self._ensure_can_grant(
                principal, [role_id], "user.role_assign", user.id, {"role": role_name}
            )
        if not await self.repository.has_role(user.id, role_id):
            before = await self.view(user)
            await self.repository.add_roles(user.id, [role_id], principal.user_id)
            return await self._role_changed("user.role_assign", user, before, role_id, role_name)
        return await self.view(user)

    async def remove_role(
        self,
        principal: Principal,
        user_id: uuid.UUID,
        role_id: uuid.UUID,
        *,
        check_delegation: bool = True,
    ) -> UserView:
        user, role_name = await self._role_change_target(principal, user_id, role_id)
        if check_delegation:
            await self._ensure_can_grant(
                principal, [role_id], "user.role_remove", user.id, {"role": role_name}
            )
        if await self.repository.has_role(user.id, role_id):
            before = await self.view(user)
            was_superadmin = role_name == SUPERADMIN_ROLE and await self._holds_superadmin(user)
            await self.repository.remove_role(user.id, role_id)
            if was_superadmin:
                await self._ensure_superadmin_remains()
            return await self._role_changed("user.role_remove", user, before, role_id, role_name)
        return await self.view(user)

    async def _role_changed(
        self, action: str, user: User, before: UserView, role_id: uuid.UUID, role_name: str
    ) -> UserView:
        """After an assignment changed: invalidate principals, audit before/after roles."""
        await bump_authz_version(self.session, self.runtime.state)
        after = await self.view(user)
        self.audit.record(
            action,
            "user",
            user.id,
            changes=diff({"roles": before.roles}, {"roles": after.roles}),
            details={"role_id": role_id, "role": role_name},
        )
        return after

    # ---- bulk ------------------------------------------------------------------------------
    async def bulk(
        self,
        principal: Principal,
        *,
        action: str,
        user_ids: Sequence[uuid.UUID],
        role_id: uuid.UUID | None = None,
        atomic: bool = False,
    ) -> list[tuple[uuid.UUID, AppError | None]]:
        """Apply one action to many users, each in its own SAVEPOINT so that a failing item
        leaves no trace. With `atomic`, any failure rolls the whole request back (BulkFailed)."""
        operation = await self._bulk_operation(principal, action, role_id)
        # Bumped once, outside the savepoints: a rolled-back savepoint must not undo it.
        await bump_authz_version(self.session, self.runtime.state)
        results: list[tuple[uuid.UUID, AppError | None]] = []
        for user_id in dict.fromkeys(user_ids):
            try:
                async with self.session.begin_nested():
                    await operation(user_id)
                    await self.session.flush()
            except AppError as exc:
                results.append((user_id, exc))
            else:
                results.append((user_id, None))
        if atomic and any(error is not None for _, error in results):
            raise BulkFailed(results)
        return results

    async def _bulk_operation(
        self, principal: Principal, action: str, role_id: uuid.UUID | None
    ) -> Callable[[uuid.UUID], Awaitable[Any]]:
        if action in ("assign_role", "remove_role"):
            assert role_id is not None
            role = await self.repository.get_role(role_id)
            if role is None:
                raise NotFound("Role not found", code="role_not_found")
            # One delegation check for the whole batch, before anything changes.
            await self._ensure_can_grant(
                principal,
                [role_id],
                f"user.bulk_{action}",
                None,
                {"role": role.name, "action": action},
            )
            method = self.assign_role if action == "assign_role" else self.remove_role

            async def on_role(user_id: uuid.UUID) -> Any:
                return await method(principal, user_id, role_id, check_delegation=False)

            return on_role
        if action in ("activate", "deactivate"):
            active = action == "activate"

            async def on_status(user_id: uuid.UUID) -> Any:
                return await self.set_active(principal, user_id, active)

            return on_status
        if action == "delete":
            return lambda user_id: self.delete(principal, user_id)
        if action == "restore":
            return lambda user_id: self.restore(principal, user_id)
        raise ValidationFailed.for_field("action", f"Unknown action: {action}")

    # ---- internals -------------------------------------------------------------------------
    async def _apply(self, user: User, changes: Mapping[str, Any], *, action: str) -> None:
        """Set fields, enforcing uniqueness and the super-admin rule; bump, audit, revoke."""
        before = _snapshot(user)
        values = dict(changes)
        for key in ("username", "email"):
            if values.get(key) is not None:
                values[key] = str(values[key]).strip().lower()
        await self._ensure_unique(
            username=values.get("username") if values.get("username") != user.username else None,
            email=values.get("email") if values.get("email") != user.email else None,
            exclude_id=user.id,
        )
        if "attributes" in values:
            values["attributes"] = dict(values["attributes"] or {})
        deactivating = values.get("is_active") is False and user.is_active
        was_superadmin = deactivating and await self._holds_superadmin(user)
        for key, value in values.items():
            setattr(user, key, value)
        after = _snapshot(user)
        changed = diff(before, after)
        if not changed:
            return
        try:
            await self.repository.flush()
        except DuplicateValues as exc:
            # Taken by a concurrent request between our check and our write.
            raise _taken(exc.fields) from None
        if was_superadmin:
            await self._ensure_superadmin_remains()
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record(action, "user", user.id, changes=changed)
        if deactivating:
            await self._revoke_sessions(user.id, "user_deactivated")

    async def _ensure_unique(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        exclude_id: uuid.UUID | None = None,
    ) -> None:
        taken = await self.repository.exists(username=username, email=email, exclude_id=exclude_id)
        if taken:
            raise _taken(taken)

    async def _insert(self, user: User) -> User:
        try:
            return await self.repository.add(user)
        except DuplicateValues as exc:
            # Taken by a concurrent request between our check and our insert.
            raise _taken(exc.fields) from None

    async def _ensure_may_modify(self, principal: Principal, user: User) -> None:
        """Only a super-admin may change a super-admin's account (else an administrator could,
        say, change its email and take it over through a password reset)."""
        if principal.is_superadmin or principal.user_id == user.id:
            return
        holders = await self.repository.active_holders_of_role(SUPERADMIN_ROLE)
        if user.id in holders:
            raise Forbidden(
                "Only a super-admin may modify a super-admin account", code="superadmin_protected"
            )

    async def _holds_superadmin(self, user: User) -> bool:
        # Locks the super-admin role row (PostgreSQL): two concurrent demotions cannot both
        # see "one other super-admin remains".
        await self.repository.lock_role(SUPERADMIN_ROLE)
        return user.id in await self.repository.active_holders_of_role(SUPERADMIN_ROLE)

    async def _ensure_superadmin_remains(self) -> None:
        await self.repository.flush()
        if not await self.repository.active_holders_of_role(SUPERADMIN_ROLE):
            raise Conflict(
                "The last active super-admin cannot be deactivated, deleted or lose the"
                " super-admin role",
                code="last_superadmin",
            )

    async def _role_change_target(
        self, principal: Principal, user_id: uuid.UUID, role_id: uuid.UUID
    ) -> tuple[User, str]:
        user = await self.get_or_404(user_id)
        role = await self.repository.get_role(role_id)
        if role is None:
            raise NotFound("Role not found", code="role_not_found")
        if principal.user_id == user.id and not principal.is_superadmin:
            raise Forbidden("You cannot change your own roles", code="self_role_change")
        await self._ensure_may_modify(principal, user)
        return user, role.name

    async def _ensure_can_grant(
        self,
        principal: Principal,
        role_ids: list[uuid.UUID],
        action: str,
        resource_id: uuid.UUID | None,
        details: dict[str, Any],
    ) -> None:
        """Delegation safety; a refusal is audited (the row survives the 403)."""
        try:
            await ensure_can_grant_roles(self.session, principal, role_ids)
        except DelegationDenied as exc:
            self.audit.record(
                action,
                "user",
                resource_id,
                outcome="denied",
                details={
                    **details,
                    "reason": "delegation_denied",
                    "exceeding_permissions": exc.extra.get("exceeding_permissions", []),
                },
            )
            raise

    async def _revoke_sessions(self, user_id: uuid.UUID, reason: str) -> None:
        await revoke_user_sessions(
            self.session, self.runtime.state, self.runtime.clock, user_id, reason=reason
        )


def _taken(fields: set[str]) -> Conflict:
    return Conflict(
        "A user with this username or email already exists",
        code="user_exists",
        errors=[{"field": f, "message": f"{f} is already registered"} for f in sorted(fields)],
    )


class BulkFailed(Conflict):
    """An atomic bulk request in which some item failed: nothing was changed."""

    code = "bulk_failed"

    def __init__(self, results: list[tuple[uuid.UUID, AppError | None]]) -> None:
        failed = sum(1 for _, error in results if error is not None)
        super().__init__(
            f"{failed} of {len(results)} items failed; nothing was changed (atomic)",
            extra={"results": [bulk_item(user_id, error) for user_id, error in results]},
        )


def bulk_item(user_id: uuid.UUID, error: AppError | None) -> dict[str, Any]:
    if error is None:
        return {"id": str(user_id), "status": "ok"}
    return {"id": str(user_id), "status": "error", "error": error.code, "detail": error.detail}
