"""Login throughput against the hash-bound ceiling, and /users/me latency while logins run.

    uv run python bench/login_throughput.py [--clients 16] [--duration 6] [--rounds 3]

1. Ceiling: times N Argon2id verifies in one thread with the default (production) parameters;
   ceiling = usable cores / verify time. No server can log people in faster than that. It is
   measured before and after each throughput round (step 4): the ratio is per round, and the
   median is reported.
2. Starts the real server (`gatehouse serve`, uvicorn, 1 worker, embedded SQLite in a temp
   directory, default Argon2 parameters, RATE_LIMIT_ENABLED=false), registers a user.
3. Idle: GET /api/v1/users/me sequentially for a few seconds -> idle p99.
4. Load: `wrk` (or httpx if wrk is missing) posts logins from --clients concurrent
   connections for --duration seconds, --rounds times (throughput); then once more while the
   same /users/me probe runs -> loaded p99.

Prints ratios measured side by side in the same run. Targets (issue 2):
logins/s / ceiling >= 0.85, loaded p99 / idle p99 <= 4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.core.security import PasswordHasher  # noqa: E402
from bench.harness import free_port, wait_healthy  # noqa: E402

PASSWORD = "Bench-Login-Password-2024!"
DATABASE_URL: str | None = None  # --database-url; the embedded SQLite file by default


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


ARGON2: dict[str, str] = {}  # --argon2-memory / --argon2-time; the defaults otherwise


def bench_settings() -> Settings:
    return Settings(_env_file=None, ENVIRONMENT="test", **ARGON2)  # type: ignore[call-arg,arg-type]


def measure_verify_seconds(samples: int) -> tuple[float, Settings]:
    """Mean time of one Argon2id verify in one thread, default (production) parameters."""
    settings = bench_settings()
    hasher = PasswordHasher(settings)
    hashed = hasher.hash_sync(PASSWORD)
    verify = hasher._hash.verify
    for _ in range(3):
        verify(PASSWORD, hashed)
    start = time.perf_counter()
    for _ in range(samples):
        assert verify(PASSWORD, hashed)
    return (time.perf_counter() - start) / samples, settings


def measure_parallel_rate(threads: int, samples: int) -> float:
    """Verifies per second with `threads` threads in one process (diagnostic: shows whether
    the machine's cores really scale the hash; argon2 releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    settings = bench_settings()
    hasher = PasswordHasher(settings)
    hashed = hasher.hash_sync(PASSWORD)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: hasher._hash.verify(PASSWORD, hashed), range(threads)))
        start = time.perf_counter()
        list(pool.map(lambda _: hasher._hash.verify(PASSWORD, hashed), range(samples)))
        return samples / (time.perf_counter() - start)


def thread_cpu(pid: int) -> dict[int, float] | None:
    """CPU seconds (user + system) of each thread of `pid`, from /proc (None off Linux)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    for task in tasks.iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        cpu[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return cpu


def cpu_per_login(
    pid: int, before: dict[int, float], after: dict[int, float], logins: float, hashers: int
) -> tuple[float, float, float]:
    """(event loop, hash workers, other threads) CPU milliseconds per login.

    The event loop is the main thread; the hash workers are the `hashers` busiest other
    threads (the password-hash pool); the rest are SQLite's connection threads and the like."""
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = spent.pop(pid, 0.0)
    ranked = sorted(spent.values(), reverse=True)
    hashing, other = sum(ranked[:hashers]), sum(ranked[hashers:])
    return tuple(1000 * part / logins for part in (loop, hashing, other))  # type: ignore[return-value]


