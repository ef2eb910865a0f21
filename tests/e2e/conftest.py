"""Running the REAL server in subprocesses (uvicorn, one or more workers) against the test's
migrated and seeded database: for tests that need more than one process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
E2E_SECRET_KEY = "e2e-" + "0123456789abcdef" * 2 + "ABCDEFGHIJKL"  # 48 characters


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_NAMESPACE": settings.REDIS_NAMESPACE,
            "ENVIRONMENT": "test",
            "SECRET_KEY": E2E_SECRET_KEY,
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_COST": "1024",
            "ARGON2_PARALLELISM": "1",
            "RATE_LIMIT_ENABLED": "false",
            "STATE_POLL_INTERVAL_SECONDS": str(settings.STATE_POLL_INTERVAL_SECONDS),
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "false",
        }
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    else:
        env.pop("REDIS_URL", None)
    return env


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server on {self.port} exited with {self.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"server on {self.port} not ready after {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(settings: Settings) -> Iterator[StartServer]:
    """`start_server(workers=2, SETTING="value", ...)` -> a ready Server (the keywords are
    settings for its environment); every one is killed at teardown."""
    servers: list[Server] = []

    def start(workers: int = 1, **overrides: str) -> Server:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**server_env(settings), **overrides},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        server = Server(process, port)
        servers.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
