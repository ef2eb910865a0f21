"""The general per-principal rate limit, applied at the edge by a pure ASGI middleware.

Every API route except the public authentication routes (which carry their own per-address
and per-account limits) counts against one budget per caller: the user named by a valid access
token, or the client address for anyone else. Done here rather than as a FastAPI dependency on
every router: it needs only the token's subject (the verified-token cache makes that a dict
look-up) and a dependency costs a whole level of dependency solving on every request.

A token that is present but invalid counts against the client address; the request itself is
then refused by authentication as before.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.context import get_request_context
from app.core.errors import RateLimited, app_error_response
from app.core.runtime import Runtime
from app.core.security import TokenError

RATE_LIMIT_SCOPE = "api"


def caller_key(scope: Scope, runtime: Runtime) -> str:
    """`user:<id>` for a valid bearer token, `ip:<client address>` otherwise."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    return f"user:{runtime.tokens.decode_access_token(token.strip()).user_id}"
                except TokenError:
                    pass
            break
    return address_key()


def address_key() -> str:
    """`ip:<client address>` (X-Forwarded-For already resolved by the request plumbing)."""
    ctx = get_request_context()
    return f"ip:{ctx.ip if ctx and ctx.ip else 'unknown'}"


class PrincipalRateLimitMiddleware:
    """Installed inside RequestPlumbingMiddleware (which resolves the client address), and only
    when RATE_LIMIT_ENABLED."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        prefix = settings.API_PREFIX.rstrip("/")
        self.limited = prefix + "/"
        self.exempt = prefix + "/auth/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(self.limited)
            or path.startswith(self.exempt)
        ):
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        try:
            await runtime.limiter.hit(RATE_LIMIT_SCOPE, caller_key(scope, runtime))
        except RateLimited as exc:
            # Outside the exception handlers: answered here, exactly as they would answer it.
            await app_error_response(None, exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
