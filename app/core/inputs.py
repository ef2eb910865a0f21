"""Input types shared by every module's query parameters and request bodies: what a client
sends is refused with a 422 naming the field, never passed on to fail in the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def to_utc(value: datetime) -> datetime:
    """The instant in UTC (a naive value is taken as UTC). One that lies outside the datetime
    range once converted (0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00) is a
    ValueError, which FastAPI and pydantic answer as a 422 naming the field."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("datetime out of range") from None


UTCDatetime = Annotated[datetime, AfterValidator(to_utc)]

# No query text may carry a NUL character: PostgreSQL cannot compare text holding one (the
# database error would be a 503), so `Query(pattern=NO_NUL)` makes it a 422 naming the parameter.
NO_NUL = r"^[^\x00]*$"
