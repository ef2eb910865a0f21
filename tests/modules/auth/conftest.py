"""Fixtures of the authentication tests: a real local SMTP server and small helpers."""

from __future__ import annotations

import asyncio
import email
import queue
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

API = "/api/v1/auth"


class MailBox:
    """An aiosmtpd handler keeping every delivered message (the server runs on its own thread)."""

    def __init__(self) -> None:
        self.port = 0
        self._messages: queue.Queue[EmailMessage] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self._messages.put(message)
        return "250 Message accepted for delivery"

    async def next(self, timeout: float = 10) -> EmailMessage:
        """The next delivered message (mail leaves in the background after the commit)."""
        return await asyncio.to_thread(self._messages.get, True, timeout)

    def pending(self) -> int:
        return self._messages.qsize()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[MailBox]:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()


def smtp_settings(box: MailBox) -> dict[str, Any]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": box.port, "SMTP_TIMEOUT_SECONDS": 5.0}


def token_from(message: EmailMessage, label: str) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    match = re.search(rf"{label}: (\S+)", text)
    assert match, text
    return match.group(1)


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body without what differs per request (request id)."""
    return {k: v for k, v in body.items() if k != "request_id"}


async def login(
    client: httpx.AsyncClient, username: str, password: str, **kwargs: Any
) -> httpx.Response:
    return await client.post(
        f"{API}/login", json={"username": username, "password": password}, **kwargs
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
