"""Authentication: use cases and rules.

Logins are enumeration-safe (an unknown user costs a dummy hash verification and gets the same
answer as a wrong password), counted per account for lockout, and rate limited per client
address and per account. A login opens an `AuthSession`; its refresh tokens are opaque,
stored as digests and single-use: presenting a used one revokes the whole session (family).
Refusals that must leave a trace (failure counters, lockouts, audit rows, a revoked family) are
raised with `keep_changes=True`, so the request's transaction commits them before answering.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.authz.principal import Principal
from app.authz.versioning import bump_authz_version, bump_revocation_version
from app.core.cache import SharedState
from app.core.clock import Clock
from app.core.context import get_request_context
from app.core.database import after_commit, execute_writes
from app.core.errors import AppError, BadRequest, Forbidden, NotFound, Unauthorized
from app.core.passwords import validate_password
from app.core.runtime import Runtime
from app.core.security import TokenError, fingerprint, opaque_token, token_digest
from app.modules.audit.service import AuditService
from app.modules.auth.models import AuthSession, RefreshToken
from app.modules.auth.repository import SessionRepository, revoked_session_ids

if TYPE_CHECKING:
    from app.modules.users.models import LoginAccount
    from app.modules.users.service import UsersService

logger = logging.getLogger("gatehouse.auth")

RESET_PURPOSE = "password_reset"
VERIFY_PURPOSE = "verify_email"
INVALID_CREDENTIALS = "Invalid username or password"


async def read_revoked_session_ids(engine: AsyncEngine) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        return await revoked_session_ids(conn)


async def revoke_user_sessions(
    session: AsyncSession,
    state: SharedState,
    clock: Clock,
    user_id: uuid.UUID,
    *,
    reason: str,
    except_session_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke every live session of a user (deactivation, deletion, password change, logout-all).
    Every process refuses their access tokens once the transaction commits."""
    ids = await SessionRepository(session).revoke_all_for_user(
        user_id, now=clock.now(), reason=reason, except_session_id=except_session_id
    )
    await bump_revocation_version(session, state, ids)
    return ids


def _invalid_credentials() -> AppError:
    # Committed although refused: the failure counter and the audit row must persist.
    return Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials", keep_changes=True)


def _invalid_token(detail: str = "Invalid or expired token") -> AppError:
    return BadRequest(detail, code="invalid_token")


def _client() -> tuple[str | None, str | None]:
    ctx = get_request_context()
    return (ctx.ip, ctx.user_agent) if ctx else (None, None)


