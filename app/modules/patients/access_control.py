from app.authz.catalog import AccessControl, PermissionSpec, crud

ACCESS_CONTROL = AccessControl(
    permissions=(
        *crud(
            "patient",
            "patient records",
            ("export", "Export patient records"),
            ("restore", "Restore deleted patient records"),
        ),
        PermissionSpec("patient:break_glass", "Emergency full read of one record, audited"),
    ),
    role_grants={"admin": ("patient:*",)},
)
