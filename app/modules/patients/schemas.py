"""Patient request / response DTOs.

Responses carry only the cells the caller may read: a hidden field is ABSENT from the object
(routes serialise with `exclude_unset`), never null.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    field_validator,
)

from app.core.inputs import Omittable, refuse_nul, to_utc

AdmissionStatus = Literal["admitted", "outpatient", "discharged"]
Sex = Literal["female", "male", "other", "unknown"]


def utc_datetime(value: Any) -> Any:
    """Datetimes are stored in UTC (naive ones are taken as UTC, like the filter language);
    one that does not fit once converted is a 422, never a server error."""
    return to_utc(value) if isinstance(value, datetime) else value


class _PatientFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date_of_birth: date | None = None
    sex: Sex | None = None
    phone: str | None = Field(default=None, max_length=50)
    email: EmailStr | None = Field(default=None, max_length=320)
    address: str | None = Field(default=None, max_length=500)
    national_id: str | None = Field(default=None, max_length=50)
    department: str | None = Field(default=None, max_length=100)
    ward: str | None = Field(default=None, max_length=50)
    bed: str | None = Field(default=None, max_length=20)
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None
    attending_clinician_id: uuid.UUID | None = None
    diagnosis: str | None = Field(default=None, max_length=2000)
    medications: str | None = Field(default=None, max_length=2000)
    allergies: str | None = Field(default=None, max_length=1000)
    clinical_notes: str | None = Field(default=None, max_length=10000)
    insurance_number: str | None = Field(default=None, max_length=100)
    emergency_contact: str | None = Field(default=None, max_length=500)
    public_status: str | None = Field(default=None, max_length=500)

    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return utc_datetime(refuse_nul(value))


class PatientCreate(_PatientFields):
    """Only the fields actually sent are checked against the caller's create policies."""

    mrn: str = Field(min_length=1, max_length=40)
    given_name: str = Field(min_length=1, max_length=100)
    family_name: str = Field(min_length=1, max_length=100)
    # Columns that cannot be emptied (Omittable): null is a 422, never a database error.
    admission_status: Omittable[AdmissionStatus] = None
    public_consent: Omittable[StrictBool] = None


class PatientUpdate(_PatientFields):
    """Every field optional; only the fields sent are checked and written."""

    mrn: Omittable[str] = Field(default=None, min_length=1, max_length=40)
    given_name: Omittable[str] = Field(default=None, min_length=1, max_length=100)
    family_name: Omittable[str] = Field(default=None, min_length=1, max_length=100)
    admission_status: Omittable[AdmissionStatus] = None
    public_consent: Omittable[StrictBool] = None


class PatientPublic(BaseModel):
    """A patient as one caller may see it: fields they may not read are absent."""

    id: uuid.UUID
    mrn: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: date | None = None
    sex: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    national_id: str | None = None
    department: str | None = None
    ward: str | None = None
    bed: str | None = None
    admission_status: str | None = None
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None
    attending_clinician_id: uuid.UUID | None = None
    diagnosis: str | None = None
    medications: str | None = None
    allergies: str | None = None
    clinical_notes: str | None = None
    insurance_number: str | None = None
    emergency_contact: str | None = None
    public_consent: bool | None = None
    public_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


class PatientPage(BaseModel):
    items: list[PatientPublic]
    # Exact up to 1,000 matches; beyond, a lower bound and total_exact is false.
    total: int
    total_exact: bool = True
    limit: int
    offset: int


class StatsBucket(BaseModel):
    value: str | bool | None
    count: int


class PatientStats(BaseModel):
    group_by: str
    total: int
    groups: list[StatsBucket]


class BreakGlassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=10, max_length=1000)

    @field_validator("reason", mode="after")
    @classmethod
    def _clean(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise ValueError("the reason must say why (at least 10 characters)")
        return refuse_nul(value)


class BreakGlassGrantPublic(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    expires_at: datetime
    patient: PatientPublic
