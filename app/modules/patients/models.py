"""Patient records and break-glass grants."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, func, text
from sqlmodel import Field

from app.core.database import SoftDeleteMixin, TableBase, UTCDateTime, datetime_field

ADMISSION_STATUSES = ("admitted", "outpatient", "discharged")


class Patient(TableBase, SoftDeleteMixin, table=True):
    __tablename__ = "patients"
    __table_args__ = (
        # Composite indexes for the common "filter, then order by name" list shapes.
        Index("ix_patients_department_family", "department", "family_name", "id"),
        Index("ix_patients_ward_family", "ward", "family_name", "id"),
        Index("ix_patients_status_family", "admission_status", "family_name", "id"),
        Index("ix_patients_family_given_id", "family_name", "given_name", "id"),
        # Prefix search (`q=`) is lower(field) LIKE 'q%': indexable on PostgreSQL with
        # text_pattern_ops. Created on PostgreSQL only (see scripts/finish_initial_migration.py).
        *(
            Index(
                f"ix_patients_{name}_prefix",
                func.lower(text(name)).label(f"{name}_lower"),
                postgresql_ops={f"{name}_lower": "text_pattern_ops"},
                info={"postgresql_only": True},
            )
            for name in ("family_name", "given_name", "mrn")
        ),
    )

    mrn: str = Field(max_length=40, unique=True, index=True)
    given_name: str = Field(max_length=100, index=True)
    family_name: str = Field(max_length=100, index=True)
    date_of_birth: date | None = Field(default=None, index=True)
    sex: str | None = Field(default=None, max_length=20, index=True)
    phone: str | None = Field(default=None, max_length=50, index=True)
    email: str | None = Field(default=None, max_length=320, index=True)
    address: str | None = Field(default=None, max_length=500)
    national_id: str | None = Field(default=None, max_length=50, index=True)
    department: str | None = Field(default=None, max_length=100, index=True)
    ward: str | None = Field(default=None, max_length=50, index=True)
    bed: str | None = Field(default=None, max_length=20)
    admission_status: str = Field(default="outpatient", max_length=20, index=True)
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
