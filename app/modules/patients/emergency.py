"""Break-glass: an audited, time-limited grant that opens one whole patient record to one user,
outside the policies. Honoured only while the user still holds `patient:break_glass`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.principal import Principal
from app.modules.patients.repository import PatientRepository


async def active_break_glass(
    session: AsyncSession, principal: Principal, patient_id: Any, now: datetime
) -> bool:
    """Does `principal` hold a live break-glass grant on the record?"""
    if principal.user_id is None or not principal.has("patient:break_glass"):
        return False
    if not isinstance(patient_id, uuid.UUID):
        return False
    grant = await PatientRepository(session).active_grant(principal.user_id, patient_id, now)
    return grant is not None