class AuthService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.settings = runtime.settings
        self.sessions = SessionRepository(session)
        # Imported here: the users service imports `revoke_user_sessions` from this module.
        from app.modules.users.service import UsersService

        self.users: UsersService = UsersService(session, runtime)
        self.audit = AuditService(session)

    # ---- helpers ----------------------------------------------------------------------------
    async def _limit(self, scope: str, *keys: str) -> None:
        ip, _ = _client()
        await self.runtime.limiter.hit(f"{scope}:ip", ip or "unknown", auth=True)
        for key in keys:
            await self.runtime.limiter.hit(f"{scope}:account", key.strip().lower(), auth=True)

    def _send_after_commit(self, to: str, subject: str, body: str) -> None:
        mailer = self.runtime.mailer

        async def send() -> None:
            # In the background: forgot-password must not reveal accounts by its timing.
            mailer.send_in_background(to, subject, body)

        after_commit(self.session, send)

    def _pair(
        self, user_id: uuid.UUID, session_id: uuid.UUID, refresh: str, now: datetime
    ) -> dict[str, Any]:
        access, expires_in = self.runtime.tokens.create_access_token(user_id, session_id, now)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": expires_in,
        }

    async def _issue_pair(
        self, user_id: uuid.UUID, auth_session: AuthSession, now: datetime
    ) -> dict[str, Any]:
        refresh = opaque_token()
        await self.sessions.add_refresh_token(
            RefreshToken(
                session_id=auth_session.id,
                token_hash=token_digest(refresh),
                expires_at=auth_session.expires_at,
            )
        )
        return self._pair(user_id, auth_session.id, refresh, now)

    def _lockout_minutes(self, lockout_count: int) -> int:
        minutes = self.settings.LOCKOUT_MINUTES * 2 ** max(0, min(lockout_count - 1, 20))
        return int(min(minutes, self.settings.LOCKOUT_MAX_MINUTES))

    # ---- registration -----------------------------------------------------------------------
    async def register(
        self, *, username: str, email: str, password: str, full_name: str | None
    ) -> Any:
        if not self.settings.USER_REGISTRATION_ENABLED:
            raise Forbidden("Registration is disabled", code="registration_disabled")
        await self._limit("register", email)
        user = await self.users.create_user(
            username=username,
            email=email,
            password=password,
            full_name=full_name,
            audit_action="auth.register",
        )
        if self.settings.EMAIL_VALIDATION_ENABLED:
            self._queue_verification_mail(user.id, user.email)
        return user

    # ---- login ------------------------------------------------------------------------------
    async def login(self, login: str, password: str) -> dict[str, Any]:
        await self._limit("login", login)
        settings = self.settings
        now = self.runtime.clock.now()
        hasher = self.runtime.hasher
        user = await self.users.get_login_account(login)
        too_long = len(password) > settings.PASSWORD_MAX_LENGTH

        if user is None:
            await hasher.verify_and_update("" if too_long else password, None)
            self._audit_failure(None, login, "unknown_user")
            raise _invalid_credentials()

        locked = user.locked_until is not None and user.locked_until > now
        if locked or too_long:
            # Same work and answer as a wrong password; a locked account's lock is not extended.
            await hasher.verify_and_update("", None)
            self._audit_failure(user.id, login, "locked" if locked else "wrong_password")
            raise _invalid_credentials()

        valid, new_hash = await hasher.verify_and_update(password, user.password_hash)
        if not valid:
            # Counted in the database (not read-modify-write): parallel guesses all count.
            failures, lockouts = await self.users.count_failed_login(user)
            threshold = settings.LOCKOUT_THRESHOLD
            if failures >= threshold:
                minutes = self._lockout_minutes(lockouts + 1)
                until = now + timedelta(minutes=minutes)
                if await self.users.lock_out(user, threshold=threshold, until=until):
                    self.audit.record(
                        "auth.lockout",
                        "user",
                        user.id,
                        details={"minutes": minutes, "lockout_count": lockouts + 1},
                        outcome="failure",
                        actor_id=user.id,
                        actor_username=user.username,
                    )
            self._audit_failure(user.id, login, "wrong_password")
            raise _invalid_credentials()

        if not user.is_active:
            self._audit_failure(user.id, login, "inactive")
            raise _invalid_credentials()
        if settings.EMAIL_VALIDATION_ENABLED and not user.is_verified:
            self._audit_failure(user.id, login, "email_not_verified")
            raise Forbidden(
                "Verify your email address before logging in",
                code="email_not_verified",
                keep_changes=True,
            )

        return await self._start_session(user, now, new_hash)

    async def _start_session(
        self, user: LoginAccount, now: datetime, new_hash: str | None
    ) -> dict[str, Any]:
        """A successful login's writes and its token pair. The writes are one batch of Core
        statements on the request's transaction (no ORM unit of work on the hot path; on SQLite
        they reach the database with the commit, in one call). A changed hash (new parameters, a
        bcrypt import) is upgraded here."""
        ip, user_agent = _client()
        refresh = opaque_token()
        session_id, session_writes = self.sessions.new_session_writes(
            user_id=user.id,
            expires_at=now + timedelta(days=self.settings.REFRESH_TOKEN_EXPIRE_DAYS),
            now=now,
            ip=ip,
            user_agent=user_agent,
            token_hash=token_digest(refresh),
        )
        await execute_writes(
            self.session,
            [
                self.users.login_write(user, now=now, password_hash=new_hash),
                *session_writes,
                self.audit.entry_write(
                    "auth.login",
                    "user",
                    user.id,
                    details={"rehashed": new_hash is not None},
                    actor_id=user.id,
                    actor_username=user.username,
                ),
            ],
        )
        return self._pair(user.id, session_id, refresh, now)

    def _audit_failure(self, user_id: uuid.UUID | None, login: str, reason: str) -> None:
        self.audit.record(
            "auth.login_failed",
            "user",
            user_id,
            details={"login": login[:320], "reason": reason},
            outcome="failure",
            actor_id=user_id,
        )

    # ---- refresh ----------------------------------------------------------------------------
    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        ip, _ = _client()
        await self.runtime.limiter.hit("refresh:ip", ip or "unknown", auth=True)
        now = self.runtime.clock.now()
        stored = await self.sessions.get_refresh_token(token_digest(refresh_token))
        if stored is None:
            raise Unauthorized("Invalid refresh token", code="invalid_refresh_token")
        auth_session = await self.sessions.get_session(stored.session_id)
        if auth_session is None:
            raise Unauthorized("Invalid refresh token", code="invalid_refresh_token")
        if stored.used_at is not None:
            await self._refresh_reuse(auth_session)
        if (
            auth_session.revoked_at is not None
            or auth_session.expires_at <= now
            or stored.expires_at <= now
        ):
            raise Unauthorized("Session expired or revoked", code="session_revoked")
        user = await self.users.get(auth_session.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("Session expired or revoked", code="session_revoked")
        if not await self.sessions.mark_refresh_token_used(stored.id, now=now):
            # Someone else used it between our read and our write: that is a reuse too.
            await self._refresh_reuse(auth_session)
        auth_session.last_used_at = now
        auth_session.expires_at = now + timedelta(days=self.settings.REFRESH_TOKEN_EXPIRE_DAYS)
        pair = await self._issue_pair(user.id, auth_session, now)
        # A rotation is a mutation like any other: the trail shows each session's refreshes.
        self.audit.record(
            "auth.refresh",
            "session",
            auth_session.id,
            actor_id=user.id,
            actor_username=user.username,
        )
        return pair

    async def _refresh_reuse(self, auth_session: AuthSession) -> None:
        """A used refresh token came back: someone holds a copy. Revoke the whole family."""
        now = self.runtime.clock.now()
        if await self.sessions.revoke_session(auth_session.id, now=now, reason="refresh_reuse"):
            await bump_revocation_version(self.session, self.runtime.state, [auth_session.id])
        owner = await self.users.get(auth_session.user_id)  # named in the trail (rare path)
        self.audit.record(
            "auth.refresh_reuse",
            "session",
            auth_session.id,
            details={"user_id": auth_session.user_id},
            outcome="failure",
            actor_id=auth_session.user_id,
            actor_username=owner.username if owner is not None else None,
        )
        raise Unauthorized(
            "Refresh token reuse detected; the session has been revoked",
            code="refresh_token_reused",
            keep_changes=True,
        )

    # ---- logout and sessions ----------------------------------------------------------------
    async def logout(self, principal: Principal) -> None:
        assert principal.session_id is not None
        await self._revoke_own(principal, principal.session_id, reason="logout")

    async def _revoke_own(self, principal: Principal, session_id: uuid.UUID, reason: str) -> None:
        now = self.runtime.clock.now()
        if await self.sessions.revoke_session(session_id, now=now, reason=reason):
            await bump_revocation_version(self.session, self.runtime.state, [session_id])
        self.audit.record("auth.logout", "session", session_id, details={"reason": reason})

    async def logout_all(self, principal: Principal) -> None:
        assert principal.user_id is not None
        ids = await revoke_user_sessions(
            self.session,
            self.runtime.state,
            self.runtime.clock,
            principal.user_id,
            reason="logout_all",
        )
        self.audit.record(
            "auth.logout",
            "user",
            principal.user_id,
            details={"reason": "logout_all", "sessions": len(ids)},
        )

    async def list_sessions(self, principal: Principal) -> Sequence[AuthSession]:
        assert principal.user_id is not None
        return await self.sessions.live_sessions(principal.user_id, now=self.runtime.clock.now())

    async def revoke_session(self, principal: Principal, session_id: uuid.UUID) -> None:
        auth_session = await self.sessions.get_session(session_id)
        now = self.runtime.clock.now()
        if (
            auth_session is None
            or auth_session.user_id != principal.user_id
            or auth_session.revoked_at is not None
            or auth_session.expires_at <= now
        ):
            raise NotFound("Session not found", code="session_not_found")
        await self._revoke_own(principal, session_id, reason="revoked_by_user")

    # ---- passwords --------------------------------------------------------------------------
    async def change_password(
        self, principal: Principal, current_password: str, new_password: str
    ) -> None:
        assert principal.user_id is not None
        await self.runtime.limiter.hit("change-password", str(principal.user_id), auth=True)
        user = await self.users.get(principal.user_id)
        if user is None:
            raise Unauthorized()
        too_long = len(current_password) > self.settings.PASSWORD_MAX_LENGTH
        valid, _ = await self.runtime.hasher.verify_and_update(
            "" if too_long else current_password, None if too_long else user.password_hash
        )
        if not valid:
            raise BadRequest(
                "The current password is incorrect",
                code="invalid_password",
                errors=[{"field": "current_password", "message": "is incorrect"}],
            )
        validate_password(
            new_password,
            self.settings,
            username=user.username,
            email=user.email,
            field="new_password",
        )
        now = self.runtime.clock.now()
        user.password_hash = await self.runtime.hasher.hash(new_password)
        user.password_changed_at = now
        revoked = await revoke_user_sessions(
            self.session,
            self.runtime.state,
            self.runtime.clock,
            user.id,
            reason="password_changed",
            except_session_id=principal.session_id,
        )
        self.audit.record(
            "auth.password_changed",
            "user",
            user.id,
            changes={"password": {"before": "[redacted]", "after": "[redacted]"}},
            details={"revoked_sessions": len(revoked)},
        )

    async def forgot_password(self, email: str) -> None:
        await self._limit("forgot-password", email)
        now = self.runtime.clock.now()
        value = email.strip().lower()
        user = await self.users.get_by_login(value) if "@" in value else None
        usable = user is not None and user.is_active
        # A token is signed either way, so both paths do the same work.
        token = self.runtime.tokens.create_purpose_token(
            RESET_PURPOSE,
            str(user.id if user is not None else uuid.UUID(int=0)),
            now,
            timedelta(minutes=self.settings.RESET_TOKEN_EXPIRE_MINUTES),
            fp=fingerprint((user.password_hash if user else None) or "", self.settings.SECRET_KEY),
        )
        self.audit.record(
            "auth.password_reset_requested",
            "user",
            user.id if usable and user is not None else None,
            details={"known": usable},
        )
        if usable and user is not None:
            link = f"{self.settings.FRONTEND_URL}/reset-password?token={token}"
            self._send_after_commit(
                user.email,
                f"{self.settings.APP_NAME}: reset your password",
                "Someone asked to reset the password of your account.\n\n"
                f"Reset it here (valid for {self.settings.RESET_TOKEN_EXPIRE_MINUTES} minutes):"
                f"\n{link}\n\nReset token: {token}\n\n"
                "If it was not you, ignore this message.\n",
            )

    async def reset_password(self, token: str, new_password: str) -> None:
        try:
            payload = self.runtime.tokens.decode_purpose_token(RESET_PURPOSE, token)
            user_id = uuid.UUID(str(payload["sub"]))
        except (TokenError, ValueError, KeyError):
            raise _invalid_token()
        user = await self.users.get(user_id)
        expected = fingerprint(
            (user.password_hash if user else None) or "", self.settings.SECRET_KEY
        )
        # Bound to the password hash: once the password changes (this reset), the token is dead.
        if user is None or not user.is_active or payload.get("fp") != expected:
            raise _invalid_token()
        validate_password(
            new_password,
            self.settings,
            username=user.username,
            email=user.email,
            field="new_password",
        )
        now = self.runtime.clock.now()
        user.password_hash = await self.runtime.hasher.hash(new_password)
        user.password_changed_at = now
        user.failed_login_count = 0
        user.locked_until = None
        revoked = await revoke_user_sessions(
            self.session, self.runtime.state, self.runtime.clock, user.id, reason="password_reset"
        )
        self.audit.record(
            "auth.password_reset",
            "user",
            user.id,
            changes={"password": {"before": "[redacted]", "after": "[redacted]"}},
            details={"revoked_sessions": len(revoked)},
            actor_id=user.id,
            actor_username=user.username,
        )

    # ---- email verification -----------------------------------------------------------------
    def _queue_verification_mail(self, user_id: uuid.UUID, email: str) -> None:
        token = self.runtime.tokens.create_purpose_token(
            VERIFY_PURPOSE,
            str(user_id),
            self.runtime.clock.now(),
            timedelta(hours=self.settings.VERIFY_TOKEN_EXPIRE_HOURS),
            email=email,
        )
        link = f"{self.settings.FRONTEND_URL}/verify-email?token={token}"
        self._send_after_commit(
            email,
            f"{self.settings.APP_NAME}: confirm your email address",
            f"Confirm your email address here:\n{link}\n\nVerification token: {token}\n",
        )

    async def request_verify_email(self, principal: Principal) -> None:
        assert principal.user_id is not None
        await self.runtime.limiter.hit("verify-email", str(principal.user_id), auth=True)
        user = await self.users.get(principal.user_id)
        if user is None:
            raise Unauthorized()
        if user.is_verified:
            raise BadRequest("The email address is already verified", code="already_verified")
        self._queue_verification_mail(user.id, user.email)

    async def request_verify_email_by_address(self, email: str) -> None:
        """For users who cannot log in yet (EMAIL_VALIDATION_ENABLED): 202 whatever the address."""
        await self._limit("verify-email", email)
        value = email.strip().lower()
        user = await self.users.get_by_login(value) if "@" in value else None
        if user is not None and user.is_active and not user.is_verified:
            self._queue_verification_mail(user.id, user.email)

    async def verify_email(self, token: str) -> Any:
        try:
            payload = self.runtime.tokens.decode_purpose_token(VERIFY_PURPOSE, token)
            user_id = uuid.UUID(str(payload["sub"]))
        except (TokenError, ValueError, KeyError):
            raise _invalid_token()
        user = await self.users.get(user_id)
        # Bound to the address it was sent to and to the unverified state: single use.
        if user is None or user.email != payload.get("email") or user.is_verified:
            raise _invalid_token()
        user.is_verified = True
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record(
            "auth.email_verified",
            "user",
            user.id,
            changes={"is_verified": {"before": False, "after": True}},
            actor_id=user.id,
            actor_username=user.username,
        )
        await self.session.flush()
        return user
