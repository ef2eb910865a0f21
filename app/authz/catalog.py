"""What a module declares about itself to the authorization engine (in its access_control.py):
the permissions its routes check, what the built-in role templates grant, and (for the policy
engine) the resources whose fields and rows policies can restrict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PermissionSpec:
    name: str  # "resource:action"
    description: str


@dataclass(frozen=True)
class RoleTemplate:
    name: str
    description: str
    permissions: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessControl:
    """A module's contribution to the catalogue."""

    permissions: tuple[PermissionSpec, ...] = ()
    # role template name -> permissions this module adds to it
    role_grants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # extra roles this module introduces (e.g. doctor, nurse)
    roles: tuple[RoleTemplate, ...] = ()
    # policy resources (filled by the policy engine issue); opaque here
    resources: tuple[Any, ...] = ()
    default_policies: tuple[Any, ...] = ()


def crud(resource: str, noun: str, *extra: tuple[str, str]) -> tuple[PermissionSpec, ...]:
    specs = [
        PermissionSpec(f"{resource}:read", f"Read {noun}"),
        PermissionSpec(f"{resource}:create", f"Create {noun}"),
        PermissionSpec(f"{resource}:update", f"Update {noun}"),
        PermissionSpec(f"{resource}:delete", f"Delete {noun}"),
    ]
    specs.extend(PermissionSpec(f"{resource}:{action}", text) for action, text in extra)
    return tuple(specs)


BUILTIN_ROLES: tuple[RoleTemplate, ...] = (
    RoleTemplate("superadmin", "Everything; cannot be deleted or emptied", ("*:*",)),
    RoleTemplate("admin", "Administers users, roles, groups, navigation, policies and records"),
    RoleTemplate("user", "Default role of new users: their own profile and sessions"),
    RoleTemplate("guest", "The anonymous public"),
)
