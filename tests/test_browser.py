"""One run in a real headless Chromium against `digest serve`: fill the subscribe form, follow
the confirmation link from the captured mail, confirm, unsubscribe. Screenshots of the subscribe
page and of an archived issue are kept under test-artifacts/ (git-ignored)."""

from __future__ import annotations

import email
import mailbox
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from digest.send.deliver import send_issue
from digest.store import subscribers as subscribers_store
from plugins.browser import ARTIFACTS, NEEDS_CHROMIUM, Chromium
from plugins.smtp import Newsroom, free_port
from plugins.website import digest_serve

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]


@pytest.fixture
def served(newsroom: Newsroom) -> Iterator[str]:
    """`digest serve` in a subprocess on a free localhost port, with one issue archived."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    newsroom.env["DIGEST_BASE_URL"] = base
    newsroom.subscribe("reader@example.org", name="Reader")
    newsroom.add_posts()
    newsroom.draft()
    send_issue(newsroom.settings(), newsroom.blogs, newsroom.conn, now=newsroom.now)
    with digest_serve(newsroom.subprocess_env(), newsroom.root, port):
        yield base


def _mail_to(outbox: Path, address: str, timeout: float = 10.0) -> EmailMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if outbox.exists():
            box = mailbox.Maildir(outbox, factory=None, create=False)
            for key in box.keys():
                message = email.message_from_bytes(box.get_bytes(key), policy=default)
                if isinstance(message, EmailMessage) and message["To"] == address:
                    return message
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} in {outbox}")


def test_subscribe_confirm_unsubscribe_in_chromium(
    chromium: Chromium, served: str, newsroom: Newsroom
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = chromium.fresh_page()  # JavaScript off: the pages need none
    try:
        page.goto(f"{served}/")
        assert page.title() == "Blogs I like"
        page.screenshot(path=str(ARTIFACTS / "subscribe-page.png"), full_page=True)

        page.fill("#email", "Chrome.User@Example.org")
        page.fill("#name", "Chrome User")
        page.uncheck("input[name=categories][value=music]")
        page.click("button[type=submit]")
        assert page.locator("h1").inner_text() == "Check your inbox"

        mail = _mail_to(newsroom.root / "outbox", "chrome.user@example.org")
        body = mail.get_body(("plain",))
        assert body is not None
        link = re.search(rf"{re.escape(served)}/confirm/[\w-]+", body.get_content())
        assert link, body.get_content()
        page.goto(link[0])
        assert page.locator("h1").inner_text() == "One more step"
        page.click("text=Confirm my subscription")
        assert page.locator("h1").inner_text() == "You are subscribed"

        sub = subscribers_store.get_by_email(newsroom.conn, "chrome.user@example.org")
        assert sub is not None and sub.status == "confirmed" and sub.name == "Chrome User"
        assert sub.categories == {"permacomputing", "ml"}

        page.click("text=your preferences")
        assert page.locator("h1").inner_text() == "Your preferences"
        page.click("text=Unsubscribe from everything")
        assert page.locator("h1").inner_text() == "You are unsubscribed"
        sub = subscribers_store.get_by_email(newsroom.conn, "chrome.user@example.org")
        assert sub is not None and sub.status == "unsubscribed"

        page.goto(f"{served}/archive")
        page.click("text=#1")
        assert page.url == f"{served}/archive/1"
        page.screenshot(path=str(ARTIFACTS / "archived-issue.png"), full_page=True)
    finally:
        page.context.close()
    assert (ARTIFACTS / "subscribe-page.png").stat().st_size > 10_000
    assert (ARTIFACTS / "archived-issue.png").stat().st_size > 10_000
