from app.authz.catalog import AccessControl, crud

ACCESS_CONTROL = AccessControl(
    permissions=crud("policy", "field and row policies"),
    role_grants={"admin": ("policy:*",)},
)
