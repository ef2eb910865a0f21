from __future__ import annotations

import pytest

from app.authz.permissions import PermissionSet, is_valid_permission


@pytest.mark.parametrize(
    ("held", "requested", "allowed"),
    [
        (["patient:read"], "patient:read", True),
        (["patient:read"], "patient:update", False),
        (["patient:*"], "patient:export", True),
        (["patient:*"], "user:read", False),
        (["*:read"], "user:read", True),
        (["*:read"], "user:update", False),
        (["*:*"], "anything:at_all", True),
        ([], "patient:read", False),
        (["patient:read"], "patient:*", False),  # a wildcard request needs the wildcard
        (["patient:*"], "patient:*", True),
    ],
)
def test_allows(held: list[str], requested: str, allowed: bool) -> None:
    assert PermissionSet(held).allows(requested) is allowed


@pytest.mark.parametrize(
    ("held", "granted", "covered"),
    [
        (["patient:read"], "patient:read", True),
        (["patient:*"], "patient:read", True),
        (["patient:read"], "patient:*", False),
        (["patient:*"], "patient:*", True),
        (["*:read"], "*:read", True),
        (["*:read", "patient:*"], "*:*", False),
        (["*:*"], "*:*", True),
        (["*:*"], "patient:*", True),
        (["patient:*"], "*:read", False),
    ],
)
def test_covers(held: list[str], granted: str, covered: bool) -> None:
    assert PermissionSet(held).covers(granted) is covered


def test_set_behaviour() -> None:
    permissions = PermissionSet(["b:x", "a:y"])
    assert list(permissions) == ["a:y", "b:x"] and len(permissions) == 2
    assert permissions.allows_all(["a:y", "b:x"]) and not permissions.allows_all(["a:y", "c:z"])
    assert permissions.names == frozenset({"a:y", "b:x"})


@pytest.mark.parametrize("name", ["a:b", "*:b", "a:*", "*:*", "patient:break_glass", "x-y:z1"])
def test_valid_names(name: str) -> None:
    assert is_valid_permission(name)


@pytest.mark.parametrize("name", ["", "a", "a:", ":b", "A:b", "a:b:c", "1a:b", "a :b", "**:b"])
def test_invalid_names(name: str) -> None:
    assert not is_valid_permission(name)
