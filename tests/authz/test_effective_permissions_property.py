"""Property: after any sequence of RBAC changes, the CACHED effective permissions of every user
(PrincipalStore.get, served from the process cache between changes) equal a from-scratch
recomputation in plain Python from the table contents."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.dependencies import PRINCIPAL_STORE
from app.authz.models import (
    Group,
    GroupMember,
    GroupRole,
    Permission,
    Role,
    RoleParent,
    RolePermission,
    UserRole,
)
from app.authz.principal import PrincipalStore
from app.authz.versioning import bump_authz_version
from app.core.database import run_after_commit, utcnow
from app.core.errors import AppError
from app.modules.rbac import schemas
from app.modules.rbac.service import RbacService
from tests.factories import Factory

N_ROLES, N_PERMS, N_GROUPS, N_USERS = 5, 5, 2, 3
PERM_NAMES = ("res{i}:read", "res{i}:write", "res{i}:*", "*:read", "res{i}:delete")

role_i = st.integers(0, N_ROLES - 1)
perm_i = st.integers(0, N_PERMS - 1)
group_i = st.integers(0, N_GROUPS - 1)
user_i = st.integers(0, N_USERS - 1)
operation = st.one_of(
    st.tuples(st.just("create_role"), st.lists(perm_i, max_size=3)),
    st.tuples(st.just("add_perm"), role_i, perm_i),
    st.tuples(st.just("remove_perm"), role_i, perm_i),
    st.tuples(st.just("add_parent"), role_i, role_i),
    st.tuples(st.just("remove_parent"), role_i, role_i),
    st.tuples(st.just("toggle_role"), role_i),
    st.tuples(st.just("toggle_perm"), perm_i),
    st.tuples(st.just("assign_user"), user_i, role_i),
    st.tuples(st.just("unassign_user"), user_i, role_i),
    st.tuples(st.just("assign_group"), group_i, role_i),
    st.tuples(st.just("unassign_group"), group_i, role_i),
    st.tuples(st.just("add_member"), group_i, user_i),
    st.tuples(st.just("remove_member"), group_i, user_i),
    st.tuples(st.just("toggle_group"), group_i),
)


async def recompute(session: AsyncSession, user_id: uuid.UUID) -> tuple[set[str], set[str]]:
    """Roles and permissions of a user, straight from the tables, in plain Python."""
    roles = {r.id: r for r in (await session.scalars(select(Role))).all()}
    perms = {p.id: p for p in (await session.scalars(select(Permission))).all()}
    groups = {g.id: g for g in (await session.scalars(select(Group))).all()}
    role_perms = (
        await session.execute(select(RolePermission.role_id, RolePermission.permission_id))
    ).all()
    parents = (await session.execute(select(RoleParent.role_id, RoleParent.parent_id))).all()
    direct = (
        await session.scalars(select(UserRole.role_id).where(UserRole.user_id == user_id))
    ).all()
    memberships = (
        await session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id))
    ).all()
    group_roles = (await session.execute(select(GroupRole.group_id, GroupRole.role_id))).all()

    seeds = {r for r in direct if roles[r].is_active}
    active_groups = {g for g in memberships if groups[g].is_active}
    seeds |= {r for g, r in group_roles if g in active_groups and roles[r].is_active}
    closure, frontier = set(seeds), list(seeds)
    while frontier:
        current = frontier.pop()
        for child, parent in parents:
            if child == current and roles[parent].is_active and parent not in closure:
                closure.add(parent)
                frontier.append(parent)
    names = {perms[p].name for r, p in role_perms if r in closure and perms[p].is_active}
    return {roles[r].name for r in closure}, names


async def test_cached_effective_permissions_match_recomputation(
    app: Any, factory: Factory, backend: str
) -> None:
    runtime = app.state.runtime
    store: PrincipalStore = runtime.services[PRINCIPAL_STORE]
    superadmin = await factory.existing("superadmin", "unused")
    actor = await store.get(superadmin.id)
    assert actor is not None and actor.is_superadmin
    loop = asyncio.get_running_loop()

    async def unit_of_work(work: Callable[[RbacService, AsyncSession], Awaitable[None]]) -> None:
        """One request's transaction: commit + after-commit publication, or roll back."""
        async with runtime.session_factory() as session:
            try:
                await work(RbacService(session, runtime), session)
            except AppError:
                await session.rollback()
                session.info.clear()
                return
            await session.commit()
            await run_after_commit(session)

    async def run_example(ops: list[tuple[Any, ...]]) -> None:
        tag = uuid.uuid4().hex[:8]
        users = [await factory.user() for _ in range(N_USERS)]
        role_ids: list[uuid.UUID] = []
        perm_ids: list[uuid.UUID] = []
        group_ids: list[uuid.UUID] = []

        async def setup(service: RbacService, _: AsyncSession) -> None:
            for i in range(N_PERMS):
                name = PERM_NAMES[i].format(i=f"{tag}{i}")
                existing = await service.repository.permission_by_name(name)
                perm = existing or await service.create_permission(
                    schemas.PermissionCreate(name=name)
                )
                perm_ids.append(perm.id)
            for i in range(N_ROLES):
                role = await service.create_role(actor, schemas.RoleCreate(name=f"r{tag}{i}"))
                role_ids.append(role.id)
            for i in range(N_GROUPS):
                group = await service.create_group(schemas.GroupCreate(name=f"g{tag}{i}"))
                group_ids.append(group.id)

        await unit_of_work(setup)

        async def check() -> None:
            for user in users:
                cached = await store.get(user.id)  # through the process cache
                assert cached is not None
                async with runtime.session_factory() as session:
                    roles, permissions = await recompute(session, user.id)
                assert set(cached.permissions.names) == permissions, (ops, cached.permissions)
                assert set(cached.roles) == roles

        await check()
        for op in ops:
            await unit_of_work(_operation(op, actor, users, role_ids, perm_ids, group_ids, tag))
            await check()

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(operation, min_size=1, max_size=10))
    def property_holds(ops: list[tuple[Any, ...]]) -> None:
        asyncio.run_coroutine_threadsafe(run_example(ops), loop).result(timeout=120)

    await asyncio.to_thread(property_holds)


