"""The monthly edition ("The month in TITLE"): composed from the weekly issues sent in the month,
drafted and edited like the weekly draft, keyed YYYYMM in the one ledger without bending the
weekly numbering, sent exactly once to the monthly readers only, and published at
/archive/YYYY-MM and in the feeds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

from digest.config import BlogsFile, load_blogs
from digest.errors import DraftError
from digest.issue.monthly import compose, load_monthly, refresh_monthly
from digest.models import Issue, IssuePost
from digest.render import render_issue
from digest.send.deliver import send_issue
from digest.store import issues, transaction
from digest.store.issues import freeze_issue, set_issue_status
from plugins.browser import Chromium, assert_no_axe_violations, screenshot
from plugins.editions import FIRST_OF_DECEMBER, NOVEMBER, Editions
from plugins.website import BASE, Tags, Web, freeze

BASE_URL = "https://digest.example.org"  # the Newsroom's DIGEST_BASE_URL

# --- composing: pure ---------------------------------------------------------------------------


def _post(n: int, blog: str, category: str, *, note: str = "") -> IssuePost:
    return IssuePost(
        id=f"{blog}-{n:08x}",
        title=f"{blog} post {n}",
        url=f"https://{blog}.example.org/{n}",
        blog=blog,
        category=category,
        note=note,
    )


def _weekly(number: int, posts: list[IssuePost]) -> Issue:
    since = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(weeks=number - 1)
    return Issue(
        number=number,
        subject=f"#{number}",
        since=since,
        until=since + timedelta(weeks=1),
        posts=posts,
    )


def _cap(blogs_yaml: Path, n: int) -> BlogsFile:
    text = blogs_yaml.read_text()
    if re.search(r"^    max_per_category:", text, flags=re.M):
        text = re.sub(r"^    max_per_category: \d+", f"    max_per_category: {n}", text, flags=re.M)
    else:
        text = text.replace("  mode: auto", f"  mode: auto\n  monthly:\n    max_per_category: {n}")
    blogs_yaml.write_text(text)
    blogs = load_blogs(blogs_yaml)
    assert blogs.newsletter.monthly.max_per_category == n
    return blogs


def test_annotated_first_then_most_clicked_then_the_rest_capped_per_category(
    blogs_yaml: Path,
) -> None:
    blogs = _cap(blogs_yaml, 3)
    first = _weekly(
        1,
        [
            _post(1, "sander-dieleman", "ml"),
            _post(2, "lilianweng", "ml"),
            _post(3, "xxiivv", "permacomputing"),
            _post(4, "chris-olah", "ml"),
        ],
    )
    second = _weekly(
        2,
        [
            _post(5, "sander-dieleman", "ml"),
            _post(6, "lilianweng", "ml", note="The one to *read* this month."),
            _post(7, "hundred-rabbits", "permacomputing"),
            _post(8, "delayed", "music"),
        ],
    )
    clicks = {"chris-olah-00000004": 9, "sander-dieleman-00000005": 4, "xxiivv-00000003": 1}
    posts = compose([first, second], blogs, clicks=clicks)
    ids = [p.id for p in posts]
    # Categories in blogs.yaml order (permacomputing, ml, music); within one, the ranking.
    assert ids == [
        "xxiivv-00000003",  # clicked once, ahead of the unclicked one
        "hundred-rabbits-00000007",
        "lilianweng-00000006",  # annotated
        "chris-olah-00000004",  # 9 clicks
        "sander-dieleman-00000005",  # 4 clicks; ml holds 3 at most: posts 1 and 2 are out
        "delayed-00000008",
    ]
    assert posts[2].note == "The one to *read* this month."  # the curator's note is kept

    # Without click counts: annotated, then issue order; shown with a blog's posts together,
    # each blog where its best-ranked post comes.
    plain = [p.id for p in compose([first, second], blogs) if p.category == "ml"]
    assert plain == ["lilianweng-00000006", "lilianweng-00000002", "sander-dieleman-00000001"]


def test_posts_of_blogs_gone_from_blogs_yaml_are_left_out_and_a_gone_category_moves(
    blogs: BlogsFile,
) -> None:
    issue = _weekly(1, [_post(1, "no-such-blog", "ml"), _post(2, "xxiivv", "retired")])
    [post] = compose([issue], blogs)
    assert (post.id, post.category) == ("xxiivv-00000002", "permacomputing")


def test_composing_from_five_weekly_issues_of_realistic_size_is_fast(blogs: BlogsFile) -> None:
    blog_list = list(blogs.blogs())
    weeks = [
        _weekly(
            w,
            [
                _post(w * 1000 + i, blog_list[i % len(blog_list)].id,
                      blog_list[i % len(blog_list)].category,
                      note="A note." if i % 17 == 0 else "")
                for i in range(80)
            ],
        )
        for w in range(1, 6)
    ]
    clicks = {p.id: i % 13 for w in weeks for i, p in enumerate(w.posts)}
    started = time.perf_counter()
    posts = compose(weeks, blogs, clicks=clicks)
    elapsed = time.perf_counter() - started
    assert len(posts) == 5 * len(blogs.categories)
    assert elapsed < 0.2, f"{elapsed * 1000:.0f} ms"


# --- the draft and the ledger ------------------------------------------------------------------


def _read(path: Path) -> dict:  # type: ignore[type-arg]
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_draft_is_composed_from_the_weekly_issues_sent_in_the_month_only(
    editions: Editions,
) -> None:
    room = editions.room
    october = editions.weekly(datetime(2026, 10, 26, 7, tzinfo=UTC))
    november = [editions.weekly(when, notes={1: "Worth the month."}) for when in NOVEMBER[:3]]
    editions.weekly(FIRST_OF_DECEMBER)
    settings = editions.settings()
    summary = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert summary.path == settings.drafts / "monthly-2026-11.yaml"
    assert summary.weekly == november and october not in summary.weekly
    doc = _read(summary.path)
    assert doc["month"] == "2026-11"
    assert doc["subject"] == "The month in Blogs I like: November 2026"
    assert "number" not in doc and "archive_pick" not in doc
    assert "top_posts" not in doc  # click counts are off
    sent = {p.id: p for n in november for p in issues.get_issue(room.conn, n).content.posts}  # type: ignore[union-attr]
    october_ids = {p.id for p in issues.get_issue(room.conn, october).content.posts}  # type: ignore[union-attr]
    ids = [p["id"] for p in doc["posts"]]
    assert set(ids) <= set(sent) and not set(ids) & october_ids
    # The annotated posts lead their category, notes kept.
    annotated = [p for p in doc["posts"] if p["note"]]
    assert len(annotated) == 3 and {p["note"] for p in annotated} == {"Worth the month."}
    for category in {p["category"] for p in annotated}:
        mine = [p for p in doc["posts"] if p["category"] == category]
        assert mine[0]["note"], f"{category}: an annotated post comes first"

    # The curator edits it like the weekly draft; a re-draft keeps every edit, adds nothing twice.
    yaml = YAML(typ="rt")
    edited = yaml.load(summary.path.read_text(encoding="utf-8"))
    edited["subject"] = "November, in short"
    edited["intro"] = "A month of *small* things."
    edited["posts"][0]["include"] = False
    with summary.path.open("w", encoding="utf-8") as out:
        yaml.dump(edited, out)
    again = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert not again.created and again.added == 0 and again.entries == len(ids)
    edition = load_monthly(settings, room.blogs, room.conn)
    assert (edition.number, edition.month, edition.kind) == (202611, "2026-11", "monthly")
    assert edition.subject == "November, in short" and edition.intro == "A month of *small* things."
    assert [p.id for p in edition.posts] == ids[1:]


def test_a_month_with_no_weekly_issue_sent_has_no_edition_said_in_words(
    editions: Editions,
) -> None:
    room = editions.room
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    summary = refresh_monthly(settings, room.blogs, room.conn, month="2026-10")
    assert summary.path is None
    assert summary.line() == (
        "no weekly issue was sent in October 2026: no monthly edition to compose"
    )
    assert list(settings.drafts.glob("monthly-*")) == []


def test_a_broken_monthly_draft_names_file_line_and_field(editions: Editions) -> None:
    room = editions.room
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    path = refresh_monthly(settings, room.blogs, room.conn, month="2026-11").path
    assert path is not None
    path.write_text(path.read_text().replace("\nposts:", "\narchive_pick: null\nposts:"))
    with pytest.raises(DraftError) as caught:
        load_monthly(settings, room.blogs, room.conn)
    assert caught.value.path == str(path) and caught.value.field == "archive_pick"
    assert "unknown key 'archive_pick'" in caught.value.message
    with pytest.raises(DraftError) as caught:  # never overwritten by a re-draft either
        refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert "archive_pick" in path.read_text()


def test_weekly_readers_get_no_monthly_copy_and_monthly_readers_exactly_one(
    editions: Editions,
) -> None:
    room = editions.room
    weekly_readers, monthly_readers = editions.readers(3, 2)
    for when in NOVEMBER[:2]:
        editions.weekly(when)
    # Weekly issues went to the weekly readers only.
    assert editions.copies() == {a: 2 for a in weekly_readers}
    before = len(editions.server.messages)
    settings = editions.settings()
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    summary = send_issue(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER, month="2026-11")
    assert summary.finished and summary.issue == 202611 and summary.sent == 2
    assert editions.copies(before) == {a: 1 for a in monthly_readers}
    mail = editions.server.messages[-1].message
    assert mail["Subject"] == "The month in Blogs I like: November 2026"
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    masthead = html[html.index("<h1") : html.index("</p>", html.index('class="small"'))]
    assert ">The month in Blogs I like</a></h1>" in masthead
    assert ">November 2026 \u00b7 curated by" in masthead
    assert "Issue 202611" not in html and "Issue 202611" not in text
    # The inbox preview line: the month's posts, not "new" ones.
    assert re.search(r"November 2026: \d+ posts from [^<]+\.", html)
    assert " ".join(text.split()).count("The month in Blogs I like") == 1
    assert "November 2026 \u00b7 curated by The curator" in " ".join(text.split())
    assert f"{BASE_URL}/archive/2026-11" in text
    assert (settings.drafts / "sent" / "monthly-2026-11.yaml").is_file()

    # Sending again is refused, in words, and sends nothing; the weekly numbering never saw
    # 202611.
    with pytest.raises(DraftError) as caught:
        send_issue(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER, month="2026-11")
    assert caught.value.message.endswith(
        "the monthly edition of November 2026 is already in the archive"
    )
    assert len(editions.server.messages) == before + 2
    assert issues.next_number(room.conn) == 3
    last = issues.last_issue(room.conn)
    assert last is not None and last.number == 2
    assert issues.neighbours(room.conn, 2) == ((1, "Blogs I like #1"), None)
    featured = room.conn.execute("SELECT COUNT(*) FROM featured WHERE issue = 202611")
    assert featured.fetchone()[0] == 0
    # The next weekly issue is number 3, to the weekly readers only.
    before = len(editions.server.messages)
    assert editions.weekly(FIRST_OF_DECEMBER + timedelta(hours=1)) == 3
    assert editions.copies(before) == {a: 1 for a in weekly_readers}


def test_an_edition_nobody_chose_yet_is_archived_and_never_blocks_the_weekly_issue(
    editions: Editions,
) -> None:
    room = editions.room
    editions.readers(2, 0)
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    summary = send_issue(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER, month="2026-11")
    assert summary.finished and summary.audience == 0
    edition = issues.get_monthly(room.conn, "2026-11")
    assert edition is not None and edition.status == "sent"
    assert editions.weekly(FIRST_OF_DECEMBER) == 2


# --- the web ------------------------------------------------------------------------------------


def _freeze_monthly(web: Web, month: str, posts: list[IssuePost], sent: datetime) -> None:
    year, mon = (int(x) for x in month.split("-"))
    edition = Issue(
        number=year * 100 + mon,
        month=month,
        subject=f"The month in Blogs I like: {datetime(year, mon, 1):%B %Y}",
        since=datetime(year, mon, 1, tzinfo=UTC),
        until=sent,
        posts=posts,
        commentary={},
    )
    with transaction(web.conn):
        freeze_issue(web.conn, edition, html="<p>sent</p>", text="sent", status="sending", now=sent)
        set_issue_status(web.conn, edition.number, "sent", sent_at=sent)


def test_the_archive_lists_monthly_editions_at_their_month_and_the_feed_carries_them(
    web: Web,
) -> None:
    for n in (1, 2):
        freeze(web, n)
    sent = datetime(2026, 12, 7, 8, tzinfo=UTC)  # between issue 2 (7 Dec) and 3 (14 Dec)
    _freeze_monthly(web, "2026-11", [_post(1, "xxiivv", "permacomputing", note="Yes.")], sent)
    freeze(web, 3)  # sent after the edition

    listing = web.client.get("/archive").text
    links = [a["href"] for a in Tags(listing).find("a") if "/archive/" in a.get("href", "")]
    assert links == [f"{BASE}/archive/3", f"{BASE}/archive/2026-11", f"{BASE}/archive/2",
                     f"{BASE}/archive/1"]  # fmt: skip
    item = listing[listing.index('class="monthly"') :]
    assert "monthly" in item[: item.index("</li>")]

    page = web.client.get("/archive/2026-11")
    assert page.status_code == 200
    assert "The month in Blogs I like &middot; November 2026" in page.text
    assert f'<link rel="canonical" href="{BASE}/archive/2026-11">' in page.text
    assert "Issue 202611" not in page.text
    assert web.client.get("/archive/202611").status_code == 404  # a key, not an issue number
    assert web.client.get("/archive/2026-13").status_code == 404
    assert web.client.get("/archive/2026-10").status_code == 404

    # Weekly neighbours skip the edition; the home page lists weekly issues only.
    three = web.client.get("/archive/3").text
    assert f'<link rel="prev" href="{BASE}/archive/2">' in three
    home = web.client.get("/").text
    assert "/archive/2026-11" not in home and "/archive/202611" not in home

    feed = web.client.get("/feed.xml").text
    assert f"{BASE}/archive/2026-11" in feed and "/archive/202611" not in feed
    assert "The month in Blogs I like: November 2026" in feed
    sitemap = web.client.get("/sitemap.xml").text
    assert f"{BASE}/archive/2026-11" in sitemap and "/archive/202611" not in sitemap


# --- the email in a browser ---------------------------------------------------------------------


@pytest.mark.browser
def test_the_monthly_email_reads_well_at_375_and_1200_light_and_dark(
    editions: Editions, chromium: Chromium
) -> None:
    room = editions.room
    for when in NOVEMBER[:4]:
        editions.weekly(when, notes={0: "The one to read *slowly* this month."})
    settings = editions.settings()
    path = refresh_monthly(settings, room.blogs, room.conn, month="2026-11").path
    assert path is not None
    path.write_text(
        path.read_text().replace(
            "intro: ''", "intro: 'Four weeks of slow computing, diffusion and *good* music.'"
        )
    )
    edition = load_monthly(settings, room.blogs, room.conn)
    html, _ = render_issue(edition, room.blogs, base_url=BASE_URL).fill(
        unsubscribe_url=f"{BASE_URL}/unsubscribe/token",
        preferences_url=f"{BASE_URL}/preferences/token",
        web_url=f"{BASE_URL}/archive/2026-11",
        name="Ada",
    )
    for width in (375, 1200):
        for dark in (False, True):
            page = chromium.page(width=width, dark=dark)
            chromium.show_html(page, html)
            assert page.locator(".masthead h1").inner_text() == "The month in Blogs I like"
            masthead = page.locator(".masthead .small").inner_text()
            assert masthead.startswith("November 2026 \u00b7 curated by")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert_no_axe_violations(page, f"the monthly email at {width} px")
            screenshot(page, f"monthly-{width}-{'dark' if dark else 'light'}")


# --- what the curator may trip over -------------------------------------------------------------


def test_since_and_until_are_the_months_own_whatever_the_draft_says(editions: Editions) -> None:
    """The draft's header says edits there are ignored: an edited `since`, a deleted `until`
    neither move the edition's dates nor break it, and the next re-draft writes them back."""
    room = editions.room
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    path = refresh_monthly(settings, room.blogs, room.conn, month="2026-11").path
    assert path is not None
    written = _read(path)
    text = path.read_text()
    text = text.replace(f"since: {written['since']}", "since: 2020-01-01T00:00:00Z")
    text = re.sub(r"^until: .*\n", "", text, flags=re.M)
    path.write_text(text)
    edition = load_monthly(settings, room.blogs, room.conn)
    brussels = ZoneInfo("Europe/Brussels")
    assert edition.since == datetime(2026, 11, 1, tzinfo=brussels)
    assert edition.until == datetime(2026, 12, 1, tzinfo=brussels)
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    again = _read(path)
    assert (again["since"], again["until"]) == (written["since"], written["until"])
    assert list(again)[:3] == ["month", "since", "until"]
    header = " ".join(path.read_text().split("\nmonth:")[0].replace("#", "").split())
    assert "edits to since, until and top_posts are ignored" in header
    assert "month must stay the file name's" in header


