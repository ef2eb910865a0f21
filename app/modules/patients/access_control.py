"""The patients module's permissions, staff roles and default field/row policies.

Coarse permissions gate the routes that are not plain reads (create, update, delete, restore,
export, break-glass); the policies decide rows and cells. Reads (list, get, stats) are open to
any caller holding at least one read policy on `patient` (the guest role included), so the
same endpoints serve staff and the public.
"""

from __future__ import annotations

from typing import Any

from app.authz.catalog import AccessControl, PermissionSpec, RoleTemplate, crud
from app.authz.filters import FieldSpec, ResourceSpec
from app.authz.policies import PolicySpec
from app.modules.patients.emergency import active_break_glass
from app.modules.patients.models import ADMISSION_STATUSES, Patient

RESOURCE = "patient"

DEMOGRAPHICS = ("mrn", "given_name", "family_name", "date_of_birth", "sex")
CONTACT = ("phone", "email", "address", "emergency_contact")
LOCATION = ("department", "ward", "bed", "admission_status", "admitted_at", "discharged_at")
CLINICAL = ("diagnosis", "medications", "allergies", "clinical_notes")
PUBLIC = ("given_name", "family_name", "ward", "admission_status", "public_status")

# Every field a policy can name, in display order (id is always present on a readable row).
PATIENT_FIELDS: tuple[str, ...] = (
    *DEMOGRAPHICS,
    *CONTACT[:3],
    "national_id",
    *LOCATION,
    "attending_clinician_id",
    *CLINICAL,
    "insurance_number",
    "emergency_contact",
    "public_consent",
    "public_status",
    "created_at",
    "updated_at",
)
# Free-text search (`q=`) runs over these, each only where the caller may read it.
SEARCHABLE_FIELDS: tuple[str, ...] = ("family_name", "given_name", "mrn")
# Fields a client may never write (server-managed).
READ_ONLY_FIELDS = frozenset({"created_at", "updated_at"})

SEXES = ("female", "male", "other", "unknown")


def _f(name: str, type_: str, **kwargs: Any) -> FieldSpec:
    return FieldSpec(name, type_, **kwargs)


PATIENT_RESOURCE = ResourceSpec(
    RESOURCE,
    Patient,
    (
        _f("mrn", "string", searchable=True, description="Medical record number (unique)"),
        _f("given_name", "string", searchable=True),
        _f("family_name", "string", searchable=True),
        _f("date_of_birth", "date"),
        _f("sex", "enum", choices=SEXES),
        _f("phone", "string"),
        _f("email", "string"),
        _f("address", "text"),
        _f("national_id", "string"),
        _f("department", "string"),
        _f("ward", "string"),
        _f("bed", "string"),
        _f("admission_status", "enum", choices=ADMISSION_STATUSES),
        _f("admitted_at", "datetime"),
        _f("discharged_at", "datetime"),
        _f("attending_clinician_id", "uuid", description="The attending clinician (a user)"),
        _f("diagnosis", "text"),
        _f("medications", "text"),
        _f("allergies", "text"),
        _f("clinical_notes", "text", sortable=False),
        _f("insurance_number", "string"),
        _f("emergency_contact", "text"),
        _f("public_consent", "boolean"),
        _f("public_status", "text", description="The message shared with families"),
        _f("created_at", "datetime", writable=False),
        _f("updated_at", "datetime", writable=False),
    ),
    soft_delete=True,
    description="Patient records",
    emergency_access=active_break_glass,
)
assert set(PATIENT_RESOURCE.field_names) == set(PATIENT_FIELDS)

ATTENDING_ME: dict[str, Any] = {"attending_clinician_id": {"_eq": "$user.id"}}
MY_WARD: dict[str, Any] = {"ward": {"_eq": "$user.ward"}}
ADMITTED: dict[str, Any] = {"admission_status": {"_eq": "admitted"}}

# Default policies (seeded by app/modules/policies/seed.py for a role + action without any
# policy on `patient` yet); administrators may edit or delete them afterwards.
_DEFAULTS: tuple[dict[str, Any], ...] = (
    *(
        {
            "role": "admin",
            "action": action,
            "fields": ["*"],
            "row_filter": None,
            "description": f"Administrators {action} every patient record",
        }
        for action in ("read", "create", "update", "delete")
    ),
    {
        "role": "doctor",
        "action": "read",
        "fields": ["*"],
        "row_filter": {
            "_or": [{"department": {"_eq": "$user.department"}}, ATTENDING_ME],
        },
        "description": "Doctors read every field of patients in their department or whom they"
        " attend",
    },
    {
        "role": "doctor",
        "action": "update",
        "fields": list(CLINICAL),
        "row_filter": ATTENDING_ME,
        "check": ATTENDING_ME,
        "description": "Doctors update the clinical fields of the patients they attend",
    },
    {
        "role": "nurse",
        "action": "read",
        "fields": [
            *DEMOGRAPHICS,
            "ward",
            "bed",
            "admission_status",
            "admitted_at",
            "discharged_at",
            "medications",
            "allergies",
        ],
        "row_filter": MY_WARD,
        "description": "Nurses read demographics, location, status, medications and allergies"
        " of patients in their ward",
    },
    {
        "role": "nurse",
        "action": "update",
        "fields": ["admission_status", "bed"],
        "row_filter": MY_WARD,
        "check": MY_WARD,
        "description": "Nurses update the status and bed of patients in their ward",
    },
    {
        "role": "receptionist",
        "action": "read",
        "fields": [*DEMOGRAPHICS, *CONTACT, "ward", "admission_status"],
        "row_filter": ADMITTED,
        "description": "Receptionists read demographics, contact, ward and status of admitted"
        " patients",
    },
    {
        "role": "receptionist",
        "action": "create",
        "fields": list(DEMOGRAPHICS),
        "row_filter": None,
        "presets": {"admission_status": "admitted"},
        "description": "Receptionists register (admit) patients with demographic fields only",
    },
    {
        "role": "guest",
        "action": "read",
        "fields": list(PUBLIC),
        "row_filter": {"public_consent": {"_eq": True}},
        "description": "The public sees what consenting patients chose to share",
    },
)

DEFAULT_POLICIES: tuple[PolicySpec, ...] = tuple(
    PolicySpec(
        role=d["role"],
        resource=RESOURCE,
        action=d["action"],
        fields=tuple(d["fields"]),
        row_filter=d.get("row_filter"),
        presets=d.get("presets"),
        check=d.get("check"),
        description=d.get("description"),
    )
    for d in _DEFAULTS
)

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
    roles=(
        RoleTemplate(
            "doctor",
            "Physicians: full records of their department and of the patients they attend",
            ("patient:read", "patient:update", "patient:export", "patient:break_glass"),
        ),
        RoleTemplate(
            "nurse",
            "Ward nurses: care information of the patients in their ward",
            ("patient:read", "patient:update"),
        ),
        RoleTemplate(
            "receptionist",
            "Front desk: registers patients, sees who is admitted",
            ("patient:read", "patient:create"),
        ),
    ),
    role_grants={"admin": ("patient:*",)},
    resources=(PATIENT_RESOURCE,),
    default_policies=DEFAULT_POLICIES,
)
