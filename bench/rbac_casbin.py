"""Permission checks: Gatehouse's cached principals vs pycasbin's enforce, on the same policy.

Policy: 1,000 roles x 10 permissions, inheritance chains of depth 10 (100 chains), 100,000
users with 2 roles each. Ours is built through the real code path on PostgreSQL (schema by
Alembic in a scratch database, principals by PrincipalStore / effective_roles_and_permissions);
casbin's is built in memory, in its fastest configuration without a result cache: RBAC with
role hierarchy, the cheap equality tests first in the matcher, and `FastEnforcer` indexing the
policy lines by (obj, act) so that enforce evaluates only the lines naming that permission.

Prints, side by side in one run:
  * per-check time of ours vs casbin and the ratio (target: >= 50x faster),
  * ours at depth 1 vs depth 10 (target: within 10%),
  * the cold effective-permission computation for one user on PostgreSQL (median; target < 5 ms).

    uv run --group bench python bench/rbac_casbin.py
    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test (default)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import casbin
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.authz.principal import (
    _EFFECTIVE_ROLES_SQL,
    PrincipalStore,
    effective_roles_and_permissions,
)
from app.bootstrap import migrate
from app.core.cache import SharedState
from app.core.database import create_null_pool_engine, new_id
from app.modules.users.service import load_identity

N_ROLES = 1_000
PERMS_PER_ROLE = 10
DEPTH = 10
N_USERS = 100_000
ROLES_PER_USER = 2
SAMPLE_USERS = 1_000  # principals built and cached per depth class
HOT_USERS = 100  # a working set of principals that fits the CPU caches
COLD_SAMPLES = 300
CASBIN_CHECKS = 50  # per depth class
random.seed(7)

MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj == p.obj && r.act == p.act && g(r.sub, p.sub)
"""


def role_name(i: int) -> str:
    return f"role{i}"


def permission(i: int, j: int) -> tuple[str, str]:
    return f"res{i}", f"act{j}"


def parent_of(i: int) -> int | None:
    """Chains of DEPTH roles: role c*DEPTH+k inherits from c*DEPTH+k+1 (the last has none)."""
    return i + 1 if i % DEPTH != DEPTH - 1 else None


def depth_of(i: int) -> int:
    return DEPTH - i % DEPTH


