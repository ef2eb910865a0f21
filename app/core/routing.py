"""Route matching that scales with the number of modules, not the number of routes.

FastAPI (0.137+) keeps included routers as a tree and, for each request, walks it in order:
every route of every earlier router is tried (a regex match, ~2 us each), and every level of
nesting is matched twice (once to choose, once to dispatch). Two rules keep that cheap:

* Each module's routers are `ModuleRouter`s: a router with a literal prefix (`/patients`) that
  refuses, with one substring test, a path that cannot lie under that prefix, before any of its
  routes is tried.
* A module exposes a flat tuple `routers` that the application includes directly: one level of
  nesting, never a router that includes routers.

The test is deliberately loose (the prefix as a path segment anywhere in the path, so it needs
no knowledge of the API prefix the router is mounted under): a false positive only means the
router's own routes are tried as usual, so matching stays exactly FastAPI's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


class ModuleRouter(APIRouter):
    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        if not prefix.startswith("/") or prefix.endswith("/") or "{" in prefix:
            raise ValueError(f"a module router needs a literal prefix such as '/users': {prefix!r}")
        super().__init__(prefix=prefix, **kwargs)
        self._segment = prefix + "/"

    def include_router(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "a ModuleRouter holds routes only: export sibling routers in the module's `routers`"
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope["path"]
        if self._segment not in path and not path.endswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)
