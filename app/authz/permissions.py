"""`resource:action` permissions with `*` wildcards, and the route dependency that checks them.

A check against a principal's effective set is four hash look-ups whatever the size of the
role graph: the graph was flattened once, when the principal was built.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

PERMISSION_RE = re.compile(r"^(\*|[a-z][a-z0-9_\-]{0,79}):(\*|[a-z][a-z0-9_\-]{0,79})$")
WILDCARD = "*"
MAX_MEMOISED_DECISIONS = 256


def is_valid_permission(name: str) -> bool:
    return bool(PERMISSION_RE.match(name))


def split_permission(name: str) -> tuple[str, str]:
    resource, _, action = name.partition(":")
    return resource, action


class PermissionSet:
    """An immutable effective permission set with wildcard-aware membership.

    The wildcards are split out once, at construction, so a check is at most one set look-up
    for the exact name plus two for the wildcard parts, with no string building."""

    __slots__ = ("_all", "_any_action_of", "_any_resource_for", "_decisions", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        # Interned: every cached principal shares one string object per permission name, which
        # keeps thousands of cached principals small and their look-ups in the CPU caches.
        self._names = frozenset(map(sys.intern, names))
        self._all = "*:*" in self._names
        any_action_of: set[str] = set()  # resources held as "resource:*"
        any_resource_for: set[str] = set()  # actions held as "*:action"
        for name in self._names:
            resource, _, action = name.partition(":")
            if action == WILDCARD:
                any_action_of.add(resource)
            if resource == WILDCARD:
                any_resource_for.add(action)
        self._any_action_of = frozenset(any_action_of)
        self._any_resource_for = frozenset(any_resource_for)
        # Decisions already taken, by permission name. Routes check a small, fixed set of
        # names, so after the first request a check is one look-up in a small dict whatever
        # the size of the role graph behind the set (flat cost from depth 1 to depth n).
        self._decisions: dict[str, bool] = {}

    def allows(self, permission: str) -> bool:
        decision = self._decisions.get(permission)
        if decision is None:
            decision = self._decide(permission)
            # Bounded: names sent by clients (e.g. to /authz/check) must not grow it forever.
            if len(self._decisions) < MAX_MEMOISED_DECISIONS:
                self._decisions[permission] = decision
        return decision

    def _decide(self, permission: str) -> bool:
        if permission in self._names or self._all:
            return True
        resource, _, action = permission.partition(":")
        return resource in self._any_action_of or action in self._any_resource_for

    def allows_all(self, permissions: Iterable[str]) -> bool:
        return all(self.allows(p) for p in permissions)

    def covers(self, granted: str) -> bool:
        """True when holding this set means also holding `granted` (which may be a wildcard):
        used by delegation checks, where granting `patient:*` needs `patient:*` or `*:*`."""
        if self.allows(granted) and WILDCARD not in granted:
            return True
        names = self._names
        if "*:*" in names:
            return True
        resource, action = split_permission(granted)
        if resource == WILDCARD and action == WILDCARD:
            return False
        if resource == WILDCARD:
            return f"*:{action}" in names
        if action == WILDCARD:
            return f"{resource}:*" in names
        return False

    @property
    def names(self) -> frozenset[str]:
        return self._names

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"PermissionSet({sorted(self._names)!r})"
