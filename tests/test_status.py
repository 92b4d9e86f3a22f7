"""`digest status` tells the whole story: readers by cadence, the monthly edition (the last one
out, the next one's month and slot, its draft and hold), newsletters as sources, Webmentions and
click counts; the same in the text form and in --json, on both engines.

The command reads the real clock, so its text is checked for what does not depend on the day;
``status(now=...)`` pins the slots themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ruamel.yaml import YAML

from digest.cli import main
from digest.config import load_blogs
from digest.issue.monthly import refresh_monthly
from digest.send.deliver import send_issue
from digest.status import status
from digest.store import clicks, transaction, utcnow
from digest.store import inbound as inbound_store
from digest.store import issues as issues_store
from digest.store import webmentions as webmentions_store
from digest.store.inbound import InboundMail
from digest.weekly import hold_monthly, release_monthly
from plugins.editions import FIRST_OF_DECEMBER, NOVEMBER, Editions
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, SmtpServer

MONTHLY_SUBJECT = "The month in Blogs I like: November 2026"
EMAIL_BLOG = """\
      - name: Ann's letters
        id: ann
        homepage: https://ann.example/
        email:
          from: [ann@letters.example]
"""


def words(text: str) -> str:
    return " ".join(text.split())


def shown(env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """`digest status` as words, and `digest status --json`."""
    env = {**env, "COLUMNS": "300"}
    text = CliRunner().invoke(main, ["status"], env=env)
    assert text.exit_code == 0, text.output
    data = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert data.exit_code == 0, data.output
    return words(text.output), json.loads(data.output)


def _blogs_yaml(room: Newsroom, *, newsletter: str = "", blogs: str = "") -> None:
    path = Path(room.env["DIGEST_BLOGS"])
    text = path.read_text().replace("newsletter:\n", f"newsletter:\n{newsletter}", 1)
    path.write_text(text.replace("    blogs:\n", f"    blogs:\n{blogs}", 1))
    room.blogs = load_blogs(path)


# --- cadence and the monthly edition --------------------------------------------------------


def test_readers_by_cadence_and_the_monthly_edition_from_due_to_held_to_sent(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    editions.readers(2, 3)
    for when in NOVEMBER[:2]:
        editions.weekly(when)
    settings = editions.settings()
    before = NOVEMBER[2] - timedelta(days=1)
    info = status(settings, room.blogs, room.conn, now=before)
    assert info["cadence"] == {"weekly": 2, "monthly": 3}
    assert info["monthly"] == {
        "last": None,
        "next": {
            "month": "2026-11",
            "label": "November 2026",
            "held": False,
            "utc": "2026-12-07T07:00:00Z",  # the first slot of December
            "local": "Mon 07 Dec 2026 08:00 CET",
        },
        "draft": None,
    }
    text, data = shown(editions.env)
    assert "Subscribers: 0 pending, 5 confirmed (2 weekly, 3 monthly), 0 unsubscribed" in text
    assert data["cadence"] == {"weekly": 2, "monthly": 3}
    assert "Last monthly: none yet" in text
    assert "Next monthly: November 2026, " in text
    assert "; draft none (that run drafts it); not held" in text

    # Drafted and held: the draft is named with its posts, and the hold is shown.
    drafted = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    assert drafted.path is not None
    assert hold_monthly(settings, room.blogs, room.conn, now=before) == "2026-11"
    info = status(settings, room.blogs, room.conn, now=before)
    draft = info["monthly"]["draft"]
    assert draft["path"] == str(drafted.path) and draft["subject"] == MONTHLY_SUBJECT
    assert draft["posts"] > 0 and info["monthly"]["next"]["held"] is True
    text, data = shown(editions.env)
    assert data["monthly"]["draft"] == draft and data["monthly"]["next"]["held"] is True
    assert f"; draft {drafted.path}: {draft['posts']} posts, '{MONTHLY_SUBJECT}'; HELD" in text

    # A broken draft is said in words, naming the file, and status still answers.
    good = drafted.path.read_text(encoding="utf-8")
    drafted.path.chmod(0o644)
    drafted.path.write_text(good + "posts: [\n", encoding="utf-8")
    text, data = shown(editions.env)
    broken = data["monthly"]["draft"]
    assert broken["path"] == str(drafted.path) and "posts" not in broken
    assert broken["error"] and f"; draft {drafted.path}: {words(broken['error'])}" in text
    drafted.path.write_text(good, encoding="utf-8")

    # Released and sent at the first slot of December: the last edition, and the next month's.
    assert release_monthly(room.conn) == "2026-11"
    summary = send_issue(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER, month="2026-11")
    assert summary.finished
    info = status(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER + timedelta(hours=1))
    last = info["monthly"]["last"]
    assert last["month"] == "2026-11" and last["subject"] == MONTHLY_SUBJECT
    assert last["status"] == "sent" and last["deliveries"]["sent"] == 3
    assert info["monthly"]["next"] == {
        "month": "2026-12",
        "label": "December 2026",
        "held": False,
        "utc": "2027-01-04T07:00:00Z",  # the first slot of January
        "local": "Mon 04 Jan 2027 08:00 CET",
    }
    assert info["monthly"]["draft"] is None
    text, data = shown(editions.env)
    assert data["monthly"]["last"] == last
    assert (
        f"Last monthly: 2026-11 '{MONTHLY_SUBJECT}', sent {last['date']['local']}: "
        "sent 3, deferred 0, bounced 0"
    ) in text
    # The weekly lines stay about the weekly issue.
    assert "Last issue: #2 " in text and data["last_issue"]["number"] == 2


def test_an_overdue_edition_is_due_at_the_next_run_and_a_month_without_issues_has_none(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    editions.readers(1, 1)
    settings = editions.settings()
    # No weekly issue went out in November: it has no edition; December's is next.
    early = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    nxt = status(settings, room.blogs, room.conn, now=early)["monthly"]["next"]
    assert (nxt["month"], nxt["utc"]) == ("2026-12", "2027-01-04T07:00:00Z")
    editions.weekly(NOVEMBER[1])
    nxt = status(settings, room.blogs, room.conn, now=early)["monthly"]["next"]
    assert (nxt["month"], nxt["utc"]) == ("2026-11", "2026-12-07T07:00:00Z")
    # The first slot of December went by without a run (the machine was off): the next run
    # drafts and sends November's edition.
    late = datetime(2026, 12, 17, 12, 0, tzinfo=UTC)
    nxt = status(settings, room.blogs, room.conn, now=late)["monthly"]["next"]
    assert (nxt["month"], nxt["utc"]) == ("2026-11", "2026-12-21T07:00:00Z")
    # A held draft waits at its slot too, and says so.
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    hold_monthly(settings, room.blogs, room.conn, now=late)
    nxt = status(settings, room.blogs, room.conn, now=late)["monthly"]["next"]
    assert (nxt["month"], nxt["utc"], nxt["held"]) == ("2026-11", "2026-12-21T07:00:00Z", True)
    release_monthly(room.conn)
    send_issue(settings, room.blogs, room.conn, now=late, month="2026-11")
    # No weekly issue went out in December: it has no edition, January's is next.
    info = status(settings, room.blogs, room.conn, now=datetime(2027, 1, 20, tzinfo=UTC))
    nxt = info["monthly"]["next"]
    assert (nxt["month"], nxt["utc"]) == ("2027-01", "2027-02-01T07:00:00Z")
    assert info["monthly"]["last"]["month"] == "2026-11"


# --- newsletters, webmentions, clicks --------------------------------------------------------


def test_what_is_off_stays_out_of_the_text_and_is_null_in_the_json(newsroom: Newsroom) -> None:
    text, data = shown(newsroom.env)
    assert data["webmentions"] is None and data["clicks"] is None
    assert data["cadence"] == {"weekly": 0, "monthly": 0}
    assert "Webmentions" not in text and "Clicks" not in text and "mail (30 days)" not in text
    assert "by email" not in text
    assert "Subscribers: 0 pending, 0 confirmed, 0 unsubscribed, 0 bounced" in text


def test_mail_webmentions_and_clicks_of_the_last_issue(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    room = newsroom
    _blogs_yaml(room, newsletter="  click_counts: true\n  webmentions: true\n", blogs=EMAIL_BLOG)
    text, data = shown(room.env)
    assert data["webmentions"] == {"sent": 0, "none": 0, "retry": 0, "failed": 0, "pending": 0}
    assert data["clicks"] == {"issue": None, "subject": None, "clicks": 0, "top_post": None}
    assert "Webmentions (30 days): 0 sent, 0 without endpoint, 0 to retry, 0 failed" in text
    assert "Clicks: no edition counted yet" in text
    feeds = data["feeds"]
    assert feeds["email"] == 1 and f"1 by email (of {feeds['total']})" in text

    room.add_posts(2)
    room.draft()
    room.subscribe_many(2)
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    assert send_issue(room.settings(**env), room.blogs, room.conn, now=room.now).finished
    archived = issues_store.get_issue(room.conn, 1)
    assert archived is not None
    now = utcnow()  # the command counts the last 30 days of the real clock
    old = now - timedelta(days=40)

    # Newsletters as sources: the mail of the last 30 days, by what became of it.
    letters = ["post", "post", "quarantined", "confirmation"]
    with transaction(room.conn):
        for i, state in enumerate([*letters, "quarantined"]):  # the last one 40 days ago
            at = old if i == len(letters) else now
            mail = InboundMail(f"{i:064x}", "ann", "ann@letters.example", f"Letter {i}", at, state)
            inbound_store.save_mail(room.conn, mail)

    # Webmentions: one of each outcome now; one sent long ago; the rest still pending.
    targets = [p.url for p in archived.content.posts]
    assert len(targets) >= 6
    source = "https://digest.example.org/archive/1"
    outcomes = [("sent", now), ("none", now), ("retry", now), ("failed", now), ("sent", old)]
    with transaction(room.conn):
        featured = webmentions_store.enqueue(room.conn, 1, source=source, now=now)
        for target, (state, at) in zip(targets, outcomes, strict=False):
            webmentions_store.record(
                room.conn,
                1,
                target,
                status=state,
                endpoint=None,
                http_status=None,
                detail=state,
                now=at,
            )
    pending = featured - 5  # the archive pick is told too

    # Clicks: the most clicked post, and every link counted in the total.
    top = archived.content.posts[1]
    counts = clicks.link_counts(room.conn, 1)
    [top_n, *_] = [c.n for c in counts if c.post_id == top.id]
    other = next(c.n for c in counts if c.post_id not in (None, top.id))
    own = next(c.n for c in counts if c.post_id is None)
    clicks.add_clicks(room.conn, {(1, top_n): 7, (1, other): 2, (1, own): 1})

    text, data = shown(room.env)
    assert data["feeds"]["mail"] == {"post": 2, "quarantined": 1, "confirmation": 1}
    assert (
        "mail (30 days): 2 posts, 1 quarantined, 1 confirmations: see `digest feeds check`"
    ) in text
    assert data["webmentions"] == {
        "sent": 1,
        "none": 1,
        "retry": 1,
        "failed": 1,
        "pending": pending,
    }
    assert (
        "Webmentions (30 days): 1 sent, 1 without endpoint, 1 to retry, 1 failed, "
        f"{pending} pending"
    ) in text
    blog = room.blogs.blog(top.blog)
    assert blog is not None
    assert data["clicks"] == {
        "issue": 1,
        "subject": archived.subject,
        "clicks": 10,
        "top_post": {
            "post_id": top.id,
            "title": top.title,
            "blog": top.blog,
            "name": blog.name,
            "url": top.url,
            "clicks": 7,
        },
    }
    assert f"Clicks: issue 1, 10 in all; top post {top.title!r} ({blog.name}): 7" in text


def test_brackets_in_a_subject_or_a_title_are_printed_as_written(newsroom: Newsroom) -> None:
    """Rich reads [..] as markup: a subject like 'Notes [/b]' once failed the whole command."""
    newsroom.add_posts(1)
    path = newsroom.draft()
    yaml = YAML(typ="rt")
    doc = yaml.load(path.read_text(encoding="utf-8"))
    doc["subject"] = "Notes [/b] and [red]links[/red]"
    path.chmod(0o644)
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(doc, out)
    text, data = shown(newsroom.env)
    assert data["draft"]["subject"] == "Notes [/b] and [red]links[/red]"
    assert "'Notes [/b] and [red]links[/red]'; not held" in text
