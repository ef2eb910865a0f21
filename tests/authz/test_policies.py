"""The policy engine: per-cell merge in SQL and Python, hidden fields absent, masked filtering,
write checks (fields, presets, checks, scope escape), and the `user` resource end to end."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.authz.filters import Variables
from app.authz.policies import (
    FieldsForbidden,
    PolicyCheckFailed,
    PolicyRule,
    RecordForbidden,
    build_plan,
    explain_record,
    plan_for,
    registry,
)
from app.core.errors import Forbidden, ValidationFailed
from tests.authz.scratch import RESOURCE, TABLE, reset

ROWS: list[dict[str, Any]] = [
    {"id": 1, "s": "one", "n": 1, "e": "red", "b": True},
    {"id": 2, "s": "two", "n": 2, "e": "green", "b": False},
    {"id": 3, "s": "three", "n": 3, "e": "blue", "b": True},
    {"id": 4, "s": None, "n": 4, "e": "red", "b": False},
]
VARS = Variables(user_id=uuid.uuid4(), attributes={"colour": "red"})


def rule(action: str = "read", **kwargs: Any) -> PolicyRule:
    return PolicyRule(id=uuid.uuid4(), role_id=None, resource="scratch", action=action, **kwargs)


# Policy A: fields s, n on red rows. Policy B: fields n, b on rows with n >= 2.
A = rule(fields=("s", "n"), row_filter={"e": {"_eq": "$user.colour"}}, description="A")
B = rule(fields=("n", "b"), row_filter={"n": {"_gte": 2}}, description="B")


async def fetch(runtime: Any, plan: Any, **kw: Any) -> list[dict[str, Any]]:
    async with runtime.engine.connect() as conn:
        stmt = select(*plan.select_columns(kw.get("fields"))).where(plan.row_clause())
        if "where" in kw:
            stmt = stmt.where(plan.where(kw["where"]))
        stmt = stmt.order_by(*plan.order_by(kw.get("sort", [])))
        rows = (await conn.execute(stmt)).mappings().all()
    return [plan.row_to_dict(r, kw.get("fields")) for r in rows]


async def test_per_cell_merge_in_sql_and_python(runtime: Any) -> None:
    await reset(runtime.engine, ROWS)
    plan = build_plan(RESOURCE, "read", [A, B], VARS)
    assert plan.readable_fields == {"s", "n", "b"}
    assert plan.unconditional_fields == {"n"}  # granted by both, so wherever a row is admitted
    got = await fetch(runtime, plan)
    assert got == [
        {"id": 1, "s": "one", "n": 1},  # red: A only -> no b
        {"id": 2, "n": 2, "b": False},  # n>=2: B only -> no s
        {"id": 3, "n": 3, "b": True},
        {"id": 4, "s": None, "n": 4, "b": False},  # both: s present although NULL
    ]
    # Python evaluation on one object agrees.
    assert [plan.mask(r) for r in ROWS if plan.admits(r)] == [
        {k: v for k, v in g.items()} for g in got
    ]
    assert "b" not in got[0] and "s" not in got[1]


async def test_filter_sort_and_count_bind_to_masked_cells(runtime: Any) -> None:
    await reset(runtime.engine, ROWS)
    plan = build_plan(RESOURCE, "read", [A, B], VARS)
    # b is hidden in row 1 (where it is True): filtering on it must not find row 1.
    got = await fetch(runtime, plan, where={"b": {"_eq": True}})
    assert [r["id"] for r in got] == [3]
    # _null matches hidden cells as if they did not exist (NULL), never reveals them.
    got = await fetch(runtime, plan, where={"s": {"_contains": "t"}})
    assert [r["id"] for r in got] == []  # "two"/"three" are in rows where s is hidden
    async with runtime.engine.connect() as conn:
        counts = dict(
            (
                await conn.execute(
                    select(plan.column("b"), func.count())
                    .where(plan.row_clause())
                    .group_by(plan.column("b"))
                )
            ).all()
        )
    assert {bool(k) if k is not None else None: v for k, v in counts.items()} == {
        None: 1,
        False: 2,
        True: 1,
    }
    got = await fetch(runtime, plan, sort=["-s"])
    assert got[0]["id"] == 1  # only visible s values sort; hidden ones last
    async with runtime.engine.connect() as conn:
        hits = (
            await conn.execute(
                select(TABLE.c.id).where(plan.row_clause(), plan.search_clause("ONE"))
            )
        ).all()
    assert [h[0] for h in hits] == [1]


async def test_naming_fields_readable_in_no_row_is_403_and_bad_filter_422(runtime: Any) -> None:
    plan = build_plan(RESOURCE, "read", [A], VARS)
    with pytest.raises(FieldsForbidden) as info:
        plan.where({"b": {"_eq": True}})
    assert info.value.extra["fields"] == ["b"]
    with pytest.raises(FieldsForbidden):
        plan.order_by(["-dt"])
    with pytest.raises(FieldsForbidden):
        plan.select_columns(["s", "u"])
    with pytest.raises(ValidationFailed) as bad:
        plan.where({"s": {"_regex": "x"}})
    assert "_regex" in str(bad.value.detail)


async def test_no_policy_sees_nothing_and_superadmin_everything(runtime: Any) -> None:
    await reset(runtime.engine, ROWS)
    empty = build_plan(RESOURCE, "read", [rule(action="update")], VARS)
    assert empty.is_empty and await fetch(runtime, empty) == []
    full = build_plan(RESOURCE, "read", [], VARS, superadmin=True)
    rows = await fetch(runtime, full)
    assert len(rows) == 4 and set(rows[0]) == {"id", *RESOURCE.field_names}


def test_create_checks_fields_presets_and_check() -> None:
    create = rule(
        action="create",
        fields=("s", "n"),
        presets={"e": "$user.colour", "b": True},
        check={"n": {"_lt": 10}},
        description="small red things",
    )
    plan = build_plan(RESOURCE, "create", [create], VARS)
    assert plan.check_create({"s": "x", "n": 1}) == {"s": "x", "n": 1, "e": "red", "b": True}
    with pytest.raises(FieldsForbidden) as info:
        plan.check_create({"s": "x", "d": "2026-01-01"})
    assert info.value.extra["fields"] == ["d"]
    with pytest.raises(FieldsForbidden) as preset:
        plan.check_create({"s": "x", "e": "blue"})  # presets may not be sent
    assert "e" in preset.value.extra["fields"]
    with pytest.raises(PolicyCheckFailed) as check:
        plan.check_create({"n": 50})
    assert "small red things" in str(check.value.detail)
    assert "50" not in str(check.value.detail)
    with pytest.raises(Forbidden):
        build_plan(RESOURCE, "create", [], VARS).check_create({"s": "x"})


def test_update_scope_and_check() -> None:
    update = rule(
        action="update",
        fields=("s", "e"),
        row_filter={"e": {"_eq": "$user.colour"}},
        check={"e": {"_eq": "$user.colour"}},
    )
    plan = build_plan(RESOURCE, "update", [update], VARS)
    red = {"id": 1, "s": "one", "e": "red", "n": 1}
    assert plan.check_update(red, {"s": "uno"}) == {"s": "uno"}
    with pytest.raises(RecordForbidden):
        plan.check_update({"id": 2, "e": "green"}, {"s": "x"})
    with pytest.raises(PolicyCheckFailed):  # moving the record out of one's own scope
        plan.check_update(red, {"e": "blue"})
    with pytest.raises(FieldsForbidden):
        plan.check_update(red, {"n": 5})
    delete = build_plan(
        RESOURCE, "delete", [rule(action="delete", row_filter={"n": {"_gt": 1}})], VARS
    )
    delete.check_delete({"n": 2})
    with pytest.raises(RecordForbidden):
        delete.check_delete({"n": 1})


def test_explain_record_says_why_fields_are_hidden() -> None:
    plan = build_plan(RESOURCE, "read", [A, B], VARS)
    result = explain_record(plan, ROWS[0])
    assert result["admitted"] is True
    assert [p["description"] for p in result["admitting_policies"]] == ["A"]
    assert result["fields"]["s"]["visible"] is True
    assert result["fields"]["b"]["visible"] is False
    assert "B" in result["fields"]["b"]["reason"]
    assert result["fields"]["u"]["reason"] == "No read policy of the user grants this field"
    outside = explain_record(build_plan(RESOURCE, "read", [A], VARS), ROWS[1])
    assert outside["admitted"] is False
    assert "outside" in outside["fields"]["s"]["reason"]


async def test_user_resource_staff_directory(factory: Any, runtime: Any) -> None:
    """Genericity: the seeded `user` policies drive a list query on users compiled by the
    engine: the `user` role sees names of active accounts, never e-mail or phone."""
    viewer = await factory.user(roles=["user"])
    inactive = await factory.user(roles=["user"], is_active=False)
    store = runtime.services["principal_store"]
    principal = await store.get(viewer.id)
    spec = registry().require("user")
    async with runtime.session_factory() as session:
        plan = await plan_for(session, principal, "user", "read", now=runtime.clock.now())
        assert plan.readable_fields == {"username", "full_name"}
        stmt = (
            select(*plan.select_columns())
            .where(plan.row_clause(), spec.column("deleted_at").is_(None))
            .order_by(*plan.order_by(["username"]))
        )
        rows = [plan.row_to_dict(r) for r in (await session.execute(stmt)).mappings()]
        names = {r["username"] for r in rows}
        assert viewer.username in names and inactive.username not in names
        assert all(set(r) <= {"id", "username", "full_name"} for r in rows)
        with pytest.raises(FieldsForbidden):
            plan.where({"email": {"_contains": "@"}})
        # Memoized on the principal: the same plan object on the next call.
        again = await plan_for(session, principal, "user", "read", now=runtime.clock.now())
        assert again is plan
        admin = await store.get((await factory.user(roles=["admin"])).id)
        admin_plan = await plan_for(session, admin, "user", "read", now=runtime.clock.now())
        assert {"email", "phone"} <= admin_plan.readable_fields
