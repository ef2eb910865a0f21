"""FastAPI dependencies that authenticate the caller and enforce permissions.

Routes declare what they need (`Annotated[Principal, Depends(require_permission("user:read"))]`);
nothing is checked by hand inside handlers. The path is I/O-free when the principal is cached:
a JWT decode, a set look-up for revocation and a dictionary look-up for the principal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from app.authz.principal import Principal, PrincipalStore
from app.authz.rate_limit import RATE_LIMIT_SCOPE, address_key
from app.core.context import set_actor
from app.core.errors import Forbidden, Unauthorized
from app.core.runtime import get_runtime
from app.core.security import TokenError

PRINCIPAL_STORE = "principal_store"


def principal_store(conn: HTTPConnection) -> PrincipalStore:
    store: PrincipalStore = get_runtime(conn).services[PRINCIPAL_STORE]
    return store


def _bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Invalid authorization header")
    return token.strip()


async def get_principal(conn: HTTPConnection) -> Principal:
    """The caller: the user named by a valid access token, or the guest when no token is sent.
    A token that is present but invalid, expired or revoked is refused, never downgraded."""
    cached: Principal | None = getattr(conn.state, "principal", None)
    if cached is not None:
        return cached
    runtime = get_runtime(conn)
    store = principal_store(conn)
    token = _bearer_token(conn)
    if token is None:
        principal = await store.guest()
    else:
        try:
            claims = runtime.tokens.decode_access_token(token)
        except TokenError:
            raise Unauthorized("Invalid or expired token")
        if runtime.state.is_session_revoked(claims.session_id):
            raise Unauthorized("Session has been revoked")
        user = await store.get(claims.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("Invalid or expired token")
        principal = user.with_session(claims.session_id)
        set_actor(principal.user_id, principal.username, claims.session_id)
        conn.state.authenticated = True
    conn.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]

BEARER_SCHEME = "OAuth2PasswordBearer"


def install_bearer_security(app: FastAPI, token_url: str) -> None:
    """Declare the OAuth2 password flow in the OpenAPI document, so Swagger's Authorize button
    logs in at `token_url` and sends the bearer token on every call. Declared in the document
    rather than as a security dependency: FastAPI resolves security dependencies with extra
    work on every request, and `get_principal` reads the header itself."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        if BEARER_SCHEME not in schemes:
            schemes[BEARER_SCHEME] = {
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": token_url, "scopes": {}}},
            }
            # Optional everywhere: public routes answer the guest when no token is sent.
            schema["security"] = [{BEARER_SCHEME: []}, {}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def get_authenticated(principal: CurrentPrincipal) -> Principal:
    if principal.is_guest:
        raise Unauthorized()
    return principal


AuthenticatedUser = Annotated[Principal, Depends(get_authenticated)]


def require_permission(
    *permissions: str,
) -> Callable[[HTTPConnection], Coroutine[Any, Any, Principal]]:
    """A dependency that passes the principal through when it holds every named permission:
    401 for the guest (log in first), 403 for a user who lacks one."""
    # Interned like the names in every PermissionSet: a granted check is a pointer comparison.
    permissions = tuple(sys.intern(p) for p in permissions)

    # Takes the connection and calls get_principal itself (it memoises the principal on the
    # request) rather than depending on it: one level of dependency solving less, on every
    # protected request.
    async def dependency(conn: HTTPConnection) -> Principal:
        principal = await get_principal(conn)
        missing = [p for p in permissions if not principal.has(p)]
        if missing:
            if principal.is_guest:
                raise Unauthorized()
            raise Forbidden(
                f"Missing permission: {', '.join(missing)}",
                code="permission_denied",
                extra={"missing_permissions": missing},
            )
        return principal

    dependency.__name__ = "require_" + "_".join(
        p.replace(":", "_").replace("*", "any") for p in permissions
    )
    return dependency


def require(*permissions: str) -> Any:
    """`Annotated` alias builder: `UsersRead = require("user:read")`."""
    return Annotated[Principal, Depends(require_permission(*permissions))]


async def rate_limit_principal(conn: HTTPConnection) -> None:
    """The general per-principal rate limit (per client address for the guest), as a dependency:
    for the authenticated auth routes, which the edge middleware (app/authz/rate_limit.py)
    leaves to their own limits. Counts against the same budget as the middleware."""
    limiter = get_runtime(conn).limiter
    if not limiter.enabled:
        return
    principal = await get_principal(conn)
    key = f"user:{principal.user_id}" if principal.user_id is not None else address_key()
    await limiter.hit(RATE_LIMIT_SCOPE, key)
