"""Shared input types (app/core/inputs.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from app.core.inputs import UTCDatetime

ADAPTER: TypeAdapter[datetime] = TypeAdapter(UTCDatetime)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # naive is UTC
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_utc_datetime_reads_iso_text_as_utc(text: str, expected: datetime) -> None:
    value = ADAPTER.validate_python(text)
    assert value == expected and value.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC (was an OverflowError)
        "9999-12-31T23:59:59-01:00",  # past datetime.max once in UTC
        "0.5",  # pydantic would read a bare number as a Unix timestamp
        "1700000000",
        "-1",
        "1e3",
    ],
)
def test_utc_datetime_refuses_out_of_range_and_bare_numbers(text: str) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(text)
