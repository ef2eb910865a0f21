"""FastAPI dependencies of the RBAC module."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.authz.dependencies import require
from app.core.database import SessionDep
from app.core.runtime import RuntimeDep
from app.modules.rbac.service import RbacService


def get_rbac_service(session: SessionDep, runtime: RuntimeDep) -> RbacService:
    return RbacService(session, runtime)


RbacServiceDep = Annotated[RbacService, Depends(get_rbac_service)]

PermissionsRead = require("permission:read")
PermissionsCreate = require("permission:create")
PermissionsUpdate = require("permission:update")
PermissionsDelete = require("permission:delete")
RolesRead = require("role:read")
RolesCreate = require("role:create")
RolesUpdate = require("role:update")
RolesDelete = require("role:delete")
GroupsRead = require("group:read")
GroupsCreate = require("group:create")
GroupsUpdate = require("group:update")
GroupsDelete = require("group:delete")
UsersRead = require("user:read")
AuthzExplain = require("authz:explain")
