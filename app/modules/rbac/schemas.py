"""Request and response models of the RBAC API (never a table model)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from app.authz.permissions import is_valid_permission
from app.core.inputs import Omittable, Text

ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,79}$"


def _check_permission_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not is_valid_permission(value):
        raise ValueError(
            "must be resource:action (lower-case letters, digits, _ or -; * as a wildcard)"
        )
    return value


def _group_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("may not be blank")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- permissions ------------------------------------------------------------------------
class PermissionCreate(_Strict):
    name: str = Field(max_length=150, examples=["patient:read"])
    description: Text | None = Field(default=None, max_length=500)
    category: Text | None = Field(default=None, max_length=80)

    _v = field_validator("name")(_check_permission_name)


class PermissionUpdate(_Strict):
    name: Omittable[str] = Field(default=None, max_length=150)
    description: Text | None = Field(default=None, max_length=500)
    category: Text | None = Field(
        default=None, max_length=80, description="null resets it to the resource"
    )

    _v = field_validator("name")(_check_permission_name)


class PermissionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    resource: str
    action: str
    description: str | None
    category: str
    is_system: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


class PermissionRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    is_active: bool


# ---- roles ------------------------------------------------------------------------------
class RoleRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    is_active: bool


class RoleCreate(_Strict):
    name: str = Field(pattern=ROLE_NAME_PATTERN, examples=["ward_nurse"])
    description: Text | None = Field(default=None, max_length=500)
    permissions: list[Text] = Field(
        default_factory=list, max_length=500, description="Permission names or ids"
    )
    parents: list[Text] = Field(
        default_factory=list, max_length=100, description="Role names or ids"
    )


class RoleMinimalCreate(_Strict):
    name: str = Field(pattern=ROLE_NAME_PATTERN)
    description: Text | None = Field(default=None, max_length=500)


class RoleUpdate(_Strict):
    name: Omittable[str] = Field(default=None, pattern=ROLE_NAME_PATTERN)
    description: Text | None = Field(default=None, max_length=500)


class RolePublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_system: bool
    is_active: bool
    permissions: list[PermissionRef]
    parents: list[RoleRef]
    created_at: datetime
    updated_at: datetime


class PermissionSource(BaseModel):
    role: str
    path: list[str]


class EffectivePermission(BaseModel):
    permission: str
    permission_id: uuid.UUID
    inherited: bool
    sources: list[PermissionSource]


class RoleEffectivePermissions(BaseModel):
    role_id: uuid.UUID
    role: str
    is_active: bool
    permissions: list[EffectivePermission]


# ---- groups -----------------------------------------------------------------------------
class GroupCreate(_Strict):
    name: Text = Field(min_length=1, max_length=80)
    description: Text | None = Field(default=None, max_length=500)
    is_active: StrictBool = True

    _name = field_validator("name")(_group_name)


class GroupUpdate(_Strict):
    name: Omittable[Text] = Field(default=None, min_length=1, max_length=80)
    description: Text | None = Field(default=None, max_length=500)
    is_active: Omittable[StrictBool] = None
    _name = field_validator("name")(_group_name)


class GroupPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_active: bool
    roles: list[RoleRef]
    member_count: int
    created_at: datetime
    updated_at: datetime


class GroupMemberPublic(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    full_name: str | None
    is_active: bool
    joined_at: datetime


# ---- the engine -------------------------------------------------------------------------
class AuthzMe(BaseModel):
    user_id: uuid.UUID | None
    username: str
    is_guest: bool
    roles: list[str]
    direct_roles: list[str]
    groups: list[str]
    permissions: list[str]


class CheckRequest(_Strict):
    user_id: uuid.UUID
    permissions: list[str] = Field(min_length=1, max_length=100)

    @field_validator("permissions")
    @classmethod
    def _valid(cls, values: list[str]) -> list[str]:
        return [_check_permission_name(v) or "" for v in values]


class CheckDecision(BaseModel):
    permission: str
    allowed: bool


class CheckResponse(BaseModel):
    user_id: uuid.UUID
    decisions: list[CheckDecision]


class ExplainBlocker(BaseModel):
    reason: str
    name: str


class ExplainPath(BaseModel):
    via: str
    group: str | None
    roles: list[str]
    permission: str
    wildcard: bool
    path: str
    blocked_by: list[ExplainBlocker]


class ExplainReason(BaseModel):
    reason: str
    message: str


class ExplainResponse(BaseModel):
    user_id: uuid.UUID
    username: str
    permission: str
    allowed: bool
    user_active: bool
    permission_known: bool
    grants: list[ExplainPath]
    blocked: list[ExplainPath]
    reasons: list[ExplainReason]


def as_dict(model: Any) -> dict[str, Any]:
    return dict(model.model_dump())