def test_a_monthly_draft_gone_wrong_is_named_with_the_monthly_commands(
    editions: Editions,
) -> None:
    room = editions.room
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    path = refresh_monthly(settings, room.blogs, room.conn, month="2026-11").path
    assert path is not None
    kept = path.read_text()

    # Another month's name in `month`: refused by the re-draft too, which used to take it.
    path.write_text(kept.replace("month: 2026-11", "month: 2026-10"))
    for attempt in (
        lambda: load_monthly(settings, room.blogs, room.conn),
        lambda: refresh_monthly(settings, room.blogs, room.conn, month="2026-11"),
    ):
        with pytest.raises(DraftError) as caught:
            attempt()
        assert caught.value.message.endswith(
            "field month: this draft says month 2026-10, but its file name says 2026-11"
        )
        assert caught.value.field == "month" and caught.value.line is not None
        assert "`digest draft --monthly --month 2026-11`" in (caught.value.hint or "")
    assert "month: 2026-10" in path.read_text()  # never overwritten

    # Emptied (every line deleted but the comments): no weekly keys, no weekly command.
    path.write_text("# nothing left\n")
    with pytest.raises(DraftError) as caught:
        load_monthly(settings, room.blogs, room.conn, "2026-11")
    assert caught.value.message.endswith(
        "line 1: expected a mapping with subject, intro and posts, found nothing (no key at all)"
    )
    assert "archive_pick" not in caught.value.message
    assert "`digest draft --monthly --month 2026-11`" in (caught.value.hint or "")

    # Asked for a month with no draft: the command that drafts that month.
    with pytest.raises(DraftError) as caught:
        load_monthly(settings, room.blogs, room.conn, "2026-10")
    assert caught.value.message.endswith(": no monthly draft for October 2026")
    assert caught.value.hint == "run `digest draft --monthly --month 2026-10` to create it"


def test_a_draft_made_before_the_month_is_over_says_how_to_add_the_rest(
    editions: Editions,
) -> None:
    """The scheduler sends a draft it finds as it is: the header says so, and the command it
    names does add the weekly issues sent since, keeping the curator's edits."""
    room = editions.room
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    early = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert early.path is not None and early.weekly == [1]
    header = " ".join(early.path.read_text().split("\nmonth:")[0].replace("#", "").split())
    assert (
        "Drafted before November 2026 is over? The scheduler sends this file as it finds it: run "
        "`digest draft --monthly --month 2026-11` again to add the weekly issues sent since."
    ) in header
    early.path.write_text(early.path.read_text().replace("intro: ''", "intro: Mine."))
    editions.weekly(NOVEMBER[1])
    later = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert later.weekly == [1, 2] and later.added > 0 and not later.created
    assert _read(early.path)["intro"] == "Mine."
