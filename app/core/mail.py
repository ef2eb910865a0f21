"""Outgoing mail: SMTP when SMTP_HOST is set, otherwise the log (development default).
Mail is sent after the request's transaction commits, never inside it."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from app.core.config import Settings

logger = logging.getLogger("gatehouse.mail")


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

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
