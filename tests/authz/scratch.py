"""A small scratch table and resource for engine tests (created in the test database)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from app.authz.filters import FieldSpec, ResourceSpec
from app.core.database import UTCDateTime

metadata = MetaData()
TABLE = Table(
    "scratch_filter_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("s", String(50), nullable=True),
    Column("n", Integer, nullable=True),
    Column("x", Float, nullable=True),
    Column("b", Boolean, nullable=True),
    Column("d", Date, nullable=True),
    Column("dt", UTCDateTime, nullable=True),
    Column("e", String(20), nullable=True),
    Column("u", Uuid, nullable=True),
)


class ScratchModel:
    __table__ = TABLE


CHOICES = ("red", "green", "blue")

RESOURCE = ResourceSpec(
    "scratch",
    ScratchModel,
    (
        FieldSpec("s", "string", searchable=True),
        FieldSpec("n", "integer"),
        FieldSpec("x", "number"),
        FieldSpec("b", "boolean"),
        FieldSpec("d", "date"),
        FieldSpec("dt", "datetime"),
        FieldSpec("e", "enum", choices=CHOICES),
        FieldSpec("u", "uuid"),
    ),
)


async def reset(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(delete(TABLE))
        if rows:
            await conn.execute(insert(TABLE), rows)


async def matching_ids(engine: AsyncEngine, clause: Any) -> set[int]:
    async with engine.connect() as conn:
        result = await conn.execute(select(TABLE.c.id).where(clause))
        return {r[0] for r in result}
