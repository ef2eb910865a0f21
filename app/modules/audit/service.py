"""The audit trail. Every service records its mutations here, in the caller's transaction, so an
audit row exists exactly when the change it describes was committed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import get_request_context
from app.core.database import Write
from app.core.errors import NotFound, ValidationFailed
from app.modules.audit.models import AuditLog
from app.modules.audit.repository import AuditRepository
from app.modules.audit.schemas import AuditLogPublic

# Values of these fields never reach the audit table, whatever resource they belong to.
SECRET_FIELDS = frozenset(
    {
        "password",
        "password_hash",
        "new_password",
        "current_password",
        "token",
        "token_hash",
        "refresh_token",
        "access_token",
        "secret",
        "api_key",
    }
)
REDACTED = "[redacted]"

# Other modules read audit entries through this service (never the models module directly):
# `from app.modules.audit.service import AuditLog, AuditLogPublic`.
_REEXPORTED = (AuditLog, AuditLogPublic)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def diff(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    fields: Iterable[str] | None = None,
    secret_fields: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """{field: {"before": ..., "after": ...}} for the fields that changed; secrets redacted."""
    before = before or {}
    after = after or {}
    secrets = SECRET_FIELDS | set(secret_fields)
    keys = list(fields) if fields is not None else sorted(set(before) | set(after))
    changes: dict[str, dict[str, Any]] = {}
    for key in keys:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key in secrets:
            changes[key] = {"before": REDACTED if old is not None else None, "after": REDACTED}
        else:
            changes[key] = {"before": _jsonable(old), "after": _jsonable(new)}
    return changes


class AuditService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = AuditRepository(session)

    def record(
        self,
        action: str,
        resource_type: str,
        resource_id: Any = None,
        *,
        changes: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        outcome: str = "success",
        actor_id: uuid.UUID | None = None,
        actor_username: str | None = None,
    ) -> AuditLog:
        entry = AuditLog(
            **_entry_values(
                action,
                resource_type,
                resource_id,
                changes=changes,
                details=details,
                outcome=outcome,
                actor_id=actor_id,
                actor_username=actor_username,
            )
        )
        self.repository.add(entry)
        return entry

    def entry_write(
        self,
        action: str,
        resource_type: str,
        resource_id: Any = None,
        *,
        changes: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        outcome: str = "success",
        actor_id: uuid.UUID | None = None,
        actor_username: str | None = None,
    ) -> Write:
        """The row `record` would add, as one Core INSERT for `execute_writes` in the same
        transaction (no ORM unit of work): for hot paths such as login."""
        return self.repository.insert_write(
            _entry_values(
                action,
                resource_type,
                resource_id,
                changes=changes,
                details=details,
                outcome=outcome,
                actor_id=actor_id,
                actor_username=actor_username,
            )
        )

    async def search(
        self, *, limit: int, offset: int, **filters: Any
    ) -> tuple[Sequence[AuditLog], int]:
        for key in ("since", "until"):
            value = filters.get(key)
            if isinstance(value, datetime) and value.tzinfo is None:
                filters[key] = value.replace(tzinfo=UTC)  # naive times are taken as UTC
        since, until = filters.get("since"), filters.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationFailed.for_field("since", "since must not be after until")
        return await self.repository.search(limit=limit, offset=offset, **filters)

    async def get_or_404(self, entry_id: uuid.UUID) -> AuditLog:
        entry = await self.repository.get(entry_id)
        if entry is None:
            raise NotFound("Audit record not found")
        return entry


def _entry_values(
    action: str,
    resource_type: str,
    resource_id: Any,
    *,
    changes: Mapping[str, Any] | None,
    details: Mapping[str, Any] | None,
    outcome: str,
    actor_id: uuid.UUID | None,
    actor_username: str | None,
) -> dict[str, Any]:
    ctx = get_request_context()
    return {
        "actor_id": actor_id if actor_id is not None else (ctx.actor_id if ctx else None),
        "actor_username": actor_username or (ctx.actor_username if ctx else None),
        "action": action,
        "resource_type": resource_type,
        "resource_id": str(resource_id) if resource_id is not None else None,
        "outcome": outcome,
        "changes": _jsonable(dict(changes)) if changes else None,
        "details": _redact(_jsonable(dict(details))) if details else None,
        "ip": ctx.ip if ctx else None,
        "user_agent": (ctx.user_agent or "")[:500] or None if ctx else None,
        "request_id": ctx.request_id if ctx else None,
    }


def _redact(details: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in details.items()}
