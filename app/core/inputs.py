"""Input types shared by every module's query parameters and request bodies: what a client
sends is refused with a 422 naming the field, never passed on to fail in the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field

T = TypeVar("T")


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


def iso_only(value: object) -> object:
    """A date-time is written as ISO 8601 text: pydantic would also read a bare number as a
    Unix timestamp (`until=0.5` as 1970-01-01T00:00:00.5Z), which the schema does not allow."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise ValueError("must be an ISO 8601 date-time, such as 2026-01-31T12:00:00Z")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

UTCDatetime = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(to_utc)]

# No query text may carry a NUL character: PostgreSQL cannot compare text holding one (the
# database error would be a 503), so `Query(pattern=NO_NUL)` makes it a 422 naming the parameter.
NO_NUL = r"^[^\x00]*$"


def has_nul(value: object) -> bool:
    """Whether a string, or any key or string of a parsed JSON document, holds a NUL character
    (PostgreSQL cannot store one; SQLite would, so both refuse it alike)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def refuse_nul(value: T) -> T:
    """A 422 naming the field (pydantic turns the ValueError into one) for a value holding a NUL
    character anywhere, never a database error."""
    if has_nul(value):
        raise ValueError("may not contain NUL characters")
    return value


# Text compared with or stored in a column.
Text = Annotated[str, AfterValidator(refuse_nul)]


def _without_null(schema: dict[str, Any]) -> None:
    """The field's JSON schema as its plain type: no null branch, no "default": null."""
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch.get("type") != "null"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    schema.pop("default", None)


def refuse_null(value: T) -> T:
    if value is None:
        raise ValueError("may not be null")
    return value


# An update field that may be left out (the stored value is kept) but not cleared: an explicit
# null is a 422 naming the field, and the schema shows the plain type, without null.
# Defaults are not validated, so `field: Omittable[str] = None` still means "not sent".
Omittable = Annotated[
    T | None,
    BeforeValidator(refuse_null),
    Field(json_schema_extra=_without_null),
]
