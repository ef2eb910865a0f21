from app.authz.catalog import AccessControl, PermissionSpec, crud
from app.authz.policies import ACTIONS, FieldSpec, PolicySpec, ResourceSpec
from app.modules.users.models import User

# The `user` resource for field/row policies (proves the policy engine is generic): who may see
# staff e-mail addresses and phone numbers, and which accounts.
USER_RESOURCE = ResourceSpec(
    "user",
    User,
    (
        FieldSpec("username", "string", searchable=True),
        FieldSpec("email", "string", searchable=True),
        FieldSpec("full_name", "string", searchable=True),
        FieldSpec("given_name", "string"),
        FieldSpec("family_name", "string"),
        FieldSpec("phone", "string"),
        FieldSpec("is_active", "boolean"),
        FieldSpec("is_verified", "boolean"),
        FieldSpec("attributes", "json"),
        FieldSpec("last_login_at", "datetime", writable=False),
        FieldSpec("created_at", "datetime", writable=False),
    ),
    soft_delete=True,
    description="User accounts (staff directory)",
)

USER_DEFAULT_POLICIES = (
    *(
        PolicySpec(
            role="admin",
            resource="user",
            action=action,
            description=f"Administrators {action} every user account",
        )
        for action in ACTIONS
    ),
    PolicySpec(
        role="user",
        resource="user",
        action="read",
        fields=("username", "full_name"),
        row_filter={"is_active": {"_eq": True}},
        description="Staff directory: names of active accounts (no e-mail or phone)",
    ),
)

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
    resources=(USER_RESOURCE,),
    default_policies=USER_DEFAULT_POLICIES,
)
