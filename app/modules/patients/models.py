"""Patient records and break-glass grants."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, func, text
from sqlmodel import Field

from app.core.database import SoftDeleteMixin, TableBase, UTCDateTime, datetime_field

ADMISSION_STATUSES = ("admitted", "outpatient", "discharged")
# The columns the default read policies (access_control.py) and the soft delete filter on.
ROW_FILTER_COLUMNS = (
    "department",
    "attending_clinician_id",
    "ward",
    "admission_status",
    "public_consent",
    "deleted_at",
)


class Patient(TableBase, SoftDeleteMixin, table=True):
    __tablename__ = "patients"
    __table_args__ = (
        # Lists (service.search) find the ids and sort keys of at most COUNT_CAP matching rows
        # in order, `key [DESC] [NULLS LAST], ..., id`, then read the page's rows only. These
        # indexes serve that first step from the index alone on PostgreSQL (INCLUDE: the
        # columns the default row policies and the soft delete filter on), for the default
        # order by name, a ward's admissions and the prefix search.
        Index(
            "ix_patients_family_given_id",
            "family_name",
            "given_name",
            "id",
            postgresql_include=list(ROW_FILTER_COLUMNS),
        ),
        *(
            Index(
                f"ix_patients_{column}_family",
                column,
                "family_name",
                "given_name",
                "id",
                postgresql_include=["deleted_at"],
            )
            for column in ("department", "ward", "admission_status")
        ),
        # A ward's patients, latest admission first (sort=-admitted_at: DESC NULLS LAST).
        # SQLite cannot declare NULLS LAST in an index: PostgreSQL only, appended to the
        # migration by scripts/finish_initial_migration.py.
        Index(
            "ix_patients_ward_admitted",
            "ward",
            text("admitted_at DESC NULLS LAST"),
            "id",
            postgresql_include=["department", "attending_clinician_id", "deleted_at"],
            info={"postgresql_only": True},
        ),
        # Prefix search (`q=`): lower(field) LIKE 'q%', one index per searchable field
        # (text_pattern_ops makes LIKE 'q%' a range scan whatever the collation). The name
        # indexes cover the default order and the row filters (a common name matches many
        # rows); an MRN prefix matches few. PostgreSQL only.
        *(
            Index(
                f"ix_patients_{name}_prefix",
                func.lower(text(name)).label(f"{name}_lower"),
                postgresql_ops={f"{name}_lower": "text_pattern_ops"},
                postgresql_include=include,
                info={"postgresql_only": True},
            )
            for name, include in (
                ("family_name", ["family_name", "given_name", "id", *ROW_FILTER_COLUMNS]),
                ("given_name", ["family_name", "given_name", "id", *ROW_FILTER_COLUMNS]),
                ("mrn", []),
            )
        ),
    )

    mrn: str = Field(max_length=40, unique=True, index=True)
    given_name: str = Field(max_length=100, index=True)
    family_name: str = Field(max_length=100)  # ix_patients_family_given_id
    date_of_birth: date | None = Field(default=None, index=True)
    sex: str | None = Field(default=None, max_length=20, index=True)
    phone: str | None = Field(default=None, max_length=50, index=True)
    email: str | None = Field(default=None, max_length=320, index=True)
    address: str | None = Field(default=None, max_length=500)
    national_id: str | None = Field(default=None, max_length=50, index=True)
    department: str | None = Field(default=None, max_length=100)  # ix_patients_department_family
    ward: str | None = Field(default=None, max_length=50)  # ix_patients_ward_family
    bed: str | None = Field(default=None, max_length=20)
    admission_status: str = Field(default="outpatient", max_length=20)  # ix_..._status_family
    admitted_at: datetime | None = datetime_field(index=True)
    discharged_at: datetime | None = datetime_field(index=True)
    attending_clinician_id: uuid.UUID | None = Field(
        default=None,
        sa_column_args=[ForeignKey("users.id", ondelete="SET NULL")],
        index=True,
    )
    diagnosis: str | None = Field(default=None, max_length=2000)
    medications: str | None = Field(default=None, max_length=2000)
    allergies: str | None = Field(default=None, max_length=1000)
    clinical_notes: str | None = Field(default=None, max_length=10000)
    insurance_number: str | None = Field(default=None, max_length=100)
    emergency_contact: str | None = Field(default=None, max_length=500)
    public_consent: bool = Field(default=False, index=True)
    public_status: str | None = Field(default=None, max_length=500)


class BreakGlassGrant(TableBase, table=True):
    """An emergency, time-boxed full read of one patient record by one user."""

    __tablename__ = "break_glass_grants"
    __table_args__ = (Index("ix_break_glass_user_patient", "user_id", "patient_id", "expires_at"),)

    user_id: uuid.UUID = Field(sa_column_args=[ForeignKey("users.id", ondelete="CASCADE")])
    patient_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("patients.id", ondelete="CASCADE")], index=True
    )
    reason: str = Field(max_length=1000)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
