"""Demo patients (`serve --demo`): loaded only when the table is empty. Idempotent.

The default patient policies are declared in access_control.py (DEFAULT_POLICIES) and seeded
by the policies module's seed, like every module's defaults.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.security import PasswordHasher
from app.modules.patients.demo_data import PatientGenerator
from app.modules.patients.models import Patient

DEMO_PATIENTS = 300


async def seed_demo_patients(session: AsyncSession, count: int = DEMO_PATIENTS) -> int:
    if await session.scalar(select(func.count()).select_from(Patient)):
        return 0
    rows: list[dict[str, Any]] = list(PatientGenerator(seed=2026).rows(count))
    await session.execute(insert(Patient), rows)
    return count


async def seed(
    session: AsyncSession,
    *,
    settings: Settings,
    hasher: PasswordHasher,
    demo: bool,
    report: Any,
) -> None:
    if demo:
        await seed_demo_patients(session)
