"""Patients under policies at 100,000 rows (PostgreSQL), ratios measured side by side.

    uv run python bench/patients_list.py [--rows 100000] [--small 10000] [--duration 5]
                                         [--connections 16] [--rounds 6]
                                         [--postgres postgresql+asyncpg://postgres@127.0.0.1/postgres]

1. Two scratch PostgreSQL databases bench_patients_<pid>[_small] (dropped at the end), migrated
   and seeded through the real code; a doctor (department cardiology) and 20 clinicians; the
   same synthetic patients (multi-row INSERT batches): --small in one, --rows in the other.
2. One real server on each (uvicorn, 1 worker, uvloop + httptools, logs at WARNING, rate
   limit off).
3. (c) List / search p50 with samples alternating between the two servers (background load
   hits both alike), for: doctor list, doctor ward list by admission, doctor search
   (q=<family name>), nurse list of ward C1, receptionist search and MRN lookup, guest list.
   Prints p50 of each and the ratio large / small (target <= 1.5).
4. (a) wrk alternating A B A B: A = GET /patients?limit=50 as the doctor (row filter
   department OR attending + cell masking), B = the same rows with no policy applied (the
   super-admin's implicit full policy compiles to plain columns; `department=cardiology`
   selects the doctor's department). Prints req/s and A/B (target >= 0.85). Counts the SQL
   statements of one warm request in-process (before_cursor_execute): expected 1.
5. (b) Export (CSV, streamed) of every row the admin may see at --small rows and at --rows
   rows: peak RSS growth of the server process during each export; prints the ratio. Then
   the same sorted by name (a server-side cursor instead of keyset batches by id).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.bootstrap import ensure_user, migrate, seed  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.database import create_null_pool_engine, create_session_factory  # noqa: E402
from app.core.security import PasswordHasher  # noqa: E402
from app.modules.patients.demo_data import PatientGenerator  # noqa: E402
from app.modules.patients.models import Patient  # noqa: E402
from bench.harness import free_port, wait_healthy, wrk  # noqa: E402

PASSWORD = "Bench-Patients-Password-2026!"
API = "/api/v1/patients"
BATCH = 5000


def bench_env(url: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "development",
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": "20",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SUPERADMIN_PASSWORD": PASSWORD,
        "SUPERADMIN_EMAIL": "superadmin@example.org",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_ENABLED": "false",
        "AUTH_RATE_LIMIT_REQUESTS": "100000",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }


async def admin_sql(admin_url: str, statement: str) -> None:
    engine = create_null_pool_engine(admin_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def prepare_users(settings: Settings) -> dict[str, Any]:
    await seed(settings)
    engine = create_null_pool_engine(settings.DATABASE_URL)
    hasher = PasswordHasher(settings)
    users: dict[str, Any] = {}
    try:
        async with create_session_factory(engine)() as session:
            for name, role, attrs in (
                ("bench_doctor", "doctor", {"department": "cardiology"}),
                ("bench_nurse", "nurse", {"ward": "C1"}),
                ("bench_reception", "receptionist", {}),
                ("bench_admin", "admin", {}),
            ):
                user, _ = await ensure_user(
                    session,
                    hasher,
                    username=name,
                    email=f"{name}@example.org",
                    password=PASSWORD,
                    roles=[role],
                    attributes=attrs,
                )
                users[name] = user.id
            clinicians = []
            for i in range(20):
                user, _ = await ensure_user(
                    session,
                    hasher,
                    username=f"bench_clinician_{i}",
                    email=f"bench_clinician_{i}@example.org",
                    password=PASSWORD,
                    roles=["user"],
                )
                clinicians.append(user.id)
            users["clinicians"] = clinicians
            await session.commit()
    finally:
        await engine.dispose()
    return users


async def insert_patients(
    url: str, generator: PatientGenerator, start: int, count: int, clinicians: list[Any]
) -> float:
    engine = create_null_pool_engine(url)
    began = time.perf_counter()
    try:
        async with engine.begin() as conn:
            rows: list[dict[str, Any]] = []
            for row in generator.rows(count, start=start, clinician_ids=clinicians):
                rows.append(row)
                if len(rows) == BATCH:
                    await conn.execute(insert(Patient), rows)
                    rows = []
            if rows:
                await conn.execute(insert(Patient), rows)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE patients"))
    finally:
        await engine.dispose()
    return time.perf_counter() - began


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in Settings.model_fields},
        **env,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def login(base: str, username: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(f"login {username} failed: {response.status_code} {response.text}")
    return str(response.json()["access_token"])


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export_peak(
    base: str, token: str, pid: int, params: dict[str, str] | None = None
) -> tuple[int, int, int]:
    """(rows, bytes, peak RSS growth in KiB) of one streamed export."""
    baseline = rss_kb(pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.01)

    thread = threading.Thread(target=sample)
    thread.start()
    rows = size = 0
    try:
        with httpx.stream(
            "GET",
            f"{base}{API}/export",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
    finally:
        done.set()
        thread.join()
    return rows - 1, size, peak[0] - baseline


async def statements_per_request(settings: Settings, doctor_token_user: Any) -> int:
    """In-process: SQL statements of one warm doctor list request."""
    from app.main import create_app

    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            token = (
                await client.post(
                    "/api/v1/auth/login", json={"username": doctor_token_user, "password": PASSWORD}
                )
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            (await client.get(API, params={"limit": 50}, headers=headers)).raise_for_status()
            statements: list[str] = []

            def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                statements.append(statement)

            engine = app.state.runtime.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            try:
                response = await client.get(API, params={"limit": 50}, headers=headers)
                response.raise_for_status()
            finally:
                event.remove(engine, "before_cursor_execute", count)
    # The background poll of the authorization version shares the engine; it is not part of
    # the request.
    request_statements = [
        s for s in statements if "authz_state" not in s and "auth_sessions" not in s
    ]
    if len(request_statements) != 1:
        for statement in request_statements:
            print("   ", " ".join(statement.split())[:300])
    return len(request_statements)


BENCH_USERS = ("bench_doctor", "bench_nurse", "bench_reception", "bench_admin", "superadmin")

LATENCY_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("doctor list", "bench_doctor", {"limit": 50}),
    (
        "doctor list ward=C2 sort=-admitted_at",
        "bench_doctor",
        {"ward": "C2", "sort": "-admitted_at"},
    ),
    ("doctor search q=<name>", "bench_doctor", {"q": "__NAME__"}),
    ("nurse list (ward C1)", "bench_nurse", {"limit": 50}),
    ("receptionist search q=<name>", "bench_reception", {"q": "__NAME__"}),
    ("receptionist mrn=<one>", "bench_reception", {"mrn": "MRN00000042"}),
    ("guest list", "", {"limit": 50}),
]


def latency_rounds(
    bases: tuple[str, str], tokens: tuple[dict[str, str], dict[str, str]], name: str, n: int
) -> tuple[dict[str, float], dict[str, float]]:
    """p50 of each case on the small and the large database, samples alternating between the
    two servers so that background load on this shared machine hits both sides alike."""
    small: dict[str, float] = {}
    large: dict[str, float] = {}
    with (
        httpx.Client(base_url=bases[0], timeout=60) as a,
        httpx.Client(base_url=bases[1], timeout=60) as b,
    ):
        for label, user, params in LATENCY_CASES:
            params = {k: (name if v == "__NAME__" else v) for k, v in params.items()}
            sides: list[tuple[httpx.Client, dict[str, str], list[float]]] = []
            for client, side_tokens in ((a, tokens[0]), (b, tokens[1])):
                token = side_tokens.get(user)
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                for _ in range(5):  # warm-up (plans, caches)
                    client.get(API, params=params, headers=headers).raise_for_status()
                sides.append((client, headers, []))
            for _ in range(n):
                for client, headers, samples in sides:
                    began = time.perf_counter()
                    response = client.get(API, params=params, headers=headers)
                    samples.append(time.perf_counter() - began)
                    response.raise_for_status()
            small[label] = statistics.median(sides[0][2]) * 1000
            large[label] = statistics.median(sides[1][2]) * 1000
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "GATEHOUSE_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) / 2:
        print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs; figures will be noisy")

    name = f"bench_patients_{os.getpid()}"
    small_name = f"{name}_small"
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    small_url = (
        make_url(args.postgres).set(database=small_name).render_as_string(hide_password=False)
    )
    procs: list[subprocess.Popen[bytes]] = []
    proc: subprocess.Popen[bytes] | None = None
    for db in (name, small_name):
        asyncio.run(admin_sql(args.postgres, f'CREATE DATABASE "{db}"'))
    try:
        # Two databases with the same users and the same first --small patients; the large one
        # gets the rest. Both servers run side by side for the interleaved latency samples.
        sides = []
        for db_url, rows in ((small_url, args.small), (url, args.rows)):
            env = bench_env(db_url)
            settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
            migrate(db_url)
            users = asyncio.run(prepare_users(settings))
            generator = PatientGenerator(seed=7)
            clinicians = [users["bench_doctor"], *users["clinicians"]]
            took = asyncio.run(insert_patients(db_url, generator, 0, args.small, clinicians))
            if rows > args.small:
                took += asyncio.run(
                    insert_patients(db_url, generator, args.small, rows - args.small, clinicians)
                )
            print(f"inserted {rows:,} patients in {took:.1f}s")
            port = free_port()
            server = start_server(env, port)
            procs.append(server)
            sides.append((f"http://127.0.0.1:{port}", server, settings))
        for side_base, server, _ in sides:
            wait_healthy(side_base, server)
        side_tokens = tuple(
            {u: login(side_base, u) for u in BENCH_USERS} for side_base, _, _ in sides
        )
        search_name = generator.family[3]
        (small_base, small_proc, _), (base, proc, settings) = sides
        tokens = side_tokens[1]

        small, large = latency_rounds(
            (small_base, base),
            (side_tokens[0], side_tokens[1]),
            search_name,
            args.samples,
        )
        small_export = export_peak(small_base, side_tokens[0]["bench_admin"], small_proc.pid)
        large_export = export_peak(base, tokens["bench_admin"], proc.pid)
        # Sorted: one server-side cursor instead of keyset batches by id.
        by_name = {"sort": "family_name,given_name"}
        small_sorted = export_peak(
            small_base, side_tokens[0]["bench_admin"], small_proc.pid, by_name
        )
        large_sorted = export_peak(base, tokens["bench_admin"], proc.pid, by_name)
        small_proc.terminate()
        small_proc.wait(timeout=30)

        print(
            f"\n(c) list / search p50, {args.samples} samples each, alternating between a server"
            f" on {args.small:,} and one on {args.rows:,} patients (target ratio <= 1.5)"
        )
        for label in small:
            print(
                f"  {label:<40} {small[label]:7.2f} ms  {large[label]:7.2f} ms"
                f"  ratio {large[label] / small[label]:.2f}"
            )

        print("\n(b) streamed CSV export of every row (admin): rows, bytes, peak RSS growth")
        for label, (rows, size, growth) in (("small", small_export), ("large", large_export)):
            print(
                f"  {label:<6} {rows:>8,} rows {size / 1e6:8.1f} MB  peak RSS +{growth / 1024:.1f} MiB"
            )
        ratio = (large_export[2] or 1) / (small_export[2] or 1)
        print(
            f"  RSS growth ratio large / small: {ratio:.2f} for {args.rows / args.small:.0f}x rows"
        )
        for label, (rows, _, growth) in (("small", small_sorted), ("large", large_sorted)):
            print(f"  {label:<6} {rows:>8,} rows sorted by name  peak RSS +{growth / 1024:.1f} MiB")
        sorted_ratio = (large_sorted[2] or 1) / (small_sorted[2] or 1)
        print(f"  sorted: RSS growth ratio large / small: {sorted_ratio:.2f}")

        doctor_url = f"{base}{API}?limit=50"
        plain_url = f"{base}{API}?limit=50&department=cardiology"
        doctor_total = httpx.get(
            doctor_url, headers={"Authorization": f"Bearer {tokens['bench_doctor']}"}
        ).json()["total"]
        plain_total = httpx.get(
            plain_url, headers={"Authorization": f"Bearer {tokens['superadmin']}"}
        ).json()["total"]
        wrk(doctor_url, 2, args.connections, tokens["bench_doctor"])
        wrk(plain_url, 2, args.connections, tokens["superadmin"])
        print(
            f"\n(a) wrk -t2 -c{args.connections} -d{args.duration}s, 1 uvicorn worker, "
            f"{args.rows:,} patients"
        )
        print(
            f"  A doctor (policy: {doctor_total:,} rows)  B super-admin plain columns "
            f"department=cardiology ({plain_total:,} rows)"
        )
        a_runs, b_runs = [], []
        for i in range(args.rounds):
            a_runs.append(wrk(doctor_url, args.duration, args.connections, tokens["bench_doctor"]))
            b_runs.append(wrk(plain_url, args.duration, args.connections, tokens["superadmin"]))
            print(f"  round {i + 1}: A {a_runs[-1]:8.1f} req/s   B {b_runs[-1]:8.1f} req/s")
        a, b = statistics.mean(a_runs), statistics.mean(b_runs)
        print(f"  mean: A {a:.1f} req/s, B {b:.1f} req/s, ratio A/B = {a / b:.2f} (target >= 0.85)")
        proc.terminate()
        proc.wait(timeout=30)
        proc = None
        count = asyncio.run(statements_per_request(settings, "bench_doctor"))
        print(f"  SQL statements per warm doctor list request (in-process): {count} (target 1)")
    finally:
        for server in procs:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)
        for db in (name, small_name):
            asyncio.run(admin_sql(args.postgres, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
