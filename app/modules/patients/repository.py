"""SQL for patients. No decisions here: the service hands in the (masked) column expressions,
the row conditions and the ordering that the caller's policies produced."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.modules.patients.models import BreakGlassGrant, Patient
from app.modules.users.models import User

TOTAL_LABEL = "__total__"
Row = dict[str, Any]


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY key. `nulls_last` asks for NULLs after every value in either direction
    (rendered NULLS LAST: PostgreSQL's default for ASC and SQLite's for DESC, so an index
    declared to match serves it on both; see models.py)."""

    expression: ColumnElement[Any]
    descending: bool = False
    nulls_last: bool = False

    def clause(self, source: ColumnElement[Any]) -> ColumnElement[Any]:
        clause = source.desc() if self.descending else source.asc()
        return clause.nulls_last() if self.nulls_last else clause


class PatientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- reads through (masked) expressions -------------------------------------------------

    async def page(
        self,
        columns: Sequence[ColumnElement[Any]],
        conditions: Sequence[ColumnElement[bool]],
        order: Sequence[SortKey],
        *,
        any_of: Sequence[ColumnElement[bool]] = (),
        limit: int,
        offset: int,
        count_cap: int,
    ) -> tuple[list[Row], int | None, bool]:
        """One statement: the page and a total counted up to a cap. Rows match every condition
        and, when `any_of` is given, at least one of its terms.

        The `matches` CTE takes the ids (and sort keys) of at most max(count_cap, offset +
        limit) matching rows in order: narrow rows, so that a covering index answers without
        reading the table, and an ordered index scan stops there. With several `any_of` terms
        it is a UNION of one such capped, ordered candidate list per term, so that each term
        is served by its own index (an OR of them can only be a bitmap scan that reads every
        candidate row from the table). The CTE is referenced twice, so PostgreSQL materialises
        it and plans it for full retrieval (a window count under the page LIMIT made the
        planner cost it as if it stopped after the page, and pick a scan that filters most of
        the table). The page is cut from it and only its rows are joined back to the table for
        the (masked) columns. Returns (rows, total, exact): total is None when the page is
        empty (the caller counts separately only then); exact is False when the cap was
        reached.
        """
        window = max(count_cap, offset + limit)
        # Rendered as a literal: with a bound LIMIT, PostgreSQL's generic plan (used after five
        # executions of a prepared statement when it looks cheaper) assumes 10% of the rows and
        # then prefers a scan that filters the whole table.
        cap: BindParameter[int] = bindparam("window", window, literal_execute=True)
        id_column = col(Patient.id)
        sort_names = [f"__sort{i}" for i in range(len(order))]

        def ordered(source: Any) -> list[ColumnElement[Any]]:
            return [key.clause(source.c[n]) for key, n in zip(order, sort_names, strict=True)]

        def candidates(*extra: ColumnElement[bool]) -> Select[Any]:
            keys = (key.expression.label(n) for key, n in zip(order, sort_names, strict=True))
            return (
                select(id_column.label("__id"), *keys)
                .where(*conditions, *extra)
                .order_by(*(key.clause(key.expression) for key in order))
                .limit(cap)
            )

        if len(any_of) > 1:
            branches = [candidates(term).subquery(f"hits{i}") for i, term in enumerate(any_of)]
            hits = union(*(select(*branch.c) for branch in branches)).subquery("hits")
            matches = select(*hits.c).order_by(*ordered(hits)).limit(cap).cte("matches")
        else:
            matches = candidates(*any_of).cte("matches")
        page = (
            select(matches.c["__id"], *(matches.c[n] for n in sort_names))
            .order_by(*ordered(matches))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        total = select(func.count()).select_from(matches).scalar_subquery()
        statement = (
            select(*columns, total.label(TOTAL_LABEL))
            .select_from(page.join(Patient, id_column == page.c["__id"]))
            .order_by(*ordered(page))
        )
        rows = [dict(r) for r in (await self.session.execute(statement)).mappings()]
        if not rows:
            return rows, None, True
        counted = int(rows[0][TOTAL_LABEL])
        for row in rows:
            row.pop(TOTAL_LABEL, None)
        return rows, counted, counted < window

    async def count_capped(self, conditions: Sequence[ColumnElement[bool]], cap: int) -> int:
        inner = select(col(Patient.id)).where(*conditions).limit(cap).subquery()
        statement = select(func.count()).select_from(inner)
        return int((await self.session.execute(statement)).scalar_one())

    async def count(self, conditions: Sequence[ColumnElement[bool]]) -> int:
        statement = select(func.count()).select_from(Patient).where(*conditions)
        return int((await self.session.execute(statement)).scalar_one())

    async def one(
        self,
        columns: Sequence[ColumnElement[Any]],
        conditions: Sequence[ColumnElement[bool]],
    ) -> Row | None:
        statement = select(*columns).where(*conditions)
        row = (await self.session.execute(statement)).mappings().first()
        return dict(row) if row else None

    async def groups(
        self, key: ColumnElement[Any], conditions: Sequence[ColumnElement[bool]], *, limit: int
    ) -> tuple[list[tuple[Any, int]], int]:
        """(counts per value of `key` (a masked expression), largest first, at most `limit`
        groups; the number of matching rows over every group). One statement: the total is a
        window sum over the groups, computed before the LIMIT."""
        label = key.label("g")
        count = func.count()
        total = func.sum(count).over().label("total")
        statement = (
            select(label, count.label("n"), total)
            .select_from(Patient)
            .where(*conditions)
            .group_by(label)
            .order_by(count.desc(), label)
            .limit(limit)
        )
        rows = (await self.session.execute(statement)).all()
        return [(r[0], int(r[1])) for r in rows], int(rows[0][2]) if rows else 0

    async def stream(
        self,
        columns: Sequence[ColumnElement[Any]],
        conditions: Sequence[ColumnElement[bool]],
        *,
        batch: int = 1000,
    ) -> AsyncIterator[list[Row]]:
        """Every matching row, in id order, by keyset batches: constant memory whatever the
        number of rows, and no long-lived cursor holding a connection between batches. The
        columns must include the id labelled "id"."""
        id_column = col(Patient.id)
        last: uuid.UUID | None = None
        while True:
            where = list(conditions)
            if last is not None:
                where.append(id_column > last)
            statement = select(*columns).where(*where).order_by(id_column).limit(batch)
            rows = [dict(r) for r in (await self.session.execute(statement)).mappings()]
            if not rows:
                return
            last = rows[-1]["id"]
            yield rows
            if len(rows) < batch:
                return

    async def stream_ordered(
        self,
        columns: Sequence[ColumnElement[Any]],
        conditions: Sequence[ColumnElement[bool]],
        order: Sequence[SortKey],
        batch: int = 1000,
    ) -> AsyncIterator[list[Row]]:
        """Every matching row in `order`, by batches from one server-side cursor: constant
        memory, but the connection is held until the last row (keyset batches cannot follow
        sort keys over masked columns)."""
        statement = (
            select(*columns)
            .where(*conditions)
            .order_by(*(key.clause(key.expression) for key in order))
            .execution_options(yield_per=batch)
        )
        result = await self.session.stream(statement)
        async for rows in result.mappings().partitions(batch):
            yield [dict(r) for r in rows]

    # ---- plain table access (writes) --------------------------------------------------------

    async def get(self, patient_id: uuid.UUID, *, include_deleted: bool = False) -> Patient | None:
        patient = await self.session.get(Patient, patient_id)
        if patient is None or (patient.deleted_at is not None and not include_deleted):
            return None
        return patient

    async def exists(self, condition: ColumnElement[bool]) -> bool:
        return await self.exists_where([condition])

    async def exists_where(self, conditions: Sequence[ColumnElement[bool]]) -> bool:
        statement = select(col(Patient.id)).where(*conditions).limit(1)
        return (await self.session.execute(statement)).first() is not None

    async def add(self, patient: Patient) -> Patient:
        self.session.add(patient)
        await self.session.flush()
        return patient

    async def flush(self) -> None:
        await self.session.flush()

    async def mrn_taken(self, mrn: str, *, exclude: uuid.UUID | None = None) -> bool:
        condition: ColumnElement[bool] = col(Patient.mrn) == mrn
        if exclude is not None:
            condition = and_(condition, col(Patient.id) != exclude)
        return await self.exists(condition)

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        found = await self.session.scalar(select(col(User.id)).where(col(User.id) == user_id))
        return found is not None

    # ---- break-glass ------------------------------------------------------------------------

    def add_grant(self, grant: BreakGlassGrant) -> None:
        self.session.add(grant)

    async def active_grant(
        self, user_id: uuid.UUID, patient_id: uuid.UUID, now: datetime
    ) -> BreakGlassGrant | None:
        statement = (
            select(BreakGlassGrant)
            .where(
                col(BreakGlassGrant.user_id) == user_id,
                col(BreakGlassGrant.patient_id) == patient_id,
                col(BreakGlassGrant.expires_at) > now,
            )
            .order_by(col(BreakGlassGrant.expires_at).desc())
            .limit(1)
        )
        result: BreakGlassGrant | None = (await self.session.scalars(statement)).first()
        return result
