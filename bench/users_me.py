"""GET /api/v1/users/me with a valid token against a bare FastAPI endpoint, side by side.

    uv run python bench/users_me.py [--duration 8] [--connections 32] [--rounds 2]
                                    [--rate-limit high|off|default]

1. A temp SQLite database (the embedded default), migrated and seeded through the real code.
2. The real server: uvicorn, 1 worker, uvloop + httptools, `bench.users_me_app:create_bench_app`
   (the real app plus a bare `GET /bench/bare` returning a constant dict, which passes through
   the same middleware), logs at WARNING.
   Rate limits: `high` (default) keeps the limiter ON as in production - its per-request cost is
   measured - with a limit high enough that wrk gets 200s, not 429s; `default` uses the shipped
   600 requests / 60 s (nearly every /me answer is then a 429: the script refuses that run);
   `off` sets RATE_LIMIT_ENABLED=false.
3. Logs in (POST /api/v1/auth/login) as a plain user holding the default `user` role.
4. wrk (-t2 -c32 -d8s) alternating bare / me (A B A B ...). Prints req/s of each and the ratio
   me / bare. Target (issue 2): >= 0.40.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.bootstrap import ensure_user, migrate, seed  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.database import create_null_pool_engine, create_session_factory  # noqa: E402
from app.core.security import PasswordHasher  # noqa: E402
from bench.harness import free_port, wait_healthy, wrk  # noqa: E402

PASSWORD = "Bench-Users-Me-Password-2024!"
USERNAME = "bench_me"


def bench_env(workdir: Path, rate_limit: str, redis_url: str | None = None) -> dict[str, str]:
    env = {
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SUPERADMIN_PASSWORD": PASSWORD,
        "SUPERADMIN_EMAIL": "superadmin@example.org",
        "LOG_LEVEL": "WARNING",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }
    if rate_limit == "off":
        env["RATE_LIMIT_ENABLED"] = "false"
    elif rate_limit == "high":
        env["RATE_LIMIT_ENABLED"] = "true"
        env["RATE_LIMIT_REQUESTS"] = "1000000000"
        env["RATE_LIMIT_WINDOW"] = "1"  # keeps the moving window short (bounded memory)
    if redis_url:
        env["REDIS_URL"] = redis_url  # rate limits and shared state in Redis
    return env


async def prepare_database(settings: Settings) -> None:
    await seed(settings)
    engine = create_null_pool_engine(settings.DATABASE_URL)
    try:
        async with create_session_factory(engine)() as session:
            await ensure_user(
                session,
                PasswordHasher(settings),
                username=USERNAME,
                email=f"{USERNAME}@example.org",
                password=PASSWORD,
                roles=["user"],
                full_name="Bench Me",
                attributes={"department": "cardiology", "ward": "C1"},
            )
            await session.commit()
    finally:
        await engine.dispose()


def start_server(
    env: dict[str, str], port: int, factory: str = "bench.users_me_app:create_bench_app"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="A B pairs")
    parser.add_argument("--rate-limit", choices=("high", "off", "default"), default="high")
    parser.add_argument(
        "--redis", metavar="URL", help="run with REDIS_URL (limits and shared state in Redis)"
    )
    args = parser.parse_args()

    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) / 2:
        print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs; figures will be noisy")

    with tempfile.TemporaryDirectory(prefix="gatehouse-users-me-") as tmp:
        env = bench_env(Path(tmp), args.rate_limit, args.redis)
        settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
        migrate(settings.DATABASE_URL)
        asyncio.run(prepare_database(settings))

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(env, port)
        # The strict baseline: a plain FastAPI app, same uvicorn settings, its own process.
        plain_port = free_port()
        plain = start_server(env, plain_port, "bench.bare_app:create_bare_app")
        try:
            wait_healthy(base, proc)
            response = httpx.post(
                f"{base}/api/v1/auth/login",
                json={"username": USERNAME, "password": PASSWORD},
                timeout=30,
            )
            if response.status_code != 200:
                raise SystemExit(f"login failed: {response.status_code} {response.text}")
            token = str(response.json()["access_token"])
            me_url, bare_url = f"{base}/api/v1/users/me", f"{base}/bench/bare"
            plain_url = f"http://127.0.0.1:{plain_port}/bench/bare"
            for _ in range(100):
                try:
                    if httpx.get(plain_url).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            me = httpx.get(me_url, headers={"Authorization": f"Bearer {token}"})
            me.raise_for_status()
            assert me.json()["username"] == USERNAME
            # Warm-up: imports, the principal cache, allocator.
            wrk(bare_url, 2, args.connections)
            wrk(me_url, 2, args.connections, token)
            wrk(plain_url, 2, args.connections)

            print(
                f"users/me bench: wrk -t2 -c{args.connections} -d{args.duration}s, 1 uvicorn "
                f"worker (uvloop, httptools), SQLite, rate limit {args.rate_limit}"
                + (f", Redis {args.redis}" if args.redis else "")
            )
            bare_rates, me_rates, plain_rates = [], [], []
            for round_ in range(args.rounds):
                p = wrk(plain_url, args.duration, args.connections)
                a = wrk(bare_url, args.duration, args.connections)
                b = wrk(me_url, args.duration, args.connections, token)
                plain_rates.append(p)
                bare_rates.append(a)
                me_rates.append(b)
                print(
                    f"  round {round_ + 1}: plain FastAPI {p:8.0f}   bare-in-app {a:8.0f}"
                    f"   /users/me {b:8.0f} req/s   ratio vs plain {b / p:.2f}"
                )
            strict = sum(me_rates) / sum(plain_rates)
            print(f"ratio /users/me / plain FastAPI app: {strict:.2f}  (target >= 0.40)")
            ratio = sum(me_rates) / sum(bare_rates)
            print(
                f"mean: bare {sum(bare_rates) / len(bare_rates):.0f} req/s, /users/me "
                f"{sum(me_rates) / len(me_rates):.0f} req/s"
            )
            verdict = "OK" if min(ratio, strict) >= 0.40 else "BELOW TARGET"
            print(f"ratio /users/me / bare endpoint in our app: {ratio:.2f}  {verdict}")
        finally:
            plain.terminate()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
