"""Request and response DTOs of the users module (never a table model)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.core.inputs import Omittable, refuse_nul

ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 200
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{2,63}$"
URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


def check_email(value: str) -> str:
    """A syntactically valid address. Intranet domains (`.local`, which the seed itself uses)
    are accepted: email-validator refuses special-use names, which suits sign-up, not an
    administrator managing a hospital's directory."""
    value = value.strip()
    if len(value) > 320:
        raise ValueError("must be at most 320 characters")
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        local, _, domain = value.rpartition("@")
        labels = domain.lower().split(".")
        if not local or labels[-1] not in SPECIAL_USE_DOMAIN_NAMES:
            raise ValueError(f"not a valid email address: {exc}") from None
        probe = ".".join([*labels, "example", "com"])
        try:
            validate_email(f"{local}@{probe}", check_deliverability=False)
        except EmailNotValidError as inner:
            raise ValueError(f"not a valid email address: {inner}") from None
        return value.lower()


def _check_attributes(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    for key, item in value.items():
        if not ATTRIBUTE_KEY_RE.match(key):
            raise ValueError(
                f"invalid attribute key {key[:64]!r}: letters, digits and _ (starting with a"
                " letter), at most 64 characters"
            )
        if len(item) > MAX_ATTRIBUTE_VALUE:
            raise ValueError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_VALUE} characters")
        if "\x00" in item:
            raise ValueError(f"attribute {key!r} may not contain NUL characters")
    return value


def _check_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 2048 or "\x00" in value or not URL_RE.match(value):
        raise ValueError("must be an http or https URL")
    return value


Email = Annotated[str, AfterValidator(check_email)]
Attributes = Annotated[dict[StrictStr, StrictStr], AfterValidator(_check_attributes)]
PictureUrl = Annotated[str | None, AfterValidator(_check_url)]
Username = Annotated[str, StringConstraints(strip_whitespace=True, pattern=USERNAME_PATTERN)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(refuse_nul)
]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(refuse_nul)
]
RoleName = Annotated[str, StringConstraints(max_length=80), AfterValidator(refuse_nul)]


class _Strict(BaseModel):
    # Unknown fields are refused (no silent mass assignment).
    model_config = ConfigDict(extra="forbid")


class ProfileUpdateRequest(_Strict):
    """PATCH /users/me: only one's own profile."""

    full_name: FullName | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    nickname: Name | None = None
    picture_url: PictureUrl = None


class UserCreate(_Strict):
    username: Username
    email: Email
    password: str = Field(min_length=1, max_length=1024)
    full_name: FullName | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    nickname: Name | None = None
    picture_url: PictureUrl = None
    roles: list[RoleName] | None = Field(default=None, max_length=50)
    is_active: StrictBool = True
    is_verified: StrictBool = False
    attributes: Attributes = Field(default_factory=dict)


class UserUpdate(_Strict):
    """PATCH /users/{id}: every field optional; only the fields sent change."""

    username: Omittable[Username] = None
    email: Omittable[Email] = None
    full_name: FullName | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    nickname: Name | None = None
    picture_url: PictureUrl = None
    is_active: Omittable[StrictBool] = None
    is_verified: Omittable[StrictBool] = None
    attributes: Omittable[Attributes] = None


class UserReplace(_Strict):
    """PUT /users/{id}: the full set of editable fields; omitted optional ones are cleared."""

    username: Username
    email: Email
    full_name: FullName | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    nickname: Name | None = None
    picture_url: PictureUrl = None
    is_active: StrictBool = True
    is_verified: StrictBool = False
    attributes: Attributes = Field(default_factory=dict)


class UserPublic(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    full_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    nickname: str | None = None
    picture_url: str | None = None
    is_active: bool
    is_verified: bool
    attributes: dict[str, str] = Field(default_factory=dict)
    roles: list[str] = Field(default_factory=list, description="Directly assigned roles")
    groups: list[str] = Field(default_factory=list, description="Groups the user belongs to")
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    is_locked: bool = False
    locked_until: datetime | None = None
    deleted_at: datetime | None = Field(
        default=None, description="Only present when deleted", exclude_if=lambda v: v is None
    )


class MeResponse(BaseModel):
    """GET /users/me: one's profile and effective access, served from the cached principal."""

    id: uuid.UUID
    username: str
    email: str
    full_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    nickname: str | None = None
    picture_url: str | None = None
    phone: str | None = None
    is_active: bool
    is_verified: bool
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login_at: datetime | None = None
    roles: list[str] = Field(default_factory=list, description="Effective roles")
    direct_roles: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)


BulkAction = Literal["activate", "deactivate", "delete", "restore", "assign_role", "remove_role"]


class BulkRequest(_Strict):
    action: BulkAction
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    role_id: uuid.UUID | None = Field(default=None, validate_default=True)
    atomic: StrictBool = False

    @field_validator("role_id")
    @classmethod
    def _role_when_needed(cls, value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
        # A field validator (not a model validator) so that the 422 names `role_id`.
        action = info.data.get("action")
        if value is None and action in ("assign_role", "remove_role"):
            raise ValueError(f"role_id is required for {action}")
        return value


class BulkItemResult(BaseModel):
    id: uuid.UUID
    status: Literal["ok", "error"]
    error: str | None = None
    detail: str | None = None


class BulkResponse(BaseModel):
    action: BulkAction
    atomic: bool
    succeeded: int
    failed: int
    results: list[BulkItemResult]