def user_roles(u: int) -> list[int]:
    """Half the users hold two chain heads (depth 10), half two chain tails (depth 1)."""
    chains = random.Random(u).sample(range(N_ROLES // DEPTH), ROLES_PER_USER)
    k = 0 if u % 2 == 0 else DEPTH - 1
    return [c * DEPTH + k for c in chains]


def checks_for(users: list[int], n: int) -> list[tuple[int, str, str, bool]]:
    """(user, obj, act, expected): half granted by the deepest ancestor, half denied."""
    rng = random.Random(11)
    out = []
    for i in range(n):
        u = users[i % len(users)]
        roles = user_roles(u)
        if i % 2 == 0:
            top = roles[0] - roles[0] % DEPTH + DEPTH - 1  # the chain's last ancestor
            obj, act = permission(top, rng.randrange(PERMS_PER_ROLE))
            out.append((u, obj, act, True))
        else:
            held = {c // DEPTH for c in roles}
            other = rng.choice([c for c in range(N_ROLES // DEPTH) if c not in held])
            obj, act = permission(other * DEPTH + DEPTH - 1, rng.randrange(PERMS_PER_ROLE))
            out.append((u, obj, act, False))
    return out


# ---- casbin -------------------------------------------------------------------------------
def build_casbin(workdir: Path) -> casbin.FastEnforcer:
    model_path = workdir / "model.conf"
    model_path.write_text(MODEL)
    policy_path = workdir / "policy.csv"
    with policy_path.open("w") as f:
        for i in range(N_ROLES):
            for j in range(PERMS_PER_ROLE):
                obj, act = permission(i, j)
                f.write(f"p, {role_name(i)}, {obj}, {act}\n")
            parent = parent_of(i)
            if parent is not None:
                f.write(f"g, {role_name(i)}, {role_name(parent)}\n")
        for u in range(N_USERS):
            for r in user_roles(u):
                f.write(f"g, user{u}, {role_name(r)}\n")
    # FastEnforcer filters the policy lines by the request's (obj, act) before the matcher runs;
    # it is not the enforce result cache (CachedEnforcer), which the comparison leaves out.
    enforcer = casbin.FastEnforcer(str(model_path), str(policy_path), cache_key_order=[1, 2])
    # user -> role -> 9 inherited roles: allow enough hierarchy levels for depth 10
    enforcer.get_role_manager().max_hierarchy_level = DEPTH + 2
    enforcer.build_role_links()
    return enforcer


# ---- ours: the database -------------------------------------------------------------------
async def _not_null_user_columns(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = 'users' AND is_nullable = 'NO' ORDER BY ordinal_position"
    )
    return [(r["column_name"], r["data_type"]) for r in rows]


def _user_value(name: str, kind: str, u: int, uid: uuid.UUID, now: dt.datetime) -> Any:
    if name == "id":
        return uid
    if name == "username":
        return f"user{u}"
    if name == "email":
        return f"user{u}@bench.local"
    if name == "is_active":
        return True
    if kind == "boolean":
        return False
    if kind in ("integer", "bigint", "smallint"):
        return 0
    if kind.startswith("timestamp"):
        return now
    if kind in ("json", "jsonb"):
        return "{}"
    if kind == "uuid":
        return uuid.uuid4()
    return f"v{u}"


async def load_data(dsn: str) -> tuple[list[uuid.UUID], dict[int, uuid.UUID]]:
    conn = await asyncpg.connect(dsn)
    now = dt.datetime.now(dt.UTC)
    try:
        role_ids = [new_id() for _ in range(N_ROLES)]
        perm_rows, rp_rows = [], []
        for i in range(N_ROLES):
            for j in range(PERMS_PER_ROLE):
                pid = new_id()
                obj, act = permission(i, j)
                perm_rows.append((pid, now, now, f"{obj}:{act}", obj, act, None, obj, False, True))
                rp_rows.append((role_ids[i], pid, now))
        await conn.copy_records_to_table(
            "roles",
            records=[
                (role_ids[i], now, now, role_name(i), None, False, True) for i in range(N_ROLES)
            ],
            columns=[
                "id",
                "created_at",
                "updated_at",
                "name",
                "description",
                "is_system",
                "is_active",
            ],
        )
        await conn.copy_records_to_table(
            "permissions",
            records=perm_rows,
            columns=[
                "id",
                "created_at",
                "updated_at",
                "name",
                "resource",
                "action",
                "description",
                "category",
                "is_system",
                "is_active",
            ],
        )
        await conn.copy_records_to_table(
            "role_permissions", records=rp_rows, columns=["role_id", "permission_id", "created_at"]
        )
        parents = [
            (role_ids[i], role_ids[p], now)
            for i in range(N_ROLES)
            if (p := parent_of(i)) is not None
        ]
        await conn.copy_records_to_table(
            "role_parents", records=parents, columns=["role_id", "parent_id", "created_at"]
        )
        columns = await _not_null_user_columns(conn)
        user_ids = {u: new_id() for u in range(N_USERS)}
        await conn.copy_records_to_table(
            "users",
            records=[
                tuple(_user_value(n, k, u, user_ids[u], now) for n, k in columns)
                for u in range(N_USERS)
            ],
            columns=[n for n, _ in columns],
        )
        await conn.copy_records_to_table(
            "user_roles",
            records=[
                (user_ids[u], role_ids[r], now) for u in range(N_USERS) for r in user_roles(u)
            ],
            columns=["user_id", "role_id", "created_at"],
        )
        await conn.execute(
            "INSERT INTO authz_state (id, version, revocation_version) VALUES (1, 1, 1)"
            " ON CONFLICT (id) DO NOTHING"
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return role_ids, user_ids


async def ours(url: str, check_sets: dict[str, list[tuple[int, str, str, bool]]]) -> dict[str, Any]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    _, user_ids = await load_data(dsn)
    load_seconds = time.perf_counter() - started
    engine = create_async_engine(url, pool_size=2)
    try:
        # cold: one recursive statement per user, connection held (as the store does)
        sample = random.Random(3).sample(range(N_USERS), COLD_SAMPLES)
        cold, cold_full = [], []
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            for u in sample:
                t = time.perf_counter()
                _, perms = await effective_roles_and_permissions(conn, user_id=user_ids[u])
                cold.append(time.perf_counter() - t)
                assert len(perms) == depth_of(user_roles(u)[0]) * PERMS_PER_ROLE * ROLES_PER_USER
        server_side = []
        explain_sql = text(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _EFFECTIVE_ROLES_SQL.text
        ).bindparams(bindparam("user_id", type_=Uuid()))
        async with engine.connect() as conn:
            for u in sample[:50]:
                plan = (
                    await conn.execute(explain_sql, {"user_id": user_ids[u], "role_name": None})
                ).scalar_one()
                plan = plan if isinstance(plan, list) else json.loads(plan)
                server_side.append(plan[0]["Planning Time"] + plan[0]["Execution Time"])
        state = SharedState(None, 60)
        state.authz_version = 1
        store = PrincipalStore(engine, state, load_identity)
        for u in sample[:100]:
            t = time.perf_counter()
            await store.load(user_ids[u])
            cold_full.append(time.perf_counter() - t)

        # cached principals for the users the checks touch
        principals: dict[int, Any] = {}
        for checks in check_sets.values():
            for u, *_ in checks:
                if u not in principals:
                    principal = await store.get(user_ids[u])
                    assert principal is not None
                    principals[u] = principal
        assert all(store.state.get_principal(user_ids[u]) is principals[u] for u in principals)

        timings = {}
        for label, checks in check_sets.items():
            # the permission a route checks is a constant, interned by require_permission()
            prepared = [
                (principals[u], sys.intern(f"{obj}:{act}"), ok) for u, obj, act, ok in checks
            ]
            assert all(p.permissions.allows(perm) == ok for p, perm, ok in prepared)
            pairs = [(p, perm) for p, perm, _ in prepared]

            def run(pairs: list[tuple[Any, str]] = pairs) -> float:
                t = time.perf_counter()
                for principal, perm in pairs:
                    principal.permissions.allows(perm)
                return (time.perf_counter() - t) / len(pairs)

            timings[label] = run
        # many short runs, interleaved, best of each: machine noise (other processes) only ever
        # adds time, so the minimum is the cost of the check itself
        results: dict[str, list[float]] = {k: [] for k in timings}
        for _ in range(60):
            for label, fn in timings.items():
                results[label].append(fn())
        return {
            "load_seconds": load_seconds,
            "cold_median": statistics.median(cold),
            "cold_p95": sorted(cold)[int(len(cold) * 0.95)],
            "cold_full_median": statistics.median(cold_full),
            "server_side_ms": statistics.median(server_side),
            "per_check": {k: min(v) for k, v in results.items()},
        }
    finally:
        await engine.dispose()


async def create_database(url: str, name: str, *, drop: bool) -> None:
    admin = create_null_pool_engine(url)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


def main() -> None:
    base = os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    scratch = f"gatehouse_bench_{os.getpid()}"
    url = make_url(base).set(database=scratch).render_as_string(hide_password=False)

    deep_users = [
        u for u in random.Random(5).sample(range(N_USERS), 4 * SAMPLE_USERS) if u % 2 == 0
    ]
    flat_users = [
        u for u in random.Random(6).sample(range(N_USERS), 4 * SAMPLE_USERS) if u % 2 == 1
    ]
    check_sets = {
        "depth 10": checks_for(deep_users[:HOT_USERS], 20_000),
        "depth 1": checks_for(flat_users[:HOT_USERS], 20_000),
        "depth 10, 1,000 principals": checks_for(deep_users[:SAMPLE_USERS], 20_000),
        "depth 1, 1,000 principals": checks_for(flat_users[:SAMPLE_USERS], 20_000),
    }
    # casbin evaluates its matcher in Python per candidate policy line and walks the role graph
    # per request: a hundred checks already give a stable figure
    casbin_checks = check_sets["depth 10"][:CASBIN_CHECKS] + check_sets["depth 1"][:CASBIN_CHECKS]

    print(
        f"policy: {N_ROLES} roles x {PERMS_PER_ROLE} permissions, depth {DEPTH},"
        f" {N_USERS:,} users x {ROLES_PER_USER} roles"
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        enforcer = build_casbin(Path(tmp))
    print(f"casbin policy built in memory in {time.perf_counter() - t:.1f}s")
    casbin_times: dict[bool, list[float]] = {True: [], False: []}
    for u, obj, act, ok in casbin_checks:
        t = time.perf_counter()
        decision = enforcer.enforce(f"user{u}", obj, act)
        casbin_times[ok].append(time.perf_counter() - t)
        assert decision == ok, (u, obj, act, ok)  # both systems decide alike
    casbin_per_check = statistics.mean(casbin_times[True] + casbin_times[False])

    asyncio.run(create_database(base, scratch, drop=False))
    try:
        t = time.perf_counter()
        migrate(url)
        print(f"scratch database {scratch} migrated in {time.perf_counter() - t:.1f}s")
        result = asyncio.run(ours(url, check_sets))
    finally:
        asyncio.run(create_database(base, scratch, drop=True))
    print(f"our data bulk-loaded (COPY) in {result['load_seconds']:.1f}s")

    ours_deep = result["per_check"]["depth 10"]
    ours_flat = result["per_check"]["depth 1"]
    wide_deep = result["per_check"]["depth 10, 1,000 principals"]
    wide_flat = result["per_check"]["depth 1, 1,000 principals"]
    casbin_granted = statistics.mean(casbin_times[True]) * 1e6
    casbin_denied = statistics.mean(casbin_times[False]) * 1e6
    lines = [
        "",
        f"casbin FastEnforcer (no cache), check : {casbin_per_check * 1e6:12.2f} us"
        f"  (granted {casbin_granted:.0f} us, denied {casbin_denied:.0f} us)",
        f"gatehouse cached principal, per check : {ours_deep * 1e6:12.3f} us  (same checks)",
        f"speed ratio casbin / gatehouse        : {casbin_per_check / ours_deep:12.0f}x"
        "  (target >= 50x)",
        "",
        f"gatehouse per check, depth 1          : {ours_flat * 1e6:12.3f} us",
        f"gatehouse per check, depth 10         : {ours_deep * 1e6:12.3f} us",
        f"depth 10 / depth 1                    : {ours_deep / ours_flat:12.3f}"
        "   (target within 1.10)",
        f"same over 1,000 cached principals     : {wide_flat * 1e6:.3f} us vs"
        f" {wide_deep * 1e6:.3f} us = {wide_deep / wide_flat:.3f}",
        "",
        f"cold effective permissions (1 query)  : median {result['cold_median'] * 1e3:.2f} ms,"
        f" p95 {result['cold_p95'] * 1e3:.2f} ms  (target median < 5 ms)",
        f"  PostgreSQL planning + execution     : median {result['server_side_ms']:.2f} ms"
        " (EXPLAIN ANALYZE)",
        f"cold full principal (2 queries)       : median {result['cold_full_median'] * 1e3:.2f} ms"
        " (PrincipalStore.load: authz data + identity)",
        f"machine load average at the end       : {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
