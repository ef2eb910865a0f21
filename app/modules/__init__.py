"""Feature modules. The order is the order routers are mounted and catalogues merged."""

MODULE_NAMES: tuple[str, ...] = (
    "auth",
    "users",
    "rbac",
    "policies",
    "navigation",
    "patients",
    "audit",
)
