"""Synthetic patients (demo data, benchmarks). Faker builds small pools of names and addresses
once; rows are then combined from the pools, so 100,000 rows take a second, not a minute."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker

from app.core.database import new_id

# department -> its wards
DEPARTMENTS: dict[str, tuple[str, ...]] = {
    "cardiology": ("C1", "C2"),
    "neurology": ("N1", "N2"),
    "oncology": ("O1", "O2"),
    "orthopedics": ("T1",),
    "pediatrics": ("P1", "P2"),
    "emergency": ("E1",),
    "surgery": ("S1", "S2"),
    "internal_medicine": ("M1", "M2"),
    "maternity": ("K1",),
    "psychiatry": ("Y1",),
}
SEXES = ("female", "male", "other", "unknown")
STATUSES = ("admitted", "outpatient", "discharged")
DIAGNOSES = (
    "Atrial fibrillation",
    "Heart failure",
    "Pneumonia",
    "Fractured femur",
    "Migraine",
    "Type 2 diabetes",
    "Appendicitis",
    "Asthma exacerbation",
    "Stroke",
    "Sepsis",
)
MEDICATIONS = ("Metoprolol", "Apixaban", "Insulin", "Amoxicillin", "Paracetamol", "Salbutamol")
ALLERGIES = ("none known", "penicillin", "latex", "peanuts", "iodine")
PUBLIC_STATUSES = ("Stable", "Resting comfortably", "In surgery", "Under observation")


class PatientGenerator:
    def __init__(self, seed: int = 4, *, pool: int = 400) -> None:
        self.random = random.Random(seed)  # noqa: S311 - synthetic data, not security
        fake = Faker()
        fake.seed_instance(seed)
        self.given = [fake.first_name() for _ in range(pool)]
        self.family = [fake.last_name() for _ in range(pool)]
        self.streets = [fake.street_address() + ", " + fake.city() for _ in range(pool)]
        self.now = datetime.now(UTC).replace(microsecond=0)

    def rows(
        self,
        count: int,
        *,
        start: int = 0,
        clinician_ids: Sequence[uuid.UUID] = (),
        mrn_prefix: str = "MRN",
    ) -> Iterator[dict[str, Any]]:
        r = self.random
        departments = list(DEPARTMENTS)
        for n in range(start, start + count):
            department = r.choice(departments)
            ward = r.choice(DEPARTMENTS[department])
            status = r.choices(STATUSES, weights=(5, 3, 2))[0]
            admitted_at = self.now - timedelta(days=r.randint(0, 60), minutes=r.randint(0, 1440))
            given, family = r.choice(self.given), r.choice(self.family)
            clinician = r.choice(clinician_ids) if clinician_ids and r.random() < 0.3 else None
            consent = r.random() < 0.4
            yield {
                "id": new_id(),
                "created_at": self.now,
                "updated_at": self.now,
                "deleted_at": None,
                "mrn": f"{mrn_prefix}{n:08d}",
                "given_name": given,
                "family_name": family,
                "date_of_birth": date(1930, 1, 1) + timedelta(days=r.randint(0, 33_000)),
                "sex": r.choice(SEXES),
                "phone": f"+1-555-{r.randint(0, 9999999):07d}",
                "email": f"{given}.{family}.{n}@example.org".lower(),
                "address": r.choice(self.streets),
                "national_id": f"NID{r.randint(0, 10**9):09d}",
                "department": department,
                "ward": ward if status != "outpatient" else None,
                "bed": f"{ward}-{r.randint(1, 30):02d}" if status == "admitted" else None,
                "admission_status": status,
                "admitted_at": admitted_at if status != "outpatient" else None,
                "discharged_at": (
                    admitted_at + timedelta(days=r.randint(1, 14))
                    if status == "discharged"
                    else None
                ),
                "attending_clinician_id": clinician,
                "diagnosis": r.choice(DIAGNOSES),
                "medications": ", ".join(r.sample(MEDICATIONS, 2)),
                "allergies": r.choice(ALLERGIES),
                "clinical_notes": f"Day {r.randint(1, 30)}: {r.choice(DIAGNOSES).lower()} follow-up",
                "insurance_number": f"INS-{r.randint(0, 10**8):08d}",
                "emergency_contact": f"{r.choice(self.given)} {family}, +1-555-"
                f"{r.randint(0, 9999999):07d}",
                "public_consent": consent,
                "public_status": r.choice(PUBLIC_STATUSES) if consent else None,
            }
