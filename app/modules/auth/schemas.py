"""Request and response bodies of the authentication endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.core.inputs import Text

# Generous upper bounds: the password policy (PASSWORD_MAX_LENGTH) refuses long passwords
# before they reach the hash; these only stop absurd payloads at the door.
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class RegisterRequest(BaseModel):
    # Anything else (is_superuser, roles, is_active, ...) is ignored: mass assignment does nothing.
    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    email: EmailStr = Field(max_length=320)
    password: Password
    full_name: Text | None = Field(default=None, max_length=200)


class LoginRequest(BaseModel):
    username: Text = Field(min_length=1, max_length=320, description="Username or email")
    password: Password


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(BaseModel):
    refresh_token: Token


class UserPublic(BaseModel):
    """What a user may see of their own account (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    full_name: str | None = None
    is_active: bool
    is_verified: bool
    created_at: datetime


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    current: bool = False


class ChangePasswordRequest(BaseModel):
    current_password: Password
    new_password: Password


class ForgotPasswordRequest(BaseModel):
    email: Text = Field(min_length=1, max_length=320)


class ResetPasswordRequest(BaseModel):
    token: Token
    new_password: Password


class RequestVerifyEmailRequest(BaseModel):
    email: Text | None = Field(default=None, max_length=320)


class VerifyEmailRequest(BaseModel):
    token: Token


class Accepted(BaseModel):
    detail: str
