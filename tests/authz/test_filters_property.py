"""Property: compile() (SQL) and evaluate() (Python) agree on random filters and random rows,
NULLs included, on every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.authz import filters as flt
from app.authz.filters import Variables
from tests.authz.scratch import CHOICES, RESOURCE, matching_ids, reset

UUIDS = [uuid.UUID(int=i + 1) for i in range(3)]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
ALPHABET = "aAbB_%é "

strings = st.text(alphabet=ALPHABET, max_size=4)
values_by_field: dict[str, st.SearchStrategy[Any]] = {
    "s": strings,
    "n": st.integers(-3, 3),
    "x": st.sampled_from([-1.5, 0.0, 0.5, 2.25]),
    "b": st.booleans(),
    "d": st.integers(-3, 3).map(lambda k: date(2026, 1, 1) + timedelta(days=k)),
    "dt": st.integers(-3, 3).map(lambda k: BASE + timedelta(hours=k)),
    "e": st.sampled_from(CHOICES),
    "u": st.sampled_from(UUIDS),
}
literal_json: dict[str, st.SearchStrategy[Any]] = {
    "s": strings,
    "n": st.integers(-3, 3),
    "x": st.sampled_from([-1.5, 0.0, 0.5, 2.25]),
    "b": st.booleans(),
    "d": values_by_field["d"].map(lambda v: v.isoformat()),
    "dt": values_by_field["dt"].map(lambda v: v.isoformat()),
    "e": st.sampled_from(CHOICES),
    "u": st.sampled_from(UUIDS).map(str),
}
VARIABLES_BY_FIELD = {
    "s": ["$user.team", "$user.missing"],
    "n": ["$user.level"],
    "u": ["$user.id"],
    "d": ["$now"],
    "dt": ["$now"],
    "e": ["$user.colour"],
}
VARS = Variables(
    user_id=UUIDS[0],
    attributes={"team": "aB", "level": "1", "colour": "red"},
    now=BASE + timedelta(hours=1),
)


@st.composite
def leaf(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(list(values_by_field)))
    spec = RESOURCE.field(name)
    op = draw(st.sampled_from(spec.operators))
    operand: Any
    if op in flt.NULL_OPS:
        operand = draw(st.booleans())
    elif op in flt.LIST_OPS:
        operand = draw(st.lists(literal_json[name], max_size=3))
    else:
        choices = [literal_json[name]]
        if name in VARIABLES_BY_FIELD and op not in flt.STRING_OPS:
            choices.append(st.sampled_from(VARIABLES_BY_FIELD[name]))
        operand = draw(st.one_of(*choices))
    return {name: {op: operand}}


filters_strategy = st.recursive(
    leaf(),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda xs: {"_and": xs}),
        st.lists(children, max_size=3).map(lambda xs: {"_or": xs}),
        children.map(lambda x: {"_not": x}),
    ),
    max_leaves=6,
)


@st.composite
def row_strategy(draw: st.DrawFn) -> dict[str, Any]:
    return {
        name: draw(st.one_of(st.none(), strategy)) for name, strategy in values_by_field.items()
    }


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(filter_json=filters_strategy, rows=st.lists(row_strategy(), min_size=1, max_size=8))
async def test_sql_and_python_agree(
    runtime: Any, filter_json: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    rows = [{"id": i, **row} for i, row in enumerate(rows)]
    flt.validate(filter_json, RESOURCE)
    await reset(runtime.engine, rows)
    sql_ids = await matching_ids(runtime.engine, flt.compile(filter_json, RESOURCE, VARS))
    py_ids = {r["id"] for r in rows if flt.evaluate(filter_json, r, VARS, RESOURCE)}
    assert sql_ids == py_ids, (filter_json, rows)
