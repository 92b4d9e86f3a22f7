"""The monthly edition at work: the scheduled job drafts and sends it at the first slot of a
month (held, reviewed, or with nothing to compose: said in words), the curator's commands
(`digest draft/preview/hold/release/send --monthly`), a `kill -9` mid-send that resends nothing
beyond what was on the wire, and the last issue's most-clicked posts in the draft."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import report
from digest.cli import main
from digest.config import load_blogs
from digest.issue.monthly import refresh_monthly
from digest.send.deliver import send_issue
from digest.store import issues, transaction
from digest.weekly import held_month, hold_monthly, review, run_once
from plugins.editions import FIRST_OF_DECEMBER, NOVEMBER, Editions
from plugins.feedserver import FeedServer
from plugins.terminal import in_terminal

MONTHLY_SUBJECT = "The month in Blogs I like: November 2026"


def words(text: str) -> str:
    return " ".join(text.split())


def cli(editions: Editions, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={**editions.env, "COLUMNS": "300"})
    return result.exit_code, words(result.output)


def monthly_copies(editions: Editions) -> dict[str, int]:
    out: dict[str, int] = {}
    for received in editions.server.messages:
        if received.message["Subject"] == MONTHLY_SUBJECT:
            for rcpt in received.rcpt_tos:
                out[rcpt] = out.get(rcpt, 0) + 1
    return out


def _blogs_setting(editions: Editions, line: str) -> None:
    path = Path(editions.room.env["DIGEST_BLOGS"])
    path.write_text(path.read_text().replace("newsletter:\n", f"newsletter:\n{line}\n", 1))
    editions.room.blogs = load_blogs(path)


# --- the scheduled job ---------------------------------------------------------------------------


def test_the_first_run_of_a_month_sends_last_months_edition_once_to_monthly_readers(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    weekly_readers, monthly_readers = editions.readers(2, 3)
    for when in NOVEMBER[:3]:
        editions.weekly(when, notes={0: "A keeper."})
    room.add_posts(1, at=FIRST_OF_DECEMBER - timedelta(days=1))
    settings = editions.settings()
    outcome = run_once(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER)
    assert outcome.sent is not None and outcome.sent.issue == 4  # the weekly issue first
    assert outcome.monthly_sent is not None and outcome.monthly_sent.issue == 202611
    assert words(outcome.line()).endswith(
        "; the monthly edition of November 2026 sent: sent 3, deferred 0, bounced 0, skipped 0"
    )
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}
    # Weekly readers got four weekly issues and no monthly one; monthly readers no weekly one.
    everyone = {**{a: 4 for a in weekly_readers}, **{a: 1 for a in monthly_readers}}
    assert editions.copies() == everyone

    # A week later: the edition is out, nothing goes again; the weekly numbering goes on.
    room.add_posts(1, at=FIRST_OF_DECEMBER + timedelta(days=6))
    later = run_once(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER + timedelta(weeks=1))
    assert later.sent is not None and later.sent.issue == 5
    assert later.monthly == "" and later.monthly_sent is None
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}


def test_a_held_edition_waits_and_release_monthly_asks_then_sends_it_once(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    _, monthly_readers = editions.readers(1, 2)
    editions.weekly(NOVEMBER[1])
    settings = editions.settings()
    # Held before it is drafted: the hold names the month the next first slot sends.
    assert hold_monthly(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER) == "2026-11"
    outcome = run_once(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER)
    assert outcome.monthly == (
        "the monthly edition of November 2026 is held: `digest release --monthly` sends it"
    )
    assert (settings.drafts / "monthly-2026-11.yaml").is_file()  # drafted, kept back
    assert monthly_copies(editions) == {}
    code, out = cli(editions, "hold", "--monthly")  # again, from the command line: the draft's
    assert code == 0 and out == (
        "the monthly edition of November 2026 is held: `digest release --monthly` lets it go"
    )

    # Nobody can answer here: refused like the weekly release, and the hold stays.
    code, out = cli(editions, "release", "--monthly")
    assert code == 1
    assert f"Monthly edition 2026-11: '{MONTHLY_SUBJECT}'" in out
    assert "Audience: 2 confirmed monthly readers" in out
    assert "error: `digest release --monthly` asks before sending" in out
    assert held_month(room.conn) == "2026-11" and monthly_copies(editions) == {}

    env = {**room.subprocess_env(), **editions.server.env()}
    code, out = in_terminal(["release", "--monthly"], env=env, cwd=room.root, answer="n\n")
    assert code == 1 and "Send now?" in out and "Aborted" in out
    assert monthly_copies(editions) == {}
    code, out = in_terminal(["release", "--monthly"], env=env, cwd=room.root, answer="y\n")
    assert code == 0, out
    assert "the monthly edition of November 2026 released" in words(out)
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}
    assert held_month(room.conn) is None

    code, out = cli(editions, "release", "--monthly", "--yes")
    assert code == 0 and out == "no monthly edition was held"
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}


def test_a_month_without_a_weekly_issue_has_no_edition_and_the_run_says_so(
    editions: Editions, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    editions.readers(1, 1)
    editions.weekly(NOVEMBER[4])  # 30 November
    settings = editions.settings()
    room.add_posts(1, at=FIRST_OF_DECEMBER + timedelta(weeks=4, days=-1))
    january = FIRST_OF_DECEMBER + timedelta(weeks=4)  # 4 January 2027: nothing sent in December
    # `digest run --once` on that Monday (the clock is the one thing not real here)
    monkeypatch.setattr("digest.cli.weekly.utcnow", lambda: january)
    code, out = cli(editions, "run", "--once")
    assert code == 0, out
    assert "Issue 2: sent 1, deferred 0" in out
    assert out.endswith(
        "No weekly issue was sent in December 2026: no monthly edition to compose"
    )
    assert issues.get_monthly(room.conn, "2026-12") is None
    assert list(settings.drafts.glob("monthly-2026-12*")) == []


def test_a_broken_monthly_draft_never_fails_the_run_and_the_curator_is_told(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    weekly_readers, _ = editions.readers(2, 2)
    editions.weekly(NOVEMBER[3])
    settings = editions.settings()
    path = refresh_monthly(settings, room.blogs, room.conn, month="2026-11").path
    assert path is not None
    path.write_text(path.read_text().replace("subject: ", "subject:\n  - a list: "))
    room.add_posts(1, at=FIRST_OF_DECEMBER - timedelta(days=1))
    outcome = run_once(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER)
    assert outcome.outcome == "sent" and outcome.sent is not None and outcome.sent.issue == 2
    assert outcome.monthly.startswith(f"the monthly edition was not sent: {path}, line ")
    assert monthly_copies(editions) == {}
    assert all(editions.copies()[a] == 2 for a in weekly_readers)
    [told] = [m.message for m in editions.server.messages if m.rcpt_tos == ["curator@example.org"]]
    assert told["Subject"] == "digest: the monthly edition was not sent"
    body = words(told.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "expected text, found a list" in body and "digest send --monthly" in body
    run = room.conn.execute("SELECT outcome FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    assert run[0] == "sent"  # not 'failed': no retry of the weekly job


def test_review_mode_says_the_monthly_edition_is_coming(
    editions: Editions, feed_server: FeedServer
) -> None:
    room = editions.room
    room.local_feeds(feed_server)
    path = Path(room.env["DIGEST_BLOGS"])
    path.write_text(re.sub(r"^  mode: auto", "  mode: review", path.read_text(), flags=re.M))
    room.blogs = load_blogs(path)
    editions.readers(1, 4)
    editions.weekly(NOVEMBER[2])
    room.add_posts(1, at=FIRST_OF_DECEMBER - timedelta(days=1))
    settings = editions.settings()
    before = len(editions.server.messages)
    review(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER - timedelta(hours=12),
           slot=FIRST_OF_DECEMBER)  # fmt: skip
    [mail] = [m.message for m in editions.server.messages[before:]]
    body = words(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert (
        f"The monthly edition, '{MONTHLY_SUBJECT}', goes out after this issue unless you run "
        "`digest hold --monthly`; to 4 monthly reader(s)."
    ) in body
    assert f"Monthly draft: {settings.drafts / 'monthly-2026-11.yaml'}" in body
    assert monthly_copies(editions) == {}  # the review sends the curator only


# --- the curator's commands -----------------------------------------------------------------------


def test_draft_preview_and_send_monthly_from_the_command_line(editions: Editions) -> None:
    room = editions.room
    weekly_readers, monthly_readers = editions.readers(2, 2)
    for when in NOVEMBER[:2]:
        editions.weekly(when)
    code, out = cli(editions, "send", "--monthly", "--yes")
    assert code == 1 and ": no monthly draft to send" in out
    assert "`digest draft --monthly` composes the last month's edition" in out

    code, out = cli(editions, "draft", "--month", "2026-11")
    assert code == 2 and "--month goes with --monthly" in out
    code, out = cli(editions, "draft", "--monthly", "--month", "2026-13")
    assert code == 2 and "expected a month such as 2026-11, found '2026-13'" in out
    code, out = cli(editions, "draft", "--monthly", "--month", "2026-10")
    assert code == 0 and out == (
        "No weekly issue was sent in October 2026: no monthly edition to compose"
    )
    code, out = cli(editions, "draft", "--monthly", "--month", "2026-11")
    assert code == 0, out
    path = room.root / "drafts" / "monthly-2026-11.yaml"
    assert f"Created {path}" in out and "From weekly issue(s) 1, 2:" in out
    assert "Edit the draft, then run `digest preview --monthly`." in out

    preview = room.root / "preview"
    code, out = cli(editions, "preview", "--monthly", "--out", str(preview))
    assert code == 0, out
    html = (preview / "preview.html").read_text()
    text = (preview / "preview.txt").read_text()
    assert text.startswith("The month in Blogs I like\n")
    assert "November 2026 \u00b7 curated by" in words(text)
    assert "Read on the web: https://digest.example.org/archive/2026-11" in text
    assert "The month in Blogs I like" in html and "Issue 202611" not in html
    eml = message_from_bytes((preview / "preview.eml").read_bytes(), policy=default)
    assert eml["Subject"] == MONTHLY_SUBJECT
    # The weekly commands are untouched by it.
    code, out = cli(editions, "preview", "--out", str(room.root / "weekly-preview"))
    assert code == 1 and "no draft of the next issue" in out

    code, out = cli(editions, "send", "--monthly", "--dry-run")
    assert code == 0, out
    assert "Dry run of monthly edition 2026-11: 2 message(s) built" in out
    assert "the draft is kept" in out
    assert path.is_file() and monthly_copies(editions) == {}
    assert issues.get_monthly(room.conn, "2026-11") is None

    code, out = cli(editions, "send", "--monthly", "--yes")
    assert code == 0, out
    assert f"Monthly edition 2026-11: '{MONTHLY_SUBJECT}'" in out
    assert "Audience: 2 confirmed monthly readers" in out
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}
    assert set(monthly_copies(editions)).isdisjoint(weekly_readers)
    code, out = cli(editions, "send", "--monthly", "--yes")
    assert code == 1 and ": no monthly draft to send" in out
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}


def test_the_draft_shows_the_last_issues_most_clicked_posts_and_ranks_by_clicks(
    editions: Editions,
) -> None:
    room = editions.room
    _blogs_setting(editions, "  click_counts: true")
    for when in NOVEMBER[:2]:
        editions.weekly(when)
    links = room.conn.execute(
        "SELECT n, post_id FROM links WHERE issue = 2 AND post_id IS NOT NULL ORDER BY n"
    ).fetchall()
    assert links, "click counts on: the issue's links are stored when it is frozen"
    posts = {p.id: p for p in issues.get_issue(room.conn, 2).content.posts}  # type: ignore[union-attr]
    n, post_id = [(n, post_id) for n, post_id in links if post_id in posts][-1]
    with transaction(room.conn):
        room.conn.execute("INSERT INTO clicks (issue, n, count) VALUES (?, ?, 7)", (2, n))
    settings = editions.settings()
    summary = refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    post = posts[post_id]
    assert summary.top_posts is not None and summary.top_posts[0].endswith(": 7 clicks")
    assert summary.top_posts[0].startswith(post.title)
    assert summary.path is not None
    text = summary.path.read_text()
    assert "For you only: the last issue's most-clicked posts." in text
    assert re.search(r"top_posts:\n  - .*: 7 clicks", text)
    # The most-clicked post leads its category (nothing was annotated).
    ids = re.findall(r"^  - id: (\S+)\n    title: .*\n    url: .*\n    blog: .*\n    category: "
                     + re.escape(post.category), text, flags=re.M)  # fmt: skip
    assert ids[0] == post_id


# --- kill -9 mid-send -----------------------------------------------------------------------------

POOL = 4


def _digest(editions: Editions, *args: str) -> subprocess.Popen[str]:
    env = {**editions.room.subprocess_env(), **editions.server.env(), "DIGEST_SMTP_POOL": str(POOL)}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        cwd=editions.room.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_mid_monthly_send_resends_nothing_beyond_what_was_on_the_wire(
    editions: Editions,
) -> None:
    room = editions.room
    weekly_readers, monthly_readers = editions.readers(5, 600)
    editions.weekly(NOVEMBER[0])
    editions.weekly(NOVEMBER[1])
    refresh_monthly(editions.settings(), room.blogs, room.conn, month="2026-11")
    editions.server.handler.delay = 0.003
    rng = random.Random()
    landed = 0
    for _ in range(3):
        proc = _digest(editions, "send", "--monthly", "--yes")
        target = len(editions.server.messages) + rng.randint(1, 120)
        deadline = time.monotonic() + 60
        while len(editions.server.messages) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "the sender made no progress"
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        proc.communicate(timeout=60)
    # Resumed by a plain `digest send`, as after any crash: the same edition, the same ids.
    proc = _digest(editions, "send", "--yes")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Resume monthly edition 2026-11" in words(out)
    assert landed >= 1

    copies = monthly_copies(editions)
    assert sorted(copies) == sorted(monthly_readers)  # nobody missing, no weekly reader
    extra = sum(n - 1 for n in copies.values())
    assert extra <= landed * POOL, f"{extra} second copies after {landed} kills"
    ids: dict[str, set[str]] = {}
    for received in editions.server.messages:
        if received.message["Subject"] == MONTHLY_SUBJECT:
            for rcpt in received.rcpt_tos:
                ids.setdefault(rcpt, set()).add(received.message_id)
    assert all(len(v) == 1 for v in ids.values()), "a second copy keeps its Message-ID"
    rows = room.conn.execute("SELECT status FROM deliveries WHERE issue = 202611")
    statuses = {r[0] for r in rows}
    assert statuses == {"sent"}
    edition = issues.get_monthly(room.conn, "2026-11")
    assert edition is not None and edition.status == "sent"
    assert all(editions.copies().get(a) == 2 for a in weekly_readers)  # their two weekly issues


# --- the edition by its name ---------------------------------------------------------------------


def _events(editions: Editions) -> list[tuple[str, str]]:
    rows = editions.room.conn.execute(
        "SELECT kind, detail FROM events WHERE kind IN ('issue_frozen', 'issue_sent') ORDER BY id"
    )
    return [(r[0], r[1]) for r in rows]


def test_the_curator_reads_the_monthly_edition_by_its_month_never_as_issue_202611(
    editions: Editions,
) -> None:
    room = editions.room
    _, monthly_readers = editions.readers(1, 2)
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    editions.server.handler.transient[monthly_readers[1]] = 1  # one 451: deferred to next send
    summary = send_issue(
        settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER, month="2026-11", retry_delays=()
    )
    assert (summary.issue, summary.deferred, summary.edition) == (
        202611, 1, "monthly edition 2026-11"
    )  # fmt: skip
    trouble = report.send_trouble(summary)
    assert trouble is not None
    assert trouble.subject == "digest: monthly edition 2026-11 sent with problems"
    assert trouble.text.startswith(
        f"Monthly edition 2026-11 ({MONTHLY_SUBJECT}): sent 1, deferred 1, bounced 0, skipped 0."
    )
    # The next `digest send` retries the deferred copy and names the edition by its month.
    code, out = cli(editions, "send", "--yes")
    assert code == 0, out
    assert "Monthly edition 2026-11: sent 2, deferred 0, bounced 0, skipped 0 (1 sent in" in out
    assert monthly_copies(editions) == {a: 1 for a in monthly_readers}
    assert _events(editions)[2:] == [  # after the weekly issue's two
        ("issue_frozen", "monthly edition 2026-11: 2 recipients"),
        ("issue_sent", "monthly edition 2026-11: sent 1, deferred 1, bounced 0, skipped 0"),
        ("issue_sent", "monthly edition 2026-11: sent 2, deferred 0, bounced 0, skipped 0"),
    ]
    assert _events(editions)[:2] == [
        ("issue_frozen", "issue 1: 1 recipients"),
        ("issue_sent", "issue 1: sent 1, deferred 0, bounced 0, skipped 0"),
    ]  # weekly stays "issue N"


def test_a_stopped_monthly_send_says_which_edition_and_resumes_by_its_month(
    editions: Editions,
) -> None:
    room = editions.room
    _, monthly_readers = editions.readers(1, 12)
    editions.weekly(NOVEMBER[0])
    settings = editions.settings()
    refresh_monthly(settings, room.blogs, room.conn, month="2026-11")
    handler = editions.server.handler
    handler.gate = threading.Event()  # every DATA waits: the stop comes mid-send
    before = handler.datas
    proc = _digest(editions, "send", "--monthly", "--yes")
    deadline = time.monotonic() + 30
    while handler.datas == before:
        assert proc.poll() is None and time.monotonic() < deadline, "the sender sent nothing"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    handler.gate.set()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    stopped = re.search(r"stopped: (\d+) sent, (\d+) left of the monthly edition 2026-11; run "
                        r"`digest send` to resume", words(err))  # fmt: skip
    assert stopped is not None, err
    left = int(stopped[2])
    assert 0 < left < 12 and int(stopped[1]) + left == 12

    code, out = cli(editions, "send", "--dry-run")
    assert code == 0, out
    assert f"Resume monthly edition 2026-11 ('{MONTHLY_SUBJECT}'): {left} of 12 deliveries" in out
    assert f"Dry run of monthly edition 2026-11: {left} message(s) built" in out
    assert "202611" not in out
    # The scheduled run finishes it first, and says which edition it resumed.
    room.add_posts(1, at=FIRST_OF_DECEMBER - timedelta(days=1))
    outcome = run_once(settings, room.blogs, room.conn, now=FIRST_OF_DECEMBER)
    assert outcome.outcome == "resumed"
    assert outcome.line() == (
        "monthly edition 2026-11 resumed: sent 12, deferred 0, bounced 0, skipped 0"
    )
    assert sorted(monthly_copies(editions)) == sorted(monthly_readers)
