"""One run in a real headless Chromium against `digest serve`: fill the subscribe form, follow
the confirmation link from the captured mail, confirm, unsubscribe. Screenshots of the subscribe
page and of an archived issue are kept under test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re

import pytest

from digest.store import subscribers as subscribers_store
from plugins.browser import ARTIFACTS, NEEDS_CHROMIUM, Chromium
from plugins.smtp import Newsroom
from plugins.website import mail_to

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]


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

        mail = mail_to(newsroom.root / "outbox", "chrome.user@example.org")
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
