from app.authz.catalog import AccessControl, PermissionSpec, crud

ACCESS_CONTROL = AccessControl(
    permissions=(
        *crud(
            "user",
            "users",
            ("read_deleted", "See soft-deleted users"),
            ("unlock", "Unlock locked accounts"),
        ),
        PermissionSpec("profile:read", "Read one's own profile"),
        PermissionSpec("profile:update", "Update one's own profile"),
    ),
    role_grants={
        "admin": ("user:*",),
        "user": ("profile:read", "profile:update"),
    },
)
