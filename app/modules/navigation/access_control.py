from app.authz.catalog import AccessControl, crud

ACCESS_CONTROL = AccessControl(
    permissions=(*crud("module", "navigation modules"), *crud("route", "navigation routes")),
    role_grants={"admin": ("module:*", "route:*")},
)
