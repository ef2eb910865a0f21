"""RBAC use cases: permissions, roles and their inheritance DAG, groups and memberships, and the
engine's explain / check. Every change bumps the authorization version (all processes drop
their cached principals) and is audited in the same transaction; every grant path goes through
the delegation check first, before anything is written, and a refusal is audited."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.catalog import BUILTIN_ROLES
from app.authz.delegation import (
    DelegationDenied,
    ensure_can_grant_permissions,
    ensure_can_grant_roles,
)
from app.authz.dependencies import PRINCIPAL_STORE
from app.authz.explain import Explanation, explain, load_role_graph, role_effective_permissions
from app.authz.models import Group, Permission, Role
from app.authz.permissions import is_valid_permission, split_permission
from app.authz.principal import GUEST_ROLE, SUPERADMIN_ROLE, Principal, PrincipalStore
from app.authz.versioning import bump_authz_version
from app.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.core.runtime import Runtime
from app.modules import MODULE_NAMES
from app.modules.audit.service import AuditService, diff
from app.modules.rbac import schemas
from app.modules.rbac.repository import RbacRepository

PROTECTED_ROLES = frozenset({SUPERADMIN_ROLE, "admin", "user", GUEST_ROLE})
# Super-admin is held only by assignment (to a user, or to a group the user is in), never
# through inheritance: so every holder can be counted and the last one protected.
SUPERADMIN_NOT_INHERITABLE = "The super-admin role cannot be a parent role; assign it instead"
EVERYTHING = "*:*"


def template_permissions(role_name: str) -> set[str]:
    """What a built-in role template grants, across every module's access_control."""
    granted: set[str] = set()
    for template in BUILTIN_ROLES:
        if template.name == role_name:
            granted.update(template.permissions)
    for name in MODULE_NAMES:
        control = importlib.import_module(f"app.modules.{name}.access_control").ACCESS_CONTROL
        granted.update(control.role_grants.get(role_name, ()))
        for template in control.roles:
            if template.name == role_name:
                granted.update(template.permissions)
    return granted


def _split_refs(refs: Iterable[str]) -> tuple[list[uuid.UUID], list[str]]:
    ids: list[uuid.UUID] = []
    names: list[str] = []
    for ref in refs:
        try:
            ids.append(uuid.UUID(ref))
        except ValueError:
            names.append(ref.strip())
    return ids, names


def _permission_snapshot(p: Permission) -> dict[str, Any]:
    return {
        "name": p.name,
        "resource": p.resource,
        "action": p.action,
        "category": p.category,
        "description": p.description,
        "is_active": p.is_active,
    }


