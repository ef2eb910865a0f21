"""Per-request context (request id, client address, user agent, actor) carried in contextvars,
so logs and the audit trail can read it without threading it through every call."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class RequestContext:
    request_id: str
    ip: str | None = None
    user_agent: str | None = None
    actor_id: uuid.UUID | None = None
    actor_username: str | None = None
    session_id: uuid.UUID | None = None
    extra: dict[str, object] = field(default_factory=dict)


_context: ContextVar[RequestContext | None] = ContextVar("gatehouse_request_context", default=None)


def set_request_context(ctx: RequestContext | None) -> object:
    return _context.set(ctx)


def reset_request_context(token: object) -> None:
    _context.reset(token)  # type: ignore[arg-type]


def get_request_context() -> RequestContext | None:
    return _context.get()


def current_request_id() -> str | None:
    ctx = _context.get()
    return ctx.request_id if ctx else None


def set_actor(
    actor_id: uuid.UUID | None, username: str | None, session_id: uuid.UUID | None
) -> None:
    ctx = _context.get()
    if ctx is not None:
        ctx.actor_id = actor_id
        ctx.actor_username = username
        ctx.session_id = session_id
