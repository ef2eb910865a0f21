"""`gatehouse serve` for real, as a newcomer runs it: a fresh directory, no configuration. The
server migrates, seeds, prints the super-admin password once, listens, logs JSON, and that
password logs in. Then a restart on the same directory keeps the signing key, so the token
issued before the restart still works."""

from __future__ import annotations

import contextlib
import json
import os
import re
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, workdir: Path, port: int, workers: int) -> None:
        self.log = workdir / f"serve-{port}.log"
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "ARGON2_TIME_COST": "1",
                "ARGON2_MEMORY_COST": "1024",
                "LOG_LEVEL": "INFO",
            }
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


Serve = Callable[..., Served]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    started: list[Served] = []

    def start(workers: int = 1) -> Served:
        server = Served(tmp_path, _free_port(), workers)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def test_first_start_and_restart(serve: Serve, tmp_path: Path) -> None:
    server = serve(workers=2)
    assert (tmp_path / "gatehouse.db").exists()
    assert (tmp_path / ".gatehouse_secret_key").exists()
    match = re.search(r"Created superadmin with password: (\S+)", server.output())
    assert match, server.output()
    password = match.group(1)

    login = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "superadmin", "password": password},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = httpx.get(f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["username"] == "superadmin"
    assert me.headers["cache-control"] == "no-store"

    # Logs are JSON lines (uvicorn's own included).
    json_lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(entry.get("logger", "").startswith("uvicorn") for entry in json_lines)

    server.stop()
    again = serve(workers=1)
    assert "Created superadmin" not in again.output()
    me_again = httpx.get(
        f"{again.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me_again.status_code == 200, me_again.text
