from app.authz.catalog import AccessControl, PermissionSpec, crud

ACCESS_CONTROL = AccessControl(
    permissions=(
        *crud("permission", "permissions"),
        *crud("role", "roles"),
        *crud("group", "groups"),
        PermissionSpec("authz:explain", "Explain and check other users' authorization"),
    ),
    role_grants={
        # The admin also holds the `user` template's safe defaults, so that delegation lets it
        # create minimal roles and hand out the default role.
        "admin": (
            "permission:read",
            "role:*",
            "group:*",
            "authz:explain",
            "profile:read",
            "profile:update",
        ),
    },
)
