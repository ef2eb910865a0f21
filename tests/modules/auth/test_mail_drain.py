"""Mail queued in the background is delivered before the process stops (lifespan drain)."""

from __future__ import annotations

from app.core.config import Settings
from app.core.mail import Mailer
from tests.modules.auth.conftest import MailBox, smtp_settings


async def test_drain_delivers_what_is_queued(mailbox: MailBox) -> None:
    settings = Settings(_env_file=None, ENVIRONMENT="test", **smtp_settings(mailbox))  # type: ignore[call-arg]
    mailer = Mailer(settings)
    for n in range(3):
        mailer.send_in_background(f"user{n}@example.org", f"Hello {n}", "body")
    assert mailbox.pending() == 0  # nothing has had a chance to go out yet
    await mailer.drain(grace_seconds=5)
    assert mailbox.pending() == 3
    subjects = sorted([str((await mailbox.next())["Subject"]) for _ in range(3)])
    assert subjects == ["Hello 0", "Hello 1", "Hello 2"]
    await mailer.drain(grace_seconds=5)  # nothing left: returns at once
