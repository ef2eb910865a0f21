"""Default policies declared by modules (`AccessControl.default_policies`, PolicySpec): inserted
for a (role, resource, action) that has no policy yet, so an administrator's later edits are
never undone. Idempotent."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.models import Policy
from app.authz.policies import default_policies
from app.modules.policies.repository import PolicyRepository


async def seed(
    session: AsyncSession, *, settings: Any, hasher: Any, demo: bool, report: Any
) -> None:
    repository = PolicyRepository(session)
    specs = default_policies()
    role_ids = await repository.role_ids_by_name(sorted({s.role for s in specs}))
    seen: set[tuple[str, str, str]] = set()
    for spec in specs:
        role_id = role_ids.get(spec.role)
        if role_id is None:
            continue
        key = (spec.role, spec.resource, spec.action)
        if key not in seen and await repository.exists_for(role_id, spec.resource, spec.action):
            seen.add(key)
            continue
        if key in seen and not await repository.exists_for(role_id, spec.resource, spec.action):
            continue
        seen.add(key)
        await repository.add(
            Policy(
                role_id=role_id,
                resource=spec.resource,
                action=spec.action,
                fields=list(spec.fields),
                row_filter=spec.row_filter,
                presets=spec.presets,
                check=spec.check,
                description=spec.description,
            )
        )
