from app.authz.catalog import AccessControl

# Authentication endpoints act on the caller's own identity and sessions; they need no
# permission beyond being authenticated.
ACCESS_CONTROL = AccessControl()
