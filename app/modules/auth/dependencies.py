"""FastAPI dependencies of the authentication endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request

from app.authz.dependencies import AuthenticatedUser, rate_limit_principal
from app.authz.principal import Principal
from app.core.errors import BadRequest, Unauthorized
from app.modules.auth.schemas import LoginRequest

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def login_credentials(request: Request) -> LoginRequest:
    """JSON {username, password}, or the OAuth2 password form (Swagger's Authorize button)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if content_type in FORM_TYPES:
        form = await request.form()
        grant_type = form.get("grant_type")
        if grant_type not in (None, "", "password"):
            raise BadRequest(
                "Unsupported grant_type",
                code="unsupported_grant_type",
                errors=[{"field": "grant_type", "message": "Only the password grant is supported"}],
            )
        data = {k: form.get(k) for k in ("username", "password") if form.get(k) is not None}
    else:
        try:
            data = await request.json()
        except ValueError:
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "Invalid JSON body", "type": "json_invalid"}]
            )
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", *err["loc"]),
                    "msg": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors()
            ]
        )


LoginCredentials = Annotated[LoginRequest, Depends(login_credentials)]


async def session_user(principal: AuthenticatedUser) -> Principal:
    """An authenticated caller holding a session (every access token names one)."""
    if principal.session_id is None:
        raise Unauthorized()
    return principal


SessionUser = Annotated[Principal, Depends(session_user)]

# The general per-principal limit for the authenticated auth routes (the public ones have
# their own per-address and per-account limits in the service).
PrincipalRateLimit = Depends(rate_limit_principal)


# OpenAPI description of the login body: JSON or the OAuth2 password form.
LOGIN_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "description": "Username or email"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}
