"""Outgoing mail: SMTP when SMTP_HOST is set, otherwise the log (development default).
Mail is sent after the request's transaction commits, never inside it, in the background (so
the response time does not tell whether a mail went out), and drained at shutdown."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib

from app.core.config import Settings

logger = logging.getLogger("gatehouse.mail")


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: set[asyncio.Task[None]] = set()

    def send_in_background(self, to: str, subject: str, body: str) -> None:
        task = asyncio.create_task(self.send(to, subject, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, grace_seconds: float) -> None:
        """At shutdown: let the mail already queued go out (at most `grace_seconds`)."""
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=grace_seconds)
        if late:
            logger.error("shutdown: %d mail(s) not sent in time", len(late))
            for task in late:
                task.cancel()

    def build(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.EMAIL_FROM
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        return message

    async def send(self, to: str, subject: str, body: str) -> None:
        message = self.build(to, subject, body)
        s = self.settings
        if not s.SMTP_HOST:
            logger.info(
                "mail (not sent: no SMTP_HOST)", extra={"to": to, "subject": subject, "body": body}
            )
            return
        try:
            await aiosmtplib.send(
                message,
                hostname=s.SMTP_HOST,
                port=s.SMTP_PORT,
                username=s.SMTP_USER,
                password=s.SMTP_PASSWORD,
                use_tls=s.SMTP_TLS,
                start_tls=s.SMTP_STARTTLS,
                timeout=s.SMTP_TIMEOUT_SECONDS,
            )
        except (aiosmtplib.SMTPException, OSError):
            # The request already succeeded; a mail outage must not turn it into an error.
            logger.error("could not send mail", extra={"to": to, "subject": subject}, exc_info=True)
