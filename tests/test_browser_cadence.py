"""The cadence choice in a real headless Chromium against `digest serve`: sign up choosing
Monthly with the keyboard, confirm from the captured mail, find Monthly checked on the
preferences page, switch to Weekly and save. axe-core (WCAG 2.x A/AA) on the signup form, the
subscribe box of an archived issue and the preferences page at 375 and 1200 px, light and dark;
their screenshots are test-artifacts/cadence-*.png (git-ignored)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from digest.store import subscribers as subscribers_store
from plugins.browser import NEEDS_CHROMIUM, Chromium, axe_report, axe_violations, screenshot
from plugins.smtp import Newsroom
from plugins.website import mail_to

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

ADDRESS = "monthly.reader@example.org"
SCHEMES = {"light": False, "dark": True}


def _cadence(newsroom: Newsroom) -> str:
    sub = subscribers_store.get_by_email(newsroom.conn, ADDRESS)
    assert sub is not None
    return sub.cadence


def _checked(page: Any) -> dict[str, bool]:
    radios = page.locator("input[type=radio][name=cadence]")
    return {
        radios.nth(i).get_attribute("value"): radios.nth(i).is_checked()
        for i in range(radios.count())
    }


def _look(chromium: Chromium, url: str, name: str, card: str) -> list[str]:
    """Screenshots of ``url`` (the whole page, and the ``card`` holding the form) at both widths
    in both schemes; axe's findings, if any."""
    failures = []
    for width in (375, 1200):
        for scheme, dark in SCHEMES.items():
            page = chromium.page(width=width, dark=dark)
            response = page.goto(url)
            assert response is not None and response.status == 200, url
            legend = page.locator("fieldset.cadence legend")
            assert legend.first.inner_text() == "How often"
            shot = screenshot(page, f"cadence-{name}-{width}-{scheme}")
            assert shot.stat().st_size > 5_000
            page.locator(card).screenshot(path=str(shot.with_name(f"{shot.stem}-form.png")))
            if violations := axe_violations(page):
                failures.append(f"{name} at {width} px, {scheme}:\n{axe_report(violations)}")
    return failures


def test_choose_monthly_then_weekly_in_chromium(
    chromium: Chromium, served: str, newsroom: Newsroom
) -> None:
    failures = _look(chromium, f"{served}/", "signup", "#subscribe")
    failures += _look(chromium, f"{served}/archive/1", "box", ".subscribe-box")

    page = chromium.fresh_page()  # JavaScript off: the pages need none
    try:
        page.goto(f"{served}/")
        assert _checked(page) == {"weekly": True, "monthly": False}
        page.fill("#email", ADDRESS)
        # The keyboard alone: Tab into the group lands on the checked radio, an arrow moves on.
        page.focus("#name")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.value") == "weekly"
        page.keyboard.press("ArrowDown")
        assert _checked(page) == {"weekly": False, "monthly": True}
        page.click("#subscribe button[type=submit]")
        assert page.locator("h1").inner_text() == "Check your inbox"
        assert "the monthly edition" in page.locator("main").inner_text()

        mail = mail_to(newsroom.root / "outbox", ADDRESS)
        body = mail.get_body(("plain",))
        assert body is not None and "the monthly edition" in body.get_content()
        link = re.search(rf"{re.escape(served)}/confirm/[\w-]+", body.get_content())
        assert link, body.get_content()
        page.goto(link[0])
        assert "the monthly edition" in page.locator("main").inner_text()
        page.click("text=Confirm my subscription")
        assert page.locator("h1").inner_text() == "You are subscribed"
        assert "You get the monthly edition" in page.locator("main").inner_text()
        assert _cadence(newsroom) == "monthly"

        page.click("text=your preferences")
        assert page.locator("h1").inner_text() == "Your preferences"
        assert _checked(page) == {"weekly": False, "monthly": True}
        preferences = page.url
        failures += _look(chromium, preferences, "preferences", "main .card")

        page.check("input[name=cadence][value=weekly]")
        page.click("text=Save")
        assert "Saved. You get every weekly issue" in page.locator(".notice").inner_text()
        assert _checked(page) == {"weekly": True, "monthly": False}
        assert _cadence(newsroom) == "weekly"
    finally:
        page.context.close()
    assert not failures, "axe-core, WCAG 2.x A/AA:\n" + "\n".join(failures)
