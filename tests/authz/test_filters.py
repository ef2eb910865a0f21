"""The filter language: validation names the culprit; each operator on each type agrees in SQL
and Python, NULLs included; variables."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.authz import filters as flt
from app.authz.filters import FilterError, Variables
from tests.authz.scratch import RESOURCE, matching_ids, reset

U1 = uuid.UUID("00000000-0000-7000-8000-000000000001")
U2 = uuid.UUID("00000000-0000-7000-8000-000000000002")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ROWS: list[dict[str, Any]] = [
    {"id": 1, "s": "Alpha_1%", "n": 1, "x": 1.5, "b": True, "d": date(2026, 1, 1),
     "dt": T0 - timedelta(days=1), "e": "red", "u": U1},
    {"id": 2, "s": "alpha", "n": 5, "x": -2.0, "b": False, "d": date(2026, 6, 1),
     "dt": T0 + timedelta(days=1), "e": "green", "u": U2},
    {"id": 3, "s": "Beta", "n": 10, "x": 0.0, "b": True, "d": date(2025, 12, 31),
     "dt": T0, "e": "blue", "u": None},
    {"id": 4, "s": None, "n": None, "x": None, "b": None, "d": None, "dt": None, "e": None,
     "u": None},
    {"id": 5, "s": "Zeta", "n": -3, "x": 99.25, "b": False, "d": date(2026, 3, 1),
     "dt": T0 + timedelta(hours=1), "e": "red", "u": U1},
]  # fmt: skip

VARS = Variables(user_id=U1, attributes={"team": "Beta", "level": "5"}, now=T0)

CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({"s": {"_eq": "alpha"}}, {2}),
    ({"s": {"_neq": "alpha"}}, {1, 3, 5}),  # NULL cell: false
    ({"s": {"_in": ["Beta", "Zeta", None]}}, {3, 5}),
    ({"s": {"_nin": ["Beta"]}}, {1, 2, 5}),
    ({"s": {"_lt": "Beta"}}, {1}),  # code point order: "Alpha" < "Beta" < "Zeta" < "alpha"
    ({"s": {"_gte": "Zeta"}}, {2, 5}),
    ({"s": {"_contains": "lph"}}, {1, 2}),
    ({"s": {"_contains": "LPH"}}, set()),  # case-sensitive
    ({"s": {"_contains": "_1%"}}, {1}),  # wildcards are literal
    ({"s": {"_contains": "%"}}, {1}),
    ({"s": {"_starts_with": "Al"}}, {1}),
    ({"s": {"_starts_with": "al"}}, {2}),
    ({"s": {"_null": True}}, {4}),
    ({"s": {"_nnull": True}}, {1, 2, 3, 5}),
    ({"s": {"_null": False}}, {1, 2, 3, 5}),
    ({"n": {"_gt": 1}}, {2, 3}),
    ({"n": {"_lte": 1}}, {1, 5}),
    ({"n": {"_in": [1, 10]}}, {1, 3}),
    ({"n": {"_gte": 1, "_lt": 10}}, {1, 2}),
    ({"x": {"_lt": 0}}, {2}),
    ({"x": {"_eq": 99.25}}, {5}),
    ({"b": {"_eq": True}}, {1, 3}),
    ({"b": {"_neq": True}}, {2, 5}),
    ({"b": {"_eq": False}}, {2, 5}),
    ({"d": {"_gte": "2026-01-01"}}, {1, 2, 5}),
    ({"d": {"_lt": "$now"}}, {1, 3}),
    ({"d": {"_eq": "$now"}}, {5}),
    ({"dt": {"_gt": "$now"}}, {2, 5}),
    ({"dt": {"_lte": "2026-03-01T12:00:00Z"}}, {1, 3}),
    ({"dt": {"_eq": "2026-03-01T12:00:00"}}, {3}),  # naive literal = UTC
    ({"e": {"_eq": "red"}}, {1, 5}),
    ({"e": {"_nin": ["red"]}}, {2, 3}),
    ({"u": {"_eq": "$user.id"}}, {1, 5}),
    ({"u": {"_neq": "$user.id"}}, {2}),
    ({"u": {"_in": [str(U2)]}}, {2}),
    ({"s": {"_eq": "$user.team"}}, {3}),
    ({"n": {"_eq": "$user.level"}}, {2}),  # attributes are strings, coerced to the type
    ({"s": {"_eq": "$user.missing"}}, set()),  # unresolved variable: false
    ({"_not": {"s": {"_eq": "$user.missing"}}}, {1, 2, 3, 4, 5}),
    ({"_not": {"s": {"_eq": "alpha"}}}, {1, 3, 4, 5}),  # NULL row included by negation
    ({"_or": [{"n": {"_lt": 0}}, {"e": {"_eq": "blue"}}]}, {3, 5}),
    ({"_and": [{"b": {"_eq": True}}, {"n": {"_gt": 1}}]}, {3}),
    ({"_and": []}, {1, 2, 3, 4, 5}),
    ({"_or": []}, set()),
    ({}, {1, 2, 3, 4, 5}),
    ({"n": {"_in": []}}, set()),
    ({"n": {"_nin": []}}, {1, 2, 3, 5}),
]


@pytest.mark.parametrize(("filter_json", "expected"), CASES, ids=[str(c[0]) for c in CASES])
async def test_each_operator_agrees_in_sql_and_python(
    runtime: Any, filter_json: dict[str, Any], expected: set[int]
) -> None:
    await reset(runtime.engine, ROWS)
    flt.validate(filter_json, RESOURCE)
    sql_ids = await matching_ids(runtime.engine, flt.compile(filter_json, RESOURCE, VARS))
    py_ids = {r["id"] for r in ROWS if flt.evaluate(filter_json, r, VARS, RESOURCE)}
    assert sql_ids == expected
    assert py_ids == expected


@pytest.mark.parametrize(
    ("filter_json", "kind", "culprit"),
    [
        ({"nope": {"_eq": 1}}, "field", "nope"),
        ({"n": {"_like": 1}}, "operator", "_like"),
        ({"_xor": []}, "operator", "_xor"),
        ({"b": {"_gt": True}}, "operator", "_gt"),  # not for booleans
        ({"e": {"_contains": "r"}}, "operator", "_contains"),
        ({"s": {"_eq": "$user"}}, "variable", "$user"),
        ({"s": {"_eq": "$session.id"}}, "variable", "$session.id"),
        ({"n": {"_eq": "$now"}}, "variable", "$now"),
        ({"n": {"_eq": "ten"}}, "value", "n"),
        ({"n": {"_eq": 2**63}}, "value", "n"),  # past a BIGINT: refused, not a driver error
        ({"n": {"_in": [1, -(2**63) - 1]}}, "value", "n"),
        # Valid ISO text, but past datetime.max once converted to UTC (was an OverflowError).
        ({"dt": {"_eq": "9999-12-31T23:59:59-05:00"}}, "value", "dt"),
        ({"d": {"_gt": "9999-12-31T23:00:00-05:00"}}, "value", "d"),
        ({"d": {"_eq": "2026-13-45"}}, "value", "d"),
        ({"e": {"_eq": "purple"}}, "value", "e"),
        ({"u": {"_eq": "not-a-uuid"}}, "value", "u"),
        ({"s": {"_null": "yes"}}, "value", "s"),
        ({"s": {"_in": "Beta"}}, "value", "s"),
        ({"s": {"_eq": None}}, "value", "s"),
        ({"_and": [{"s": {"_eq": "a"}}, {"ghost": {"_eq": 1}}]}, "field", "ghost"),
        ({"_or": {"s": {"_eq": "a"}}}, "syntax", "_or"),
        ({"s": "a"}, "syntax", "s"),
    ],
)
def test_validation_names_the_culprit(filter_json: Any, kind: str, culprit: str) -> None:
    with pytest.raises(FilterError) as info:
        flt.validate(filter_json, RESOURCE)
    assert info.value.kind == kind
    assert info.value.culprit == culprit
    assert culprit in str(info.value)
