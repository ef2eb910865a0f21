"""Response DTOs of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Outcome = Literal["success", "failure", "denied"]


class AuditLogPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    actor_id: uuid.UUID | None = None
    actor_username: str | None = None
    action: str
    resource_type: str
    resource_id: str | None = None
    outcome: str
    changes: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
