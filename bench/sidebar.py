"""GET /api/v1/routes/sidebar at 500 routes against a bare FastAPI endpoint, side by side.

    uv run python bench/sidebar.py [--routes 500] [--duration 8] [--connections 32] [--rounds 2]

1. A temp SQLite database, migrated and seeded through the real code (app.bootstrap), plus
   --routes navigation routes inserted directly (several modules, nested trees, a mix of
   required permissions, a few inactive / hidden).
2. The real server: uvicorn, 1 worker, `bench.sidebar_app:create_bench_app` (the real app plus a
   bare `GET /bench/bare` returning a constant dict), rate limiting off, logs at WARNING.
3. Logs in as the super-admin (POST /api/v1/auth/login; falls back to minting an access token
   on an inserted session row if login is unavailable) and as a plain `user`.
4. wrk (-t2 -c32 -d8s) alternating bare / sidebar (A B A B ...), for the super-admin (every
   route visible: the largest body) and for a plain user. Both sides send a browser's
   `Accept-Encoding` (the sidebar serves its cached gzip body; --identity to bench without).
5. A load-robust cross-check without sockets: the same app called in-process through ASGI,
   alternating bare / sidebar in short batches; best (minimum) microseconds per request each.

Prints req/s and the ratio sidebar / bare (rates summed over rounds, and the median of the
per-round ratios). Target (issue 3): >= 0.50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from app.bootstrap import ensure_user, migrate, seed  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.database import create_null_pool_engine, create_session_factory, new_id  # noqa: E402
from app.core.security import PasswordHasher, TokenService  # noqa: E402
from app.modules.auth.models import AuthSession  # noqa: E402
from app.modules.navigation.models import NavModule, NavRoute  # noqa: E402
from bench.harness import free_port, wait_healthy, wrk  # noqa: E402

PASSWORD = "Bench-Sidebar-Password-2024!"
PERMISSIONS = [None, None, "patient:read", "user:read", "role:read", "audit:read", "profile:read"]


def bench_env(workdir: Path) -> dict[str, str]:
    return {
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "RATE_LIMIT_ENABLED": "false",
        "SUPERADMIN_PASSWORD": PASSWORD,
        "SUPERADMIN_EMAIL": "superadmin@example.org",
        "LOG_LEVEL": "WARNING",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


async def prepare_database(settings: Settings, routes: int) -> None:
    await seed(settings)
    engine = create_null_pool_engine(settings.DATABASE_URL)
    rng = random.Random(42)
    try:
        async with create_session_factory(engine)() as session:
            modules = []
            for m in range(10):
                row = {
                    "id": new_id(),
                    "name": f"bench-{m}",
                    "label": f"Bench module {m}",
                    "icon": "box",
                    "order": 100 + m,
                    "description": f"Benchmark module {m}",
                    "is_active": True,
                }
                modules.append(row)
            await session.execute(insert(NavModule), modules)
            rows: list[dict[str, Any]] = []
            by_module: dict[Any, list[Any]] = {m["id"]: [] for m in modules}
            for n in range(routes):
                module = modules[n % len(modules)]
                siblings = by_module[module["id"]]
                parent = rng.choice(siblings) if siblings and rng.random() < 0.6 else None
                route_id = new_id()
                rows.append(
                    {
                        "id": route_id,
                        "module_id": module["id"],
                        "parent_id": parent,
                        "name": f"bench-route-{n}",
                        "label": f"Bench route {n}",
                        "path": f"/bench/{module['name']}/{n}",
                        "icon": "file",
                        "order": rng.randint(0, 50),
                        "required_permission": rng.choice(PERMISSIONS),
                        "show_in_sidebar": rng.random() > 0.03,
                        "is_active": rng.random() > 0.03,
                        "meta": {"badge": n} if n % 7 == 0 else {},
                    }
                )
                siblings.append(route_id)
            await session.execute(insert(NavRoute), rows)
            hasher = PasswordHasher(settings)
            await ensure_user(
                session,
                hasher,
                username="bench_user",
                email="bench_user@example.org",
                password=PASSWORD,
                roles=["user"],
            )
            await session.commit()
    finally:
        await engine.dispose()


async def mint_token(settings: Settings, username: str) -> str:
    """Fallback when POST /auth/login is not available: a real session row and access token."""
    from app.core.clock import Clock
    from app.modules.users.models import User

    engine = create_null_pool_engine(settings.DATABASE_URL)
    try:
        async with create_session_factory(engine)() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            now = Clock().now()
            row = AuthSession(user_id=user.id, expires_at=now + timedelta(days=1))
            session.add(row)
            await session.commit()
            token, _ = TokenService(settings).create_access_token(user.id, row.id, now)
            return token
    finally:
        await engine.dispose()


def login(base: str, settings: Settings, username: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    if response.status_code == 200:
        return str(response.json()["access_token"])
    print(f"  (login answered {response.status_code}; minting a token for {username})")
    return asyncio.run(mint_token(settings, username))


def start_server(
    workdir: Path,
    env: dict[str, str],
    port: int,
    factory: str = "bench.sidebar_app:create_bench_app",
) -> subprocess.Popen[bytes]:
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
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


ACCEPT_ENCODING = "gzip, deflate, br"  # what browsers send; the bare endpoint ignores it


def browser_headers() -> dict[str, str]:
    return {"Accept-Encoding": ACCEPT_ENCODING} if ACCEPT_ENCODING else {}


async def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def in_process(settings: Settings, tokens: dict[str, str], batches: int = 7) -> None:
    from bench.sidebar_app import create_bench_app

    app = create_bench_app(settings)
    cases: list[tuple[str, str, list[tuple[bytes, bytes]]]] = [("bare", "/bench/bare", [])]
    for name, token in tokens.items():
        auth = [(b"authorization", f"Bearer {token}".encode())]
        cases.append((f"sidebar ({name})", "/api/v1/routes/sidebar", auth))
    cases.append(("sidebar (guest)", "/api/v1/routes/sidebar", []))
    best: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        for _, path, headers in cases:  # warm-up, and every case must answer 200
            assert await asgi_get(app, path, headers) == 200, path
        for _ in range(batches):
            for name, path, headers in cases:
                n = 500
                start = time.perf_counter()
                for _ in range(n):
                    await asgi_get(app, path, headers)
                best[name] = min(best.get(name, 1e9), (time.perf_counter() - start) / n * 1e6)
    print(f"\nin-process (ASGI, no sockets), best of {batches} batches of 500:")
    for name, micros in best.items():
        ratio = best["bare"] / micros
        print(f"  {name:22s} {micros:7.0f} us/request   ratio vs bare {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs per caller")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument(
        "--identity", action="store_true", help="Send no Accept-Encoding (uncompressed bodies)"
    )
    args = parser.parse_args()
    if args.identity:
        global ACCEPT_ENCODING
        ACCEPT_ENCODING = ""

    with tempfile.TemporaryDirectory(prefix="gatehouse-sidebar-") as tmp:
        workdir = Path(tmp)
        env = bench_env(workdir)
        settings = settings_of(env)
        migrate(settings.DATABASE_URL)
        asyncio.run(prepare_database(settings, args.routes))

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(workdir, env, port)
        # The baseline is a plain FastAPI app (same uvicorn settings, its own process): an
        # endpoint added to our app would pay for route matching behind ~150 routes.
        plain_port = free_port()
        plain = start_server(workdir, env, plain_port, "bench.bare_app:create_bare_app")
        try:
            wait_healthy(base, proc)
            callers = {
                "superadmin": login(base, settings, "superadmin"),
                "user": login(base, settings, "bench_user"),
            }
            sidebar_url = f"{base}/api/v1/routes/sidebar"
            bare_url = f"http://127.0.0.1:{plain_port}/bench/bare"
            for _ in range(100):
                try:
                    if httpx.get(bare_url).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            sizes = {}
            for name, token in callers.items():
                response = httpx.get(sidebar_url, headers={"Authorization": f"Bearer {token}"})
                response.raise_for_status()
                body = response.json()
                count = 0
                stack = [n for section in body for n in section["routes"]]
                while stack:
                    node = stack.pop()
                    count += 1
                    stack.extend(node["children"])
                gz = httpx.get(
                    sidebar_url,
                    headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
                )
                gz_size = int(gz.headers.get("content-length", 0))
                sizes[name] = (len(response.content), count, len(body), gz_size)
            # Warm-up (imports, caches, JIT-less but allocator-warm).
            wrk(bare_url, 2, args.connections, headers=browser_headers())
            wrk(sidebar_url, 2, args.connections, callers["superadmin"], browser_headers())

            print(
                f"sidebar bench: {args.routes} extra routes, wrk -t2 -c{args.connections} "
                f"-d{args.duration}s, 1 uvicorn worker, SQLite, "
                f"Accept-Encoding: {ACCEPT_ENCODING or '(none)'}"
            )
            summary = []
            for name, token in callers.items():
                size, nodes, sections, gz_size = sizes[name]
                print(
                    f"\ncaller {name}: {nodes} nodes in {sections} modules, {size} bytes"
                    f" ({gz_size} gzip)"
                )
                bare_rates, sidebar_rates = [], []
                for round_ in range(args.rounds):
                    a = wrk(bare_url, args.duration, args.connections, headers=browser_headers())
                    b = wrk(sidebar_url, args.duration, args.connections, token, browser_headers())
                    bare_rates.append(a)
                    sidebar_rates.append(b)
                    print(
                        f"  round {round_ + 1}: bare {a:9.0f} req/s   sidebar {b:9.0f} req/s"
                        f"   ratio {b / a:.2f}"
                    )
                ratio = sum(sidebar_rates) / sum(bare_rates)
                median = statistics.median(
                    b / a for a, b in zip(bare_rates, sidebar_rates, strict=True)
                )
                summary.append((name, ratio, median))
                print(
                    f"  mean: bare {sum(bare_rates) / len(bare_rates):.0f} req/s, sidebar "
                    f"{sum(sidebar_rates) / len(sidebar_rates):.0f} req/s -> ratio {ratio:.2f}"
                    f" (median of rounds {median:.2f})"
                )
            print()
            for name, ratio, median in summary:
                verdict = "OK" if ratio >= 0.5 else "BELOW TARGET"
                print(
                    f"ratio sidebar/bare ({name}): {ratio:.2f}, median {median:.2f}"
                    f"  (target >= 0.50) {verdict}"
                )
        finally:
            plain.terminate()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.skip_in_process:
            asyncio.run(in_process(settings, callers))


if __name__ == "__main__":
    main()