def _operation(
    op: tuple[Any, ...],
    actor: Any,
    users: list[Any],
    roles: list[uuid.UUID],
    perms: list[uuid.UUID],
    groups: list[uuid.UUID],
    tag: str,
) -> Callable[[RbacService, AsyncSession], Awaitable[None]]:
    kind, *args = op

    async def work(service: RbacService, session: AsyncSession) -> None:
        if kind == "create_role":
            role = await service.create_role(
                actor,
                schemas.RoleCreate(
                    name=f"r{tag}x{len(roles)}",
                    permissions=sorted({str(perms[i]) for i in args[0]}),
                ),
            )
            roles.append(role.id)
        elif kind == "add_perm":
            await service.add_role_permission(actor, roles[args[0]], perms[args[1]])
        elif kind == "remove_perm":
            await service.remove_role_permission(roles[args[0]], perms[args[1]])
        elif kind == "add_parent":
            await service.add_parent(actor, roles[args[0]], roles[args[1]])  # cycles: Conflict
        elif kind == "remove_parent":
            await service.remove_parent(roles[args[0]], roles[args[1]])
        elif kind == "toggle_role":
            await service.toggle_role(actor, roles[args[0]])
        elif kind == "toggle_perm":
            await service.toggle_permission(actor, perms[args[0]])
        elif kind in ("assign_user", "unassign_user"):
            # the users module's assignment path, reduced to its effect: the row + the bump
            user_id, role_id = users[args[0]].id, roles[args[1]]
            row = await session.get(UserRole, (user_id, role_id))
            if kind == "assign_user" and row is None:
                await session.execute(
                    insert(UserRole).values(user_id=user_id, role_id=role_id, created_at=utcnow())
                )
            elif kind == "unassign_user" and row is not None:
                await session.delete(row)
            await session.flush()
            await bump_authz_version(session, service.runtime.state)
        elif kind == "assign_group":
            await service.add_group_role(actor, groups[args[0]], roles[args[1]])
        elif kind == "unassign_group":
            await service.remove_group_role(actor, groups[args[0]], roles[args[1]])
        elif kind == "add_member":
            await service.add_member(actor, groups[args[0]], users[args[1]].id)
        elif kind == "remove_member":
            await service.remove_member(actor, groups[args[0]], users[args[1]].id)
        elif kind == "toggle_group":
            group = await service.get_group(groups[args[0]])
            await service.update_group(
                actor, group.id, schemas.GroupUpdate(is_active=not group.is_active)
            )

    return work


__all__ = ["col"]
