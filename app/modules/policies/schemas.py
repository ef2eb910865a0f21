"""Policies API: request / response DTOs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from app.core.inputs import refuse_nul

Action = Literal["read", "create", "update", "delete"]


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role_id: uuid.UUID
    resource: str = Field(min_length=1, max_length=80)
    action: Action
    fields: list[str] = Field(default_factory=lambda: ["*"], max_length=500)
    row_filter: dict[str, Any] | None = None
    presets: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=500)
    is_active: StrictBool = True

    _no_nul = field_validator("fields", "row_filter", "presets", "check", "description")(refuse_nul)


class PolicyUpdate(BaseModel):
    """Every field optional; `null` for row_filter / presets / check clears it."""

    model_config = ConfigDict(extra="forbid")

    role_id: uuid.UUID | None = None
    resource: str | None = Field(default=None, min_length=1, max_length=80)
    action: Action | None = None
    fields: list[str] | None = Field(default=None, max_length=500)
    row_filter: dict[str, Any] | None = None
    presets: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=500)
    is_active: StrictBool | None = None

    _no_nul = field_validator("fields", "row_filter", "presets", "check", "description")(refuse_nul)


class PolicyPublic(BaseModel):
    id: uuid.UUID
    role_id: uuid.UUID
    resource: str
    action: str
    fields: list[str]
    row_filter: dict[str, Any] | None
    presets: dict[str, Any] | None
    check: dict[str, Any] | None
    description: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class PolicyPreviewRequest(BaseModel):
    """A proposed change: `create` with `policy`, `update` with `policy_id` and `changes`,
    `delete` with `policy_id`. Nothing is saved."""

    model_config = ConfigDict(extra="forbid")

    operation: Literal["create", "update", "delete"]
    policy_id: uuid.UUID | None = None
    policy: PolicyCreate | None = None
    changes: PolicyUpdate | None = None


class PreviewChange(BaseModel):
    resource: str
    action: str
    fields_gained: list[str]
    fields_lost: list[str]
    records_gained: int
    records_lost: int


class PreviewUser(BaseModel):
    user_id: uuid.UUID | None = Field(description="null for the anonymous public (guest)")
    username: str | None = Field(
        description="'guest' for the public; null unless the caller may read users (user:read)"
    )
    changes: list[PreviewChange]


class PolicyPreviewResponse(BaseModel):
    operation: str
    role_ids: list[uuid.UUID]
    affected_users_total: int
    users: list[PreviewUser]
    truncated: bool


class FieldDescription(BaseModel):
    name: str
    type: str
    choices: list[str]
    operators: list[str]
    searchable: bool
    sortable: bool
    filterable: bool
    writable: bool
    description: str | None


class ResourceDescription(BaseModel):
    name: str
    description: str | None
    id_field: str
    soft_delete: bool
    actions: list[str]
    fields: list[FieldDescription]
    variables: list[str]


class AuthzFields(BaseModel):
    resource: str
    read: list[str]
    read_everywhere: list[str]
    read_conditional: list[str]
    create: list[str]
    update: list[str]
    can_create: bool
    can_update: bool
    can_delete: bool
    presets: dict[str, list[str]]


class RecordExplanation(BaseModel):
    user_id: uuid.UUID
    resource: str
    record_id: str
    admitted: bool
    policies: list[dict[str, Any]]
    admitting_policies: list[dict[str, Any]]
    fields: dict[str, dict[str, Any]]
    emergency_access: bool = Field(
        False,
        description="A grant of the resource's module opens this whole record to the user,"
        " outside the policies (patients: a live break-glass grant)",
    )
    note: str | None = None
