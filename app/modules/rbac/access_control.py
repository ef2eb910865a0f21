from app.authz.catalog import AccessControl, PermissionSpec, crud

ACCESS_CONTROL = AccessControl(
    permissions=(
        *crud("permission", "permissions"),
        *crud("role", "roles"),
        *crud("group", "groups"),
        PermissionSpec("authz:explain", "Explain and check other users' authorization"),
    ),
    role_grants={
        "admin": ("permission:read", "role:*", "group:*", "authz:explain"),
    },
)