def start_server(
    workdir: Path, port: int, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in Settings.model_fields},
        "PYTHONPATH": str(ROOT),
        "ENVIRONMENT": "development",
        "DATABASE_URL": DATABASE_URL or f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "RATE_LIMIT_ENABLED": "false",
        "SUPERADMIN_PASSWORD": PASSWORD,
        "LOG_LEVEL": "WARNING",
        **ARGON2,
        **(extra or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def prepare_user(base: str, prefix: str) -> tuple[str, str]:
    """Registers a user (falls back to the super-admin); returns (username, access token)."""
    username = f"bench_{secrets.token_hex(4)}"
    response = httpx.post(
        f"{base}{prefix}/auth/register",
        json={"username": username, "email": f"{username}@example.org", "password": PASSWORD},
        timeout=30,
    )
    if response.status_code != 201:
        print(f"  (register answered {response.status_code}; using the super-admin)")
        username = "superadmin"
    login = httpx.post(
        f"{base}{prefix}/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    login.raise_for_status()
    token = login.json()["access_token"]
    me = httpx.get(f"{base}{prefix}/users/me", headers={"Authorization": f"Bearer {token}"})
    me.raise_for_status()
    return username, token


async def probe(base: str, token: str, seconds: float, pause: float) -> list[float]:
    """Sequential GET /users/me; returns latencies in seconds."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.get("/api/v1/users/me")
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"/users/me answered {response.status_code}")
            await asyncio.sleep(pause)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(base: str, body: str, clients: int, duration: int, workdir: Path) -> tuple[float, int]:
    script = workdir / "login.lua"
    script.write_text(WRK_SCRIPT % body)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"{base}/api/v1/auth/login",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        print(f"  wrk: {errors.group(0)}")
    return rate, int(bad.group(1)) if bad else 0


async def run_httpx(base: str, body: str, clients: int, duration: int) -> tuple[float, int]:
    ok = bad = 0
    payload = json.loads(body)

    async def one_client() -> None:
        nonlocal ok, bad
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.perf_counter() < deadline:
                response = await client.post("/api/v1/auth/login", json=payload)
                if response.status_code == 200:
                    ok += 1
                else:
                    bad += 1

    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return (ok + bad) / (time.perf_counter() - start), bad


def login_load(base: str, body: str, args: argparse.Namespace, workdir: Path) -> tuple[float, int]:
    if shutil.which("wrk") is not None and not args.httpx:
        return run_wrk(base, body, args.clients, args.duration, workdir)
    return asyncio.run(run_httpx(base, body, args.clients, args.duration))


async def loaded_probe(
    base: str, token: str, body: str, args: argparse.Namespace, workdir: Path
) -> tuple[float, int, list[float]]:
    load = asyncio.create_task(asyncio.to_thread(login_load, base, body, args, workdir))
    await asyncio.sleep(1.0)  # let the load ramp up
    latencies = await probe(base, token, max(1.0, args.duration - 2.5), args.pause)
    rate, bad = await load
    return rate, bad, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=int, default=6, help="seconds of each load phase")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds")
    parser.add_argument(
        "--probe-duration", type=int, default=10, help="seconds of the loaded /users/me phase"
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--pause", type=float, default=0.01, help="between probe requests")
    parser.add_argument("--verify-samples", type=int, default=20, help="per measurement")
    parser.add_argument("--httpx", action="store_true", help="use httpx instead of wrk")
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="also measure logins/s with trivial hashing (the per-login cost besides the hash)",
    )
    parser.add_argument(
        "--database-url",
        help="run the server on this database instead of a temp SQLite file (e.g. an empty"
        " PostgreSQL database)",
    )
    parser.add_argument("--argon2-memory", type=int, help="KiB (compare parameter sets)")
    parser.add_argument("--argon2-time", type=int, help="passes (compare parameter sets)")
    args = parser.parse_args()
    global DATABASE_URL
    DATABASE_URL = args.database_url
    if args.argon2_memory:
        ARGON2["ARGON2_MEMORY_COST"] = str(args.argon2_memory)
    if args.argon2_time:
        ARGON2["ARGON2_TIME_COST"] = str(args.argon2_time)

    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"NOTE: load average {load1:.2f} before the run; other work skews the figures")
    cores = usable_cores()
    before, settings = measure_verify_seconds(args.verify_samples)
    parallel = measure_parallel_rate(cores, args.verify_samples)
    print(
        f"Argon2id verify (t={settings.ARGON2_TIME_COST}, m={settings.ARGON2_MEMORY_COST} KiB,"
        f" p={settings.ARGON2_PARALLELISM}): {before * 1000:.1f} ms in one thread;"
        f" {parallel:.1f} verifies/s with {cores} threads (diagnostic)"
    )

    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(workdir, port)
        try:
            wait_healthy(base, server)
            username, token = prepare_user(base, settings.API_PREFIX)
            body = json.dumps({"username": username, "password": PASSWORD})
            idle = asyncio.run(probe(base, token, args.idle_seconds, args.pause))
            # Throughput on its own (the probe's client would take CPU from the server), in
            # rounds, each between two measurements of the verify time: the machine's speed
            # drifts by more than the effect measured, so each round has its own ceiling ...
            rounds: list[tuple[float, int, float]] = []  # (logins/s, non-2xx, verify seconds)
            cpu_before = thread_cpu(server.pid)
            for _ in range(args.rounds):
                first, _ = measure_verify_seconds(args.verify_samples)
                round_rate, round_bad = login_load(base, body, args, workdir)
                second, _ = measure_verify_seconds(args.verify_samples)
                rounds.append((round_rate, round_bad, (first + second) / 2))
            cpu_after = thread_cpu(server.pid)
            # ... then latency of /users/me while the same login load runs.
            probing = argparse.Namespace(**{**vars(args), "duration": args.probe_duration})
            rate2, bad2, loaded = asyncio.run(loaded_probe(base, token, body, probing, workdir))
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    overhead_rate = None
    if args.overhead:
        with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
            workdir = Path(tmp)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            light = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "8"}
            server = start_server(workdir, port, light)
            try:
                wait_healthy(base, server)
                username, _ = prepare_user(base, settings.API_PREFIX)
                body = json.dumps({"username": username, "password": PASSWORD})
                overhead_rate, _ = login_load(base, body, args, workdir)
            finally:
                server.terminate()
                server.wait(timeout=15)
    ratios = []
    for number, (round_rate, _, round_verify) in enumerate(rounds, 1):
        ratios.append(round_rate * round_verify / cores)
        print(
            f"  round {number}: {round_rate:.1f} logins/s; verify {round_verify * 1000:.1f} ms,"
            f" ceiling {cores / round_verify:.1f}/s; ratio {ratios[-1]:.2f}"
        )
    rate = statistics.mean(r for r, _, _ in rounds)
    bad = sum(b for _, b, _ in rounds)
    verify_s = statistics.mean(v for _, _, v in rounds)
    ceiling = cores / verify_s

    idle_p99, loaded_p99 = percentile(idle, 99), percentile(loaded, 99)
    print(
        f"hash-bound ceiling: {cores} cores / {verify_s * 1000:.1f} ms (verify time measured"
        f" before and after each round) = {ceiling:.1f} logins/s"
    )
    print(f"logins: {rate:.1f}/s from {args.clients} clients ({bad} non-2xx)")
    print(
        f"login throughput / ceiling = {statistics.median(ratios):.2f} (median of"
        f" {len(ratios)} rounds; {min(ratios):.2f}-{max(ratios):.2f})   (target >= 0.85)"
    )
    print(
        f"  bound of this machine: {cores} threads doing nothing but verify reach"
        f" {parallel / ceiling:.2f} of the ceiling ({parallel:.1f}/s)"
    )
    if cpu_before and cpu_after:
        loop, hashing, other = cpu_per_login(
            server.pid, cpu_before, cpu_after, rate * args.duration * len(rounds), cores
        )
        total = loop + hashing + other
        print(
            f"  CPU per login: {total:.1f} ms = hash {hashing:.1f} (one thread, idle machine:"
            f" {verify_s * 1000:.1f}) + event loop {loop:.1f} + other threads {other:.1f};"
            f" {cores} cores / {total:.1f} ms = {cores * 1000 / total:.1f} logins/s"
        )
    print(f"  (with the /users/me probe running: {rate2:.1f}/s, {bad2} non-2xx)")
    print(
        f"/users/me p50 idle {percentile(idle, 50) * 1000:.2f} ms, under login load"
        f" {percentile(loaded, 50) * 1000:.2f} ms"
    )
    print(
        f"/users/me p99 idle {idle_p99 * 1000:.2f} ms ({len(idle)} requests), under login load"
        f" {loaded_p99 * 1000:.2f} ms ({len(loaded)} requests)"
    )
    print(f"p99 loaded / idle = {loaded_p99 / idle_p99:.2f}   (target <= 4)")
    if overhead_rate:
        print(
            f"with trivial hashing: {overhead_rate:.1f} logins/s, i.e. about"
            f" {1000 / overhead_rate:.1f} ms of event-loop work per login besides the hash"
        )
    if bad or bad2:
        print("WARNING: some logins failed; the throughput figures count them")


if __name__ == "__main__":
    main()
