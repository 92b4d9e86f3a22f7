"""axe-core (WCAG 2.0 and 2.1, A and AA) in the session's headless Chromium, on the issue's email
and on the public pages of `digest serve`; and the screenshots of every CI run, in
test-artifacts/ (git-ignored):

- email-{375,600}-{light,dark,nostyle}.png: the email at a phone's and at the column's width, in
  light and dark mode, and with its <style> block removed (Gmail's web client for some accounts);
- home-{375,1200}-{light,dark}.png, archive-{375,1200}-{light,dark}.png, and the preferences page.

A violation fails with one line per rule and element: rule id, impact, target, help.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from digest.send.deliver import send_issue
from digest.store import subscribers as subscribers_store
from plugins.browser import (
    NEEDS_CHROMIUM,
    Chromium,
    PreviewEmail,
    assert_no_axe_violations,
    axe_report,
    axe_violations,
    screenshot,
    without_style,
)
from plugins.smtp import Newsroom, free_port
from plugins.website import digest_serve

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

SCHEMES = {"light": False, "dark": True}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", [375, 600])
def test_email_has_no_wcag_violations(
    chromium: Chromium, preview_email: PreviewEmail, width: int, scheme: str
) -> None:
    page = chromium.page(width=width, dark=SCHEMES[scheme])
    chromium.show_html(page, preview_email.html)
    shot = screenshot(page, f"email-{width}-{scheme}")
    assert shot.stat().st_size > 10_000
    assert_no_axe_violations(page, f"the email at {width} px, {scheme}")


@pytest.mark.parametrize("width", [375, 600])
def test_email_screenshot_without_style(
    chromium: Chromium, preview_email: PreviewEmail, width: int
) -> None:
    html = without_style(preview_email.html)
    assert "<style" not in html.lower()
    page = chromium.page(width=width)
    chromium.show_html(page, html)
    assert screenshot(page, f"email-{width}-nostyle").stat().st_size > 10_000
    # Readable without the <style> block: every post title is still there as a link.
    assert page.locator("a").count() > 10


@dataclass(frozen=True)
class Site:
    base: str
    token: str  # the subscriber's, for /preferences/<token>


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`digest serve` in a subprocess, one issue sent (to outbox/) and so archived."""
    root = tmp_path_factory.mktemp("site")
    blogs_yaml = root / "blogs.yaml"
    blogs_yaml.write_bytes((Path(__file__).parent.parent / "blogs.yaml").read_bytes())
    room = Newsroom(root, blogs_yaml, root / "subscribers" / "digest.db")
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        room.env["DIGEST_BASE_URL"] = base
        room.subscribe("reader@example.org", name="Reader")
        room.add_posts()
        room.draft()
        send_issue(room.settings(), room.blogs, room.conn, now=room.now)
        sub = subscribers_store.get_by_email(room.conn, "reader@example.org")
        assert sub is not None
        with digest_serve(room.subprocess_env(), root, port):
            yield Site(base=base, token=sub.token)
    finally:
        room.conn.close()


PAGES = {
    "home": "/",
    "archive": "/archive/1",
    "preferences": "/preferences/{token}",
}


@pytest.mark.parametrize("name", PAGES)
def test_site_page_has_no_wcag_violations(chromium: Chromium, site: Site, name: str) -> None:
    """At 375 and 1200 px, light and dark: every violation of every variant in one report."""
    url = site.base + PAGES[name].format(token=site.token)
    failures = []
    for width in (375, 1200):
        for scheme, dark in SCHEMES.items():
            page = chromium.page(width=width, dark=dark)
            response = page.goto(url)
            assert response is not None and response.status == 200, url
            shot = screenshot(page, f"{name}-{width}-{scheme}")
            assert shot.stat().st_size > 5_000
            if violations := axe_violations(page):
                where = f"{name} ({url}) at {width} px, {scheme}"
                failures.append(f"{where}:\n{axe_report(violations)}")
    assert not failures, "axe-core, WCAG 2.x A/AA:\n" + "\n".join(failures)


def test_axe_reports_a_violation(chromium: Chromium) -> None:
    """The check can fail: an image without alt text and a nameless link are reported by rule,
    impact and element."""
    page = chromium.page(width=600)
    chromium.show_html(
        page,
        '<!DOCTYPE html><html lang="en"><head><title>t</title></head><body><main>'
        '<img src="x.png" width="10" height="10"><a href="https://example.org/"></a>'
        "</main></body></html>",
    )
    violations = axe_violations(page)
    report = axe_report(violations)
    assert {v["id"] for v in violations} >= {"image-alt", "link-name"}, report
    assert "image-alt (critical) at img:" in report
    with pytest.raises(AssertionError, match="image-alt"):
        assert_no_axe_violations(page, "a broken page")
