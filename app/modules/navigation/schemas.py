"""Request / response shapes of the navigation API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from app.authz.permissions import is_valid_permission
from app.core.inputs import Omittable, Text, refuse_nul
from app.modules.navigation.models import NavModule, NavRoute

MODULE_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,79}$"
ROUTE_NAME_PATTERN = r"^[a-z][a-z0-9_.\-]{0,119}$"
MAX_METADATA_BYTES = 8192
ORDER_LIMIT = 1_000_000


def _check_permission(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not is_valid_permission(value):
        raise ValueError("must be a permission of the form resource:action (e.g. patient:read)")
    if "*" in value:
        raise ValueError("must name one permission, not a wildcard")
    return value


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:  # nested too deeply, an integer beyond 64 bits, ...
        raise ValueError(f"must be storable JSON ({exc})") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValueError(f"must serialize to at most {MAX_METADATA_BYTES} bytes")
    if orjson.loads(encoded) != value:  # NaN / Infinity would be stored as null
        raise ValueError("must be storable JSON (no NaN or Infinity)")
    return refuse_nul(value)  # in a key or a string, at any depth: as every other text field


def _check_path(value: str | None) -> str | None:
    if value is not None and not value.startswith("/"):
        raise ValueError("must start with /")
    return value


# ---- modules ---------------------------------------------------------------------------------
class ModuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODULE_NAME_PATTERN, description="Unique slug")
    label: Text = Field(min_length=1, max_length=120)
    icon: Text | None = Field(default=None, max_length=80)
    order: StrictInt = Field(default=0, ge=-ORDER_LIMIT, le=ORDER_LIMIT)
    description: Text | None = Field(default=None, max_length=500)
    is_active: StrictBool = True


class ModuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Omittable[str] = Field(default=None, pattern=MODULE_NAME_PATTERN)
    label: Omittable[Text] = Field(default=None, min_length=1, max_length=120)
    icon: Text | None = Field(default=None, max_length=80)
    order: Omittable[StrictInt] = Field(default=None, ge=-ORDER_LIMIT, le=ORDER_LIMIT)
    description: Text | None = Field(default=None, max_length=500)
    is_active: Omittable[StrictBool] = None


class ModulePublic(BaseModel):
    id: uuid.UUID
    name: str
    label: str
    icon: str | None
    order: int
    description: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, module: NavModule) -> ModulePublic:
        return cls.model_validate(module, from_attributes=True)


# ---- routes ----------------------------------------------------------------------------------
class RouteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Text = Field(min_length=1, max_length=500)
    name: str = Field(pattern=ROUTE_NAME_PATTERN, description="Unique name")
    label: Text = Field(min_length=1, max_length=120)
    icon: Text | None = Field(default=None, max_length=80)
    order: StrictInt = Field(default=0, ge=-ORDER_LIMIT, le=ORDER_LIMIT)
    module_id: uuid.UUID
    parent_id: uuid.UUID | None = None
    required_permission: str | None = Field(default=None, max_length=161)
    show_in_sidebar: StrictBool = True
    is_active: StrictBool = True
    metadata: dict[str, Any] = Field(default_factory=dict)

    _permission = field_validator("required_permission")(_check_permission)
    _metadata = field_validator("metadata")(_check_metadata)
    _path = field_validator("path")(_check_path)


class RouteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Omittable[Text] = Field(default=None, min_length=1, max_length=500)
    name: Omittable[str] = Field(default=None, pattern=ROUTE_NAME_PATTERN)
    label: Omittable[Text] = Field(default=None, min_length=1, max_length=120)
    icon: Text | None = Field(default=None, max_length=80)
    order: Omittable[StrictInt] = Field(default=None, ge=-ORDER_LIMIT, le=ORDER_LIMIT)
    module_id: Omittable[uuid.UUID] = None
    parent_id: uuid.UUID | None = None
    required_permission: str | None = Field(default=None, max_length=161)
    show_in_sidebar: Omittable[StrictBool] = None
    is_active: Omittable[StrictBool] = None
    metadata: Omittable[dict[str, Any]] = None
    _permission = field_validator("required_permission")(_check_permission)
    _metadata = field_validator("metadata")(_check_metadata)
    _path = field_validator("path")(_check_path)


class RoutePublic(BaseModel):
    id: uuid.UUID
    path: str
    name: str
    label: str
    icon: str | None
    order: int
    module_id: uuid.UUID
    parent_id: uuid.UUID | None
    required_permission: str | None
    show_in_sidebar: bool
    is_active: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, route: NavRoute) -> RoutePublic:
        return cls(
            id=route.id,
            path=route.path,
            name=route.name,
            label=route.label,
            icon=route.icon,
            order=route.order,
            module_id=route.module_id,
            parent_id=route.parent_id,
            required_permission=route.required_permission,
            show_in_sidebar=route.show_in_sidebar,
            is_active=route.is_active,
            metadata=dict(route.meta or {}),
            created_at=route.created_at,
            updated_at=route.updated_at,
        )


# ---- sidebar (documentation of the pre-serialized response) ---------------------------------
class SidebarModule(BaseModel):
    id: uuid.UUID
    name: str
    label: str
    icon: str | None
    order: int
    description: str | None


class SidebarNode(BaseModel):
    id: uuid.UUID
    name: str
    label: str
    path: Text | None = Field(description="null on a group node the caller may not open")
    icon: str | None
    order: int
    clickable: bool = Field(description="false when the node is kept only to hold visible children")
    metadata: dict[str, Any]
    children: list[SidebarNode]


class SidebarSection(BaseModel):
    module: SidebarModule
    routes: list[SidebarNode]
