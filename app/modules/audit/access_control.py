from app.authz.catalog import AccessControl, PermissionSpec

ACCESS_CONTROL = AccessControl(
    permissions=(PermissionSpec("audit:read", "Read the audit trail"),),
    role_grants={"admin": ("audit:read",)},
)