class RbacService:
    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.repository = RbacRepository(session)
        self.audit = AuditService(session)

    async def _changed(self) -> None:
        await bump_authz_version(self.session, self.runtime.state)

    async def _guarded(
        self,
        check: Awaitable[None],
        action: str,
        resource_type: str,
        resource_id: Any,
        details: dict[str, Any],
    ) -> None:
        """Run a delegation check; a refusal is audited (outcome "denied") before it is raised.
        Callers run it before writing anything, so the audit row is all the request keeps."""
        try:
            await check
        except DelegationDenied as exc:
            self.audit.record(
                action,
                resource_type,
                resource_id,
                outcome="denied",
                details={
                    **details,
                    "reason": exc.detail,
                    "exceeding_permissions": exc.extra.get("exceeding_permissions", []),
                },
            )
            raise

    async def _refuse_self_change(
        self, actor: Principal, action: str, resource_type: str, resource_id: Any, detail: str
    ) -> None:
        async def check() -> None:
            raise DelegationDenied([], detail)

        await self._guarded(check(), action, resource_type, resource_id, {})

    # ==== permissions ====================================================================
    async def get_permission(self, permission_id: uuid.UUID) -> Permission:
        permission = await self.repository.get_permission(permission_id)
        if permission is None:
            raise NotFound("Permission not found")
        return permission

    async def list_permissions(
        self,
        *,
        q: str | None,
        resource: str | None,
        category: str | None,
        is_active: bool | None,
        limit: int,
        offset: int,
        status: str | None = None,
    ) -> tuple[list[Permission], int]:
        if status is not None:  # "active" / "inactive": the "filter by status"
            wanted = status == "active"
            if is_active is not None and is_active != wanted:
                raise ValidationFailed.for_field("status", "contradicts is_active")
            is_active = wanted
        return await self.repository.list_permissions(
            q=q,
            resource=resource,
            category=category,
            is_active=is_active,
            limit=limit,
            offset=offset,
        )

    async def permissions_by_resource(self, resource: str) -> list[Permission]:
        return await self.repository.permissions_of_resource(resource)

    async def create_permission(self, data: schemas.PermissionCreate) -> Permission:
        if await self.repository.permission_by_name(data.name) is not None:
            raise Conflict(
                "A permission with this name already exists",
                code="permission_exists",
                errors=[{"field": "name", "message": "already exists"}],
            )
        resource, action = split_permission(data.name)
        permission = Permission(
            name=data.name,
            resource=resource,
            action=action,
            category=data.category or resource,
            description=data.description,
            is_system=False,
        )
        self.repository.add(permission)
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "permission.create",
            "permission",
            permission.id,
            changes=diff(None, _permission_snapshot(permission)),
        )
        return permission

    async def update_permission(
        self, actor: Principal, permission_id: uuid.UUID, data: schemas.PermissionUpdate
    ) -> Permission:
        permission = await self.get_permission(permission_id)
        before = _permission_snapshot(permission)
        values = data.model_dump(exclude_unset=True)
        name = values.get("name")
        if name is not None and name != permission.name:
            if permission.is_system:
                raise Conflict("System permissions cannot be renamed", code="system_permission")
            if await self.repository.permission_by_name(name) is not None:
                raise Conflict(
                    "A permission with this name already exists",
                    code="permission_exists",
                    errors=[{"field": "name", "message": "already exists"}],
                )
            holders = await self.repository.roles_holding_permission(permission.id)
            if holders:
                # Every holder of the renamed permission now holds the new name: a grant, so
                # only someone who holds the new name may make it.
                await self._guarded(
                    ensure_can_grant_permissions(actor, [name]),
                    "permission.update",
                    "permission",
                    permission.id,
                    {"permission": permission.name, "new_name": name, "held_by_roles": holders},
                )
            resource, action = split_permission(name)
            if "category" not in values and permission.category == permission.resource:
                permission.category = resource
            permission.name, permission.resource, permission.action = name, resource, action
        if "description" in values:
            permission.description = values["description"]
        if "category" in values:
            # null resets the category to its default, the resource
            permission.category = values["category"] or permission.resource
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "permission.update",
            "permission",
            permission.id,
            changes=diff(before, _permission_snapshot(permission)),
        )
        return permission

    async def delete_permission(self, permission_id: uuid.UUID) -> None:
        permission = await self.get_permission(permission_id)
        if permission.is_system:
            raise Conflict("System permissions cannot be deleted", code="system_permission")
        holders = await self.repository.roles_holding_permission(permission.id)
        before = _permission_snapshot(permission)
        await self.repository.delete(permission)
        await self._changed()
        self.audit.record(
            "permission.delete",
            "permission",
            permission_id,
            changes=diff(before, None),
            details={"removed_from_roles": holders},
        )

    async def toggle_permission(self, actor: Principal, permission_id: uuid.UUID) -> Permission:
        permission = await self.get_permission(permission_id)
        if permission.name == EVERYTHING:
            raise Conflict(
                "The *:* permission of the super-admin cannot be deactivated",
                code="superadmin_protected",
            )
        if not permission.is_active:
            # Re-activating grants it to every holder again: only someone who holds it may.
            await self._guarded(
                ensure_can_grant_permissions(actor, [permission.name]),
                "permission.toggle_status",
                "permission",
                permission.id,
                {"permission": permission.name},
            )
        permission.is_active = not permission.is_active
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "permission.toggle_status",
            "permission",
            permission.id,
            changes=diff(
                {"is_active": not permission.is_active}, {"is_active": permission.is_active}
            ),
        )
        return permission

    # ==== roles ==========================================================================
    async def get_role(self, role_id: uuid.UUID) -> Role:
        role = await self.repository.get_role(role_id)
        if role is None:
            raise NotFound("Role not found")
        return role

    async def role_public(self, role: Role) -> schemas.RolePublic:
        return (await self.roles_public([role]))[0]

    async def roles_public(self, roles: list[Role]) -> list[schemas.RolePublic]:
        ids = [r.id for r in roles]
        permissions = await self.repository.role_permissions(ids)
        parents = await self.repository.role_parents(ids)
        return [
            schemas.RolePublic(
                id=r.id,
                name=r.name,
                description=r.description,
                is_system=r.is_system,
                is_active=r.is_active,
                permissions=[schemas.PermissionRef.model_validate(p) for p in permissions[r.id]],
                parents=[schemas.RoleRef.model_validate(p) for p in parents[r.id]],
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in roles
        ]

    async def list_roles(
        self, *, q: str | None, is_active: bool | None, limit: int, offset: int
    ) -> tuple[list[schemas.RolePublic], int]:
        roles, total = await self.repository.list_roles(
            q=q, is_active=is_active, limit=limit, offset=offset
        )
        return await self.roles_public(roles), total

    async def _snapshot(self, role: Role) -> dict[str, Any]:
        permissions = (await self.repository.role_permissions([role.id]))[role.id]
        parents = (await self.repository.role_parents([role.id]))[role.id]
        return {
            "name": role.name,
            "description": role.description,
            "is_active": role.is_active,
            "permissions": sorted(p.name for p in permissions),
            "parents": sorted(p.name for p in parents),
        }

    async def _resolve_permissions(self, refs: list[str]) -> list[Permission]:
        ids, names = _split_refs(refs)
        found = await self.repository.permissions_by_refs(ids, names)
        known = {p.id for p in found} | {p.name for p in found}
        missing = [str(i) for i in ids if i not in known] + [n for n in names if n not in known]
        if missing:
            raise ValidationFailed.for_field(
                "permissions", f"Unknown permission: {', '.join(missing)}"
            )
        return found

    async def _resolve_roles(self, refs: list[str], field: str) -> list[Role]:
        ids, names = _split_refs(refs)
        found = await self.repository.roles_by_refs(ids, names)
        known = {r.id for r in found} | {r.name for r in found}
        missing = [str(i) for i in ids if i not in known] + [n for n in names if n not in known]
        if missing:
            raise ValidationFailed.for_field(field, f"Unknown role: {', '.join(missing)}")
        return found

    async def _ensure_role_name_free(self, name: str) -> None:
        if await self.repository.role_by_name(name) is not None:
            raise Conflict(
                "A role with this name already exists",
                code="role_exists",
                errors=[{"field": "name", "message": "already exists"}],
            )

    async def create_role(self, actor: Principal, data: schemas.RoleCreate) -> Role:
        await self._ensure_role_name_free(data.name)
        permissions = await self._resolve_permissions(data.permissions)
        parents = await self._resolve_roles(data.parents, "parents")
        if any(p.name == SUPERADMIN_ROLE for p in parents):
            raise ValidationFailed.for_field("parents", SUPERADMIN_NOT_INHERITABLE)
        details = {"name": data.name}
        await self._guarded(
            ensure_can_grant_permissions(actor, [p.name for p in permissions]),
            "role.create",
            "role",
            None,
            details,
        )
        await self._guarded(
            ensure_can_grant_roles(self.session, actor, [r.id for r in parents]),
            "role.create",
            "role",
            None,
            details,
        )
        role = Role(name=data.name, description=data.description, is_system=False)
        self.repository.add(role)
        await self.repository.flush()
        for permission in permissions:
            await self.repository.add_role_permission(role.id, permission.id)
        for parent in parents:
            await self.repository.add_parent(role.id, parent.id)
        await self._changed()
        self.audit.record(
            "role.create", "role", role.id, changes=diff(None, await self._snapshot(role))
        )
        return role

    async def create_minimal_role(self, actor: Principal, data: schemas.RoleMinimalCreate) -> Role:
        defaults = sorted(template_permissions("user"))
        return await self.create_role(
            actor,
            schemas.RoleCreate(name=data.name, description=data.description, permissions=defaults),
        )

    async def update_role(self, role_id: uuid.UUID, data: schemas.RoleUpdate) -> Role:
        role = await self.get_role(role_id)
        before = await self._snapshot(role)
        values = data.model_dump(exclude_unset=True)
        name = values.get("name")
        if name is not None and name != role.name:
            if role.is_system or role.name in PROTECTED_ROLES:
                raise Conflict("Built-in roles cannot be renamed", code="system_role")
            await self._ensure_role_name_free(name)
            role.name = name
        if "description" in values:
            role.description = values["description"]
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "role.update", "role", role.id, changes=diff(before, await self._snapshot(role))
        )
        return role

    async def delete_role(self, role_id: uuid.UUID, *, force: bool) -> None:
        role = await self.get_role(role_id)
        if role.is_system or role.name in PROTECTED_ROLES:
            raise Conflict("Built-in roles cannot be deleted", code="system_role")
        users, groups = await self.repository.role_holders(role.id)
        # Roles inheriting from it would silently lose its permissions: in use as well.
        children = await self.repository.role_children(role.id)
        if (users or groups or children) and not force:
            raise Conflict(
                f"The role is held by {len(users)} user(s) and {len(groups)} group(s) and"
                f" inherited by {len(children)} role(s); unassign it first or delete with"
                " force=true",
                code="role_in_use",
                extra={"users": len(users), "groups": len(groups), "child_roles": children},
            )
        before = await self._snapshot(role)
        if users or groups or children:
            await self.repository.unassign_role_everywhere(role.id)
        await self.repository.delete(role)
        await self._changed()
        self.audit.record(
            "role.delete",
            "role",
            role_id,
            changes=diff(before, None),
            details={
                "force": force,
                "unassigned_users": sorted(str(u) for u in users),
                "unassigned_groups": sorted(str(g) for g in groups),
                "detached_child_roles": children,
            },
        )

    async def add_role_permission(
        self, actor: Principal, role_id: uuid.UUID, permission_id: uuid.UUID
    ) -> Role:
        role = await self.get_role(role_id)
        permission = await self.get_permission(permission_id)
        await self._guarded(
            ensure_can_grant_permissions(actor, [permission.name]),
            "role.permission_add",
            "role",
            role.id,
            {"permission": permission.name},
        )
        if await self.repository.has_role_permission(role.id, permission.id):
            return role
        before = await self._snapshot(role)
        await self.repository.add_role_permission(role.id, permission.id)
        await self._changed()
        self.audit.record(
            "role.permission_add",
            "role",
            role.id,
            changes=diff(before, await self._snapshot(role), fields=["permissions"]),
            details={"permission": permission.name},
        )
        return role

    async def remove_role_permission(self, role_id: uuid.UUID, permission_id: uuid.UUID) -> Role:
        role = await self.get_role(role_id)
        permission = await self.get_permission(permission_id)
        if role.name == SUPERADMIN_ROLE and permission.name == EVERYTHING:
            raise Conflict(
                "The super-admin role cannot be emptied (it always holds *:*)",
                code="superadmin_protected",
            )
        before = await self._snapshot(role)
        if not await self.repository.remove_role_permission(role.id, permission.id):
            raise NotFound("The role does not hold this permission")
        await self._changed()
        self.audit.record(
            "role.permission_remove",
            "role",
            role.id,
            changes=diff(before, await self._snapshot(role), fields=["permissions"]),
            details={"permission": permission.name},
        )
        return role

    async def toggle_role(self, actor: Principal, role_id: uuid.UUID) -> Role:
        role = await self.get_role(role_id)
        if role.name == SUPERADMIN_ROLE:
            raise Conflict(
                "The super-admin role cannot be deactivated", code="superadmin_protected"
            )
        if not role.is_active:
            # Re-activating confers the role's permissions on every holder again (and on the
            # holders of every role that inherits from it): the same check as assigning it.
            await self._guarded(
                ensure_can_grant_roles(self.session, actor, [role.id]),
                "role.toggle_status",
                "role",
                role.id,
                {"role": role.name},
            )
        role.is_active = not role.is_active
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "role.toggle_status",
            "role",
            role.id,
            changes=diff({"is_active": not role.is_active}, {"is_active": role.is_active}),
        )
        return role

    async def _cycle_path(self, role: Role, parent: Role) -> list[uuid.UUID] | None:
        """The path parent -> ... -> role through existing inheritance edges, if any: adding
        role -> parent would then close the cycle role -> parent -> ... -> role."""
        if role.id == parent.id:
            return [role.id]
        edges: dict[uuid.UUID, list[uuid.UUID]] = {}
        for child, up in await self.repository.parent_edges():
            edges.setdefault(child, []).append(up)
        previous: dict[uuid.UUID, uuid.UUID | None] = {parent.id: None}
        queue = [parent.id]
        while queue:
            current = queue.pop(0)
            if current == role.id:
                path: list[uuid.UUID] = []
                node: uuid.UUID | None = current
                while node is not None:
                    path.append(node)
                    node = previous[node]
                return list(reversed(path))
            for up in edges.get(current, []):
                if up not in previous:
                    previous[up] = current
                    queue.append(up)
        return None

    async def add_parent(self, actor: Principal, role_id: uuid.UUID, parent_id: uuid.UUID) -> Role:
        role = await self.get_role(role_id)
        parent = await self.get_role(parent_id)
        if parent.name == SUPERADMIN_ROLE:
            raise Conflict(SUPERADMIN_NOT_INHERITABLE, code="superadmin_not_inheritable")
        await self._guarded(
            ensure_can_grant_roles(self.session, actor, [parent.id]),
            "role.parent_add",
            "role",
            role.id,
            {"parent": parent.name},
        )
        if await self.repository.has_parent(role.id, parent.id):
            return role
        cycle = await self._cycle_path(role, parent)
        if cycle is not None:
            names = await self.repository.role_names(cycle)
            text = " -> ".join([role.name, *(names[r] for r in cycle)])
            raise Conflict(
                f"Inheritance cycle refused: {text}",
                code="role_cycle",
                extra={"cycle": [role.name, *(names[r] for r in cycle)]},
            )
        before = await self._snapshot(role)
        await self.repository.add_parent(role.id, parent.id)
        await self._changed()
        self.audit.record(
            "role.parent_add",
            "role",
            role.id,
            changes=diff(before, await self._snapshot(role), fields=["parents"]),
            details={"parent": parent.name},
        )
        return role

    async def remove_parent(self, role_id: uuid.UUID, parent_id: uuid.UUID) -> Role:
        role = await self.get_role(role_id)
        parent = await self.get_role(parent_id)
        before = await self._snapshot(role)
        if not await self.repository.remove_parent(role.id, parent.id):
            raise NotFound("The role does not inherit from this role")
        await self._changed()
        self.audit.record(
            "role.parent_remove",
            "role",
            role.id,
            changes=diff(before, await self._snapshot(role), fields=["parents"]),
            details={"parent": parent.name},
        )
        return role

    async def effective_permissions(self, role_id: uuid.UUID) -> schemas.RoleEffectivePermissions:
        role = await self.get_role(role_id)
        graph = await load_role_graph(self.session)
        entries = role_effective_permissions(graph, role.id)
        return schemas.RoleEffectivePermissions(
            role_id=role.id,
            role=role.name,
            is_active=role.is_active,
            permissions=[schemas.EffectivePermission.model_validate(e) for e in entries],
        )

    # ==== groups =========================================================================
    async def get_group(self, group_id: uuid.UUID) -> Group:
        group = await self.repository.get_group(group_id)
        if group is None:
            raise NotFound("Group not found")
        return group

    async def groups_public(self, groups: list[Group]) -> list[schemas.GroupPublic]:
        ids = [g.id for g in groups]
        roles = await self.repository.group_roles(ids)
        counts = await self.repository.member_counts(ids)
        return [
            schemas.GroupPublic(
                id=g.id,
                name=g.name,
                description=g.description,
                is_active=g.is_active,
                roles=[schemas.RoleRef.model_validate(r) for r in roles[g.id]],
                member_count=counts.get(g.id, 0),
                created_at=g.created_at,
                updated_at=g.updated_at,
            )
            for g in groups
        ]

    async def group_public(self, group: Group) -> schemas.GroupPublic:
        return (await self.groups_public([group]))[0]

    async def list_groups(
        self, *, q: str | None, is_active: bool | None, limit: int, offset: int
    ) -> tuple[list[schemas.GroupPublic], int]:
        groups, total = await self.repository.list_groups(
            q=q, is_active=is_active, limit=limit, offset=offset
        )
        return await self.groups_public(groups), total

    async def _group_snapshot(self, group: Group) -> dict[str, Any]:
        roles = (await self.repository.group_roles([group.id]))[group.id]
        return {
            "name": group.name,
            "description": group.description,
            "is_active": group.is_active,
            "roles": sorted(r.name for r in roles),
        }

    async def _ensure_group_name_free(self, name: str) -> None:
        if await self.repository.group_by_name(name) is not None:
            raise Conflict(
                "A group with this name already exists",
                code="group_exists",
                errors=[{"field": "name", "message": "already exists"}],
            )

    async def create_group(self, data: schemas.GroupCreate) -> Group:
        name = data.name.strip()
        await self._ensure_group_name_free(name)
        group = Group(name=name, description=data.description, is_active=data.is_active)
        self.repository.add(group)
        await self.repository.flush()
        await self._changed()
        self.audit.record(
            "group.create", "group", group.id, changes=diff(None, await self._group_snapshot(group))
        )
        return group

    async def update_group(
        self, actor: Principal, group_id: uuid.UUID, data: schemas.GroupUpdate
    ) -> Group:
        group = await self.get_group(group_id)
        before = await self._group_snapshot(group)
        values = data.model_dump(exclude_unset=True)
        if values.get("is_active") and not group.is_active:
            # Re-activating gives the members the group's roles again: checked like assigning them.
            await self._guarded(
                ensure_can_grant_roles(
                    self.session, actor, await self.repository.group_role_ids(group.id)
                ),
                "group.update",
                "group",
                group.id,
                {"group": group.name},
            )
        deactivating = values.get("is_active") is False and group.is_active
        confers_superadmin = deactivating and await self._superadmin_group_guard(actor, group)
        name = values.get("name")
        if name is not None and name != group.name:
            await self._ensure_group_name_free(name)
            group.name = name
        if "description" in values:
            group.description = values["description"]
        if values.get("is_active") is not None:
            group.is_active = values["is_active"]
        await self.repository.flush()
        if confers_superadmin:
            await self._ensure_superadmin_remains()
        await self._changed()
        self.audit.record(
            "group.update",
            "group",
            group.id,
            changes=diff(before, await self._group_snapshot(group)),
        )
        return group

    async def delete_group(self, actor: Principal, group_id: uuid.UUID) -> None:
        group = await self.get_group(group_id)
        confers_superadmin = await self._superadmin_group_guard(actor, group)
        before = await self._group_snapshot(group)
        members = await self.repository.member_ids(group.id)
        await self.repository.delete(group)
        if confers_superadmin:
            await self._ensure_superadmin_remains()
        await self._changed()
        self.audit.record(
            "group.delete",
            "group",
            group_id,
            changes=diff(before, None),
            details={"removed_members": sorted(str(m) for m in members)},
        )

    async def _superadmin_group_guard(self, actor: Principal, group: Group) -> bool:
        """Before a change that can take super-admin rights away from the group's members:
        only a super-admin may make it (as for a user's own super-admin role). Returns whether
        the group confers super-admin, i.e. whether the change must be followed by
        `_ensure_superadmin_remains`."""
        if not await self.repository.group_has_role_named(group.id, SUPERADMIN_ROLE):
            return False
        if not actor.is_superadmin:
            raise Forbidden(
                "Only a super-admin may change a group that confers super-admin",
                code="superadmin_protected",
            )
        # Locks the super-admin role row (PostgreSQL): of two concurrent demotions, the second
        # sees the first's result.
        await self.repository.lock_role(SUPERADMIN_ROLE)
        return True

    async def _ensure_superadmin_remains(self) -> None:
        """After the change (flushed): an active super-admin must remain, or the whole request
        is refused and rolled back."""
        await self.repository.flush()
        if not await self.repository.active_holders_of_role(SUPERADMIN_ROLE):
            raise Conflict(
                "The last active super-admin cannot lose the super-admin role",
                code="last_superadmin",
            )

    async def _ensure_user(self, user_id: uuid.UUID) -> None:
        if not await self.repository.user_exists(user_id):
            raise NotFound("User not found")

    async def add_member(self, actor: Principal, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        group = await self.get_group(group_id)
        await self._ensure_user(user_id)
        if actor.user_id == user_id and not actor.is_superadmin:
            await self._refuse_self_change(
                actor, "group.member_add", "group", group.id, "You cannot add yourself to a group"
            )
        await self._guarded(
            ensure_can_grant_roles(
                self.session, actor, await self.repository.group_role_ids(group.id)
            ),
            "group.member_add",
            "group",
            group.id,
            {"user_id": str(user_id)},
        )
        if await self.repository.is_member(group.id, user_id):
            return
        await self.repository.add_member(group.id, user_id)
        await self._changed()
        self.audit.record(
            "group.member_add",
            "group",
            group.id,
            changes={"members": {"added": str(user_id)}},
            details={"user_id": str(user_id), "group": group.name},
        )

    async def remove_member(
        self, actor: Principal, group_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        group = await self.get_group(group_id)
        if actor.user_id == user_id and not actor.is_superadmin:
            await self._refuse_self_change(
                actor,
                "group.member_remove",
                "group",
                group.id,
                "You cannot change your own group memberships",
            )
        if not await self.repository.is_member(group.id, user_id):
            raise NotFound("The user is not a member of this group")
        confers_superadmin = await self._superadmin_group_guard(actor, group)
        await self.repository.remove_member(group.id, user_id)
        if confers_superadmin:
            await self._ensure_superadmin_remains()
        await self._changed()
        self.audit.record(
            "group.member_remove",
            "group",
            group.id,
            changes={"members": {"removed": str(user_id)}},
            details={"user_id": str(user_id), "group": group.name},
        )

    async def members(
        self, group_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[schemas.GroupMemberPublic], int]:
        group = await self.get_group(group_id)
        rows, total = await self.repository.members_page(group.id, limit=limit, offset=offset)
        return [schemas.GroupMemberPublic.model_validate(r) for r in rows], total

    async def _refuse_own_group(self, actor: Principal, group: Group, action: str) -> None:
        if actor.is_superadmin or actor.user_id is None:
            return
        if await self.repository.is_member(group.id, actor.user_id):
            await self._refuse_self_change(
                actor,
                action,
                "group",
                group.id,
                "You cannot change your own roles (you are a member of this group)",
            )

    async def add_group_role(
        self, actor: Principal, group_id: uuid.UUID, role_id: uuid.UUID
    ) -> Group:
        group = await self.get_group(group_id)
        role = await self.get_role(role_id)
        await self._refuse_own_group(actor, group, "group.role_add")
        await self._guarded(
            ensure_can_grant_roles(self.session, actor, [role.id]),
            "group.role_add",
            "group",
            group.id,
            {"role": role.name},
        )
        if await self.repository.has_group_role(group.id, role.id):
            return group
        before = await self._group_snapshot(group)
        await self.repository.add_group_role(group.id, role.id)
        await self._changed()
        self.audit.record(
            "group.role_add",
            "group",
            group.id,
            changes=diff(before, await self._group_snapshot(group), fields=["roles"]),
            details={"role": role.name},
        )
        return group

    async def remove_group_role(
        self, actor: Principal, group_id: uuid.UUID, role_id: uuid.UUID
    ) -> Group:
        group = await self.get_group(group_id)
        role = await self.get_role(role_id)
        await self._refuse_own_group(actor, group, "group.role_remove")
        before = await self._group_snapshot(group)
        if not await self.repository.has_group_role(group.id, role.id):
            raise NotFound("The group does not hold this role")
        confers_superadmin = role.name == SUPERADMIN_ROLE and await self._superadmin_group_guard(
            actor, group
        )
        await self.repository.remove_group_role(group.id, role.id)
        if confers_superadmin:
            await self._ensure_superadmin_remains()
        await self._changed()
        self.audit.record(
            "group.role_remove",
            "group",
            group.id,
            changes=diff(before, await self._group_snapshot(group), fields=["roles"]),
            details={"role": role.name},
        )
        return group

    async def user_groups(self, user_id: uuid.UUID) -> list[schemas.GroupPublic]:
        await self._ensure_user(user_id)
        return await self.groups_public(await self.repository.groups_of_user(user_id))

    # ==== the engine =====================================================================
    async def explain(self, user_id: uuid.UUID, permission: str) -> Explanation:
        if not is_valid_permission(permission):
            raise ValidationFailed.for_field("permission", "must be resource:action")
        result = await explain(self.session, user_id, permission)
        if result is None:
            raise NotFound("User not found")
        return result

    async def check(self, user_id: uuid.UUID, permissions: list[str]) -> list[dict[str, Any]]:
        store: PrincipalStore = self.runtime.services[PRINCIPAL_STORE]
        principal = await store.get(user_id)
        if principal is None:
            raise NotFound("User not found")
        return [
            {"permission": p, "allowed": principal.is_active and principal.has(p)}
            for p in permissions
        ]
