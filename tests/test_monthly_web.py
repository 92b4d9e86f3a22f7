"""The monthly edition's web page, /archive/YYYY-MM: previous and next among the monthly
editions, named by their month (never "Issue 202611"), as links and as <link rel="prev/next">;
the weekly pages keep their own neighbours; the page at 375 and 1200 px, light and dark."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.models import Issue, IssuePost
from digest.store import transaction
from digest.store.issues import freeze_issue, set_issue_status
from plugins.browser import NEEDS_CHROMIUM, Chromium, axe_report, axe_violations, screenshot
from plugins.smtp import free_port
from plugins.website import BASE, Web, digest_serve, freeze

SHOTS = Path("/tmp/shots")


def _post(n: int, blog: str, category: str, *, note: str = "") -> IssuePost:
    return IssuePost(
        id=f"{blog}-{n:08x}",
        title=f"A post worth the month, number {n}",
        url=f"https://{blog}.example.org/{n}",
        blog=blog,
        category=category,
        excerpt="What it says, in a sentence or two, as its feed gave it.",
        note=note,
    )


def _edition(web: Web, month: str, sent: datetime, *, subject: str = "") -> None:
    """A monthly edition frozen and sent as `digest send --monthly` leaves it."""
    year, mon = (int(x) for x in month.split("-"))
    edition = Issue(
        number=year * 100 + mon,
        month=month,
        subject=subject or f"The month in Blogs I like: {datetime(year, mon, 1):%B %Y}",
        intro="Four weeks of slow computing and *good* music.",
        since=datetime(year, mon, 1, tzinfo=UTC),
        until=datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC),
        posts=[
            _post(mon, "xxiivv", "permacomputing", note="The one to read *slowly*."),
            _post(mon + 100, "sander-dieleman", "ml"),
            _post(mon + 200, "lilianweng", "ml"),
        ],
        commentary={},
    )
    with transaction(web.conn):
        freeze_issue(web.conn, edition, html="<p>sent</p>", text="sent", status="sending", now=sent)
        set_issue_status(web.conn, edition.number, "sent", sent_at=sent)


def _archive(web: Web) -> None:
    """Weekly issues 1 to 3 and three monthly editions between them, October's subject the
    curator's own."""
    freeze(web, 1)
    _edition(web, "2026-10", datetime(2026, 11, 2, 8, tzinfo=UTC), subject="Slow October")
    freeze(web, 2)
    _edition(web, "2026-11", datetime(2026, 12, 7, 8, tzinfo=UTC))
    freeze(web, 3)
    _edition(web, "2026-12", datetime(2027, 1, 4, 8, tzinfo=UTC))


def _nav(html: str) -> str:
    """The page's previous/next navigation as words."""
    nav = html[html.index('<nav class="issue-nav"') :]
    return " ".join(re.sub(r"<[^>]+>", " ", nav[: nav.index("</nav>")]).split())


def test_a_monthly_edition_links_the_months_before_and_after_it(web: Web) -> None:
    _archive(web)
    page = web.client.get("/archive/2026-11")
    assert page.status_code == 200
    html = page.text
    assert f'<link rel="prev" href="{BASE}/archive/2026-10">' in html
    assert f'<link rel="next" href="{BASE}/archive/2026-12">' in html
    assert f'<a class="prev" rel="prev" href="{BASE}/archive/2026-10">' in html
    assert f'<a class="next" rel="next" href="{BASE}/archive/2026-12">' in html
    # Named by their month; a subject that already says the month is not said twice, the
    # curator's own subject is shown beside it.
    assert _nav(html) == "Previous October 2026: Slow October Next December 2026 Every issue"
    assert 'aria-label="More monthly editions"' in html
    # The month is the span (the kicker says it): no "Covers 1 Nov - 1 Dec", whose end is the
    # first instant after the month.
    meta = html[html.index('<p class="meta">') :]
    assert " ".join(re.sub(r"<[^>]+>", " ", meta[: meta.index("</p>")]).split()) == (
        "Curated by The curator &middot; Permalink"
    )
    assert "Issue 2026" not in html and "/archive/20261" not in html
    assert '/archive/2"' not in html and '/archive/3"' not in html  # no weekly neighbour

    first = web.client.get("/archive/2026-10").text
    assert 'rel="prev"' not in first
    assert f'<link rel="next" href="{BASE}/archive/2026-11">' in first
    assert _nav(first) == "Next November 2026 Every issue"
    last = web.client.get("/archive/2026-12").text
    assert 'rel="next"' not in last
    assert _nav(last) == "Previous November 2026 Every issue"


def test_weekly_pages_keep_their_weekly_neighbours(web: Web) -> None:
    _archive(web)
    two = web.client.get("/archive/2").text
    assert f'<link rel="prev" href="{BASE}/archive/1">' in two
    assert f'<link rel="next" href="{BASE}/archive/3">' in two
    assert _nav(two) == (
        "Previous Issue 1: Blogs I like #1 Next Issue 3: Blogs I like #3 Every issue"
    )
    assert 'aria-label="More issues"' in two and "/archive/2026-" not in _nav(two)
    assert '<p class="meta">Covers ' in two


def test_a_lone_monthly_edition_has_no_neighbours(web: Web) -> None:
    freeze(web, 1)
    _edition(web, "2026-11", datetime(2026, 12, 7, 8, tzinfo=UTC))
    html = web.client.get("/archive/2026-11").text
    assert 'rel="prev"' not in html and 'rel="next"' not in html
    assert _nav(html) == "Every issue"


def _words(locator: Any) -> str:
    """A link's words as written (its label is upper-cased by the stylesheet only)."""
    return " ".join((locator.text_content() or "").split())


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_the_monthly_page_reads_well_at_375_and_1200_light_and_dark(
    web: Web, chromium: Chromium, tmp_path: Path, blogs_yaml: Path, db_path: Any
) -> None:
    """The page as `digest serve` serves it: its neighbours in view, no sideways scroll, axe."""
    _archive(web)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env |= {"DIGEST_BLOGS": str(blogs_yaml), "DIGEST_DB": str(db_path), "DIGEST_BASE_URL": base}
    SHOTS.mkdir(exist_ok=True)
    failures = []
    with digest_serve(env, tmp_path, port):
        for width in (375, 1200):
            for scheme, dark in (("light", False), ("dark", True)):
                page = chromium.page(width=width, dark=dark)
                response = page.goto(f"{base}/archive/2026-11")
                assert response is not None and response.status == 200
                nav = page.locator(".issue-nav")
                assert _words(nav.locator("a.prev")) == "Previous October 2026: Slow October"
                assert _words(nav.locator("a.next")) == "Next December 2026"
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                shot = screenshot(page, f"monthly-web-{width}-{scheme}")
                assert shot.stat().st_size > 5_000
                shutil.copy(shot, SHOTS / shot.name)
                if violations := axe_violations(page):
                    failures.append(f"{width} px, {scheme}:\n{axe_report(violations)}")
    assert not failures, "axe-core, WCAG 2.x A/AA, on the monthly page:\n" + "\n".join(failures)
