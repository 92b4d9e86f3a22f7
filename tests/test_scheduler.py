"""The weekly job runs itself: slots, catch-up, review, hold, quiet weeks, locks and reports.

Every test drives the scheduler on a controllable clock (nothing sleeps), against a real feed
server, a real SQLite file and aiosmtpd.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import Settings, load_blogs
from digest.errors import ConfigError, DraftError
from digest.schedule import Scheduler, next_slot
from digest.send.lock import job_lock
from digest.store import issues, runs
from digest.weekly import hold, release
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, SmtpServer

# blogs.yaml: Mondays 08:00 Europe/Brussels; 2026-03-02 is a Monday in winter time (UTC+1).
SLOT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
CURATOR = "curator@example.org"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def room(newsroom: Newsroom, feed_server: FeedServer) -> Newsroom:
    """A newsroom whose feeds all serve a dormant blog (colah: nothing newer than 2019), so the
    posts a test adds are the only new ones."""
    newsroom.local_feeds(feed_server)
    dormant = feed_server.serve_fixture("/dormant.xml", "colah.rss.xml")
    path = Path(newsroom.env["DIGEST_BLOGS"])
    path.write_text(re.sub(r"^(\s+feed: ).*$", rf"\g<1>{dormant}", path.read_text(), flags=re.M))
    newsroom.blogs = load_blogs(path)
    return newsroom


def configure(room: Newsroom, **newsletter: Any) -> None:
    """Set newsletter keys in the room's blogs.yaml (replacing the line if the key is there)."""
    path = Path(room.env["DIGEST_BLOGS"])
    text = path.read_text()
    for key, value in newsletter.items():
        line = f"  {key}: {value}"
        text, found = re.subn(rf"^  {key}:.*$", line, text, count=1, flags=re.M)
        if not found:
            text = text.replace("newsletter:\n", f"newsletter:\n{line}\n", 1)
    path.write_text(text)
    room.blogs = load_blogs(path)


def scheduler(room: Newsroom, smtp: SmtpServer, clock: Clock) -> tuple[Scheduler, Settings]:
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp.env().items()}
    settings = room.settings(**env)
    return Scheduler(settings, clock=clock), settings


def to(smtp: SmtpServer, address: str) -> list[Any]:
    return [m.message for m in smtp.messages if address in m.rcpt_tos]


def start(room: Newsroom, smtp: SmtpServer, at: datetime) -> tuple[Scheduler, Clock]:
    clock = Clock(at)
    sched, _ = scheduler(room, smtp, clock)
    assert sched.tick() == []  # first start: nothing is due yet
    return sched, clock


def test_first_start_waits_for_the_slot_then_runs_it_once(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    readers = room.subscribe_many(2)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=2))
    room.add_posts(1, at=SLOT - timedelta(days=1))
    clock.now = SLOT - timedelta(minutes=1)
    assert sched.tick() == []
    clock.now = SLOT + timedelta(seconds=30)
    [line] = sched.tick()
    assert "ran the slot of Mon 02 Mar 2026 08:00 CET" in line and "issue 1 sent: sent 2" in line
    clock.now = SLOT + timedelta(minutes=5)
    assert sched.tick() == []
    assert sorted(smtp_server.message_ids()) == readers
    run = runs.get_run(room.conn, SLOT)
    assert run is not None and run.outcome == "sent" and run.issue == 1


def test_a_scheduler_started_after_a_slot_does_not_send_at_once(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    room.subscribe_many(1)
    room.add_posts(1, at=SLOT - timedelta(days=1))
    sched, clock = start(room, smtp_server, SLOT + timedelta(hours=3))
    clock.now += timedelta(days=1)
    assert sched.tick() == []
    assert smtp_server.messages == []


@pytest.mark.parametrize("weeks_off", [1, 3])
def test_catch_up_after_a_gap_covers_it_once(
    room: Newsroom, smtp_server: SmtpServer, weeks_off: int
) -> None:
    readers = room.subscribe_many(2)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    room.add_posts(1, at=SLOT - timedelta(hours=12))
    clock.now = SLOT
    sched.tick()
    first = issues.get_issue(room.conn, 1)
    assert first is not None
    # The machine is off for `weeks_off` slots; posts keep arriving (found at catch-up, or by
    # a manual `digest feeds check` in between: either way stamped inside the gap).
    for week in range(1, weeks_off + 1):
        room.add_posts(1, at=SLOT + week * WEEK - timedelta(days=2))
    back_on = SLOT + weeks_off * WEEK + timedelta(hours=5)
    clock.now = back_on
    [line] = sched.tick()
    assert "(issue 2 sent" in line or "issue 2 sent" in line
    clock.now = back_on + timedelta(minutes=1)
    assert sched.tick() == []  # one catch-up, not one per missed week
    second = issues.get_issue(room.conn, 2)
    assert second is not None and second.since == first.until
    first_ids = {p.id for p in first.content.posts}
    second_ids = {p.id for p in second.content.posts}
    assert not first_ids & second_ids
    per_blog = len(list(room.blogs.blogs()))
    assert len(second_ids) == weeks_off * per_blog  # every post of the gap, once
    assert room.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    assert all(len(ids) == 2 for ids in smtp_server.message_ids().values())
    assert sorted(smtp_server.message_ids()) == readers


def test_hold_keeps_the_issue_until_release(room: Newsroom, smtp_server: SmtpServer) -> None:
    room.subscribe_many(2)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    room.add_posts(1, at=SLOT - timedelta(hours=12))
    room.draft(now=SLOT - timedelta(hours=2))
    assert hold(room.conn) == 1
    clock.now = SLOT + timedelta(minutes=1)
    [line] = sched.tick()
    assert "issue 1 is held" in line
    assert smtp_server.messages == []
    run = runs.get_run(room.conn, SLOT)
    assert run is not None and run.outcome == "held"
    result = CliRunner().invoke(main, ["status", "--json"], env=room.env | smtp_env(smtp_server))
    assert json.loads(result.output)["draft"]["held"] is True
    # release: the hold is lifted and the issue goes out now, once.
    result = CliRunner().invoke(main, ["release", "--yes"], env=room.env | smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert "issue 1 released" in result.output and "sent 2" in result.output
    assert release(room.conn) is None
    clock.now += timedelta(hours=2)
    assert sched.tick() == []
    assert all(len(ids) == 1 for ids in smtp_server.message_ids().values())


def smtp_env(smtp: SmtpServer) -> dict[str, str]:
    return smtp.env()


def test_quiet_week_is_skipped_and_rolls_into_the_next(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    per_blog = len(list(room.blogs.blogs()))
    configure(room, min_posts=per_blog + 1)
    room.subscribe_many(1)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    room.add_posts(1, at=SLOT - timedelta(hours=12))  # one post per blog: not enough
    clock.now = SLOT
    [line] = sched.tick()
    assert "a quiet week" in line
    assert smtp_server.messages == [] and issues.last_issue(room.conn) is None
    assert runs.skipped_weeks(room.conn, 1) == 1
    room.add_posts(1, at=SLOT + WEEK - timedelta(days=1))  # the next week brings more
    clock.now = SLOT + WEEK
    [line] = sched.tick()
    assert "issue 1 sent: sent 1" in line
    sent = issues.get_issue(room.conn, 1)
    assert sent is not None and len(sent.content.posts) == 2 * per_blog
    assert sent.content.skipped_weeks == 1
    [message] = smtp_server.messages
    assert "covers 2 weeks" in message.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_quiet_week_can_send_the_archive_pick_only(room: Newsroom, smtp_server: SmtpServer) -> None:
    configure(room, quiet_week="archive_only")
    room.subscribe_many(1)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    clock.now = SLOT
    [line] = sched.tick()
    assert "issue 1 sent: sent 1" in line
    sent = issues.get_issue(room.conn, 1)
    assert sent is not None and sent.content.posts == [] and sent.content.archive_pick


def test_review_mode_mails_the_curator_first_and_sends_on_time(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    configure(room, mode="review", review_hours=24)
    readers = room.subscribe_many(2)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=3))
    room.add_posts(1, at=SLOT - timedelta(days=2))
    clock.now = SLOT - timedelta(hours=25)
    assert sched.tick() == []
    clock.now = SLOT - timedelta(hours=23)
    [line] = sched.tick()
    assert line.startswith("reviewed the slot of Mon 02 Mar 2026 08:00 CET")
    [review] = to(smtp_server, CURATOR)
    assert review["Subject"].startswith("[Review] issue 1:")
    note = review.get_body(("plain",)).get_content()
    assert "unless you run `digest hold`" in note and "Feed health" in note
    [attached] = [p for p in review.iter_attachments() if p.get_content_type() == "message/rfc822"]
    inner = attached.get_content()
    assert inner["Subject"].startswith("[Review] ") and inner["List-Unsubscribe-Post"]
    assert [m for m in smtp_server.messages if m.rcpt_tos[0] in readers] == []
    clock.now = SLOT - timedelta(hours=22)
    assert sched.tick() == []  # reviewed once
    clock.now = SLOT
    [line] = sched.tick()
    assert "issue 1 sent: sent 2" in line


def test_a_failed_run_mails_the_curator_and_is_retried_an_hour_later(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    room.subscribe_many(1)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    room.add_posts(1, at=SLOT - timedelta(hours=12))
    path = room.draft(now=SLOT - timedelta(hours=1))
    path.write_text(path.read_text().replace("\nposts:", "\nposts: [oops", 1))  # a broken edit
    clock.now = SLOT
    [line] = sched.tick()
    assert line.startswith("failed:") and str(path) in line
    [mail] = to(smtp_server, CURATOR)
    assert mail["Subject"] == "digest: the weekly job failed (running the weekly job)"
    body = mail.get_body(("plain",)).get_content()
    assert str(path) in body and "digest status" in body
    run = runs.get_run(room.conn, SLOT)
    assert run is not None and run.outcome == "failed" and run.attempts == 1
    clock.now = SLOT + timedelta(minutes=30)
    assert sched.tick() == []  # not yet
    with pytest.raises(DraftError, match="line 16"):
        room.draft(now=SLOT)  # still broken: reported, never overwritten
    path.write_text(path.read_text().replace("\nposts: [oops", "\nposts:", 1))  # fixed
    clock.now = SLOT + timedelta(minutes=61)
    [line] = sched.tick()
    assert "issue 1 sent: sent 1" in line
    run = runs.get_run(room.conn, SLOT)
    assert run is not None and run.outcome == "sent" and run.attempts == 2


def test_two_processes_never_run_the_job_together(room: Newsroom, smtp_server: SmtpServer) -> None:
    room.subscribe_many(1)
    room.add_posts(1, at=SLOT - timedelta(hours=12))
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from digest.config import Settings\n"
            "from digest.send.lock import job_lock\n"
            "with job_lock(Settings()):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        env={**os.environ, **room.env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        clock.now = SLOT
        [line] = sched.tick()
        assert line.startswith("waiting: another digest process is running the weekly job: pid")
        assert str(holder.pid) in line
        assert runs.get_run(room.conn, SLOT) is None  # not served: the next tick tries again
        cli = subprocess.run(
            [sys.executable, "-m", "digest", "run", "--once"],
            env={**os.environ, **room.env, **smtp_server.env()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 1 and f"pid {holder.pid}" in cli.stderr
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    clock.now = SLOT + timedelta(minutes=1)
    [line] = sched.tick()
    assert "issue 1 sent: sent 1" in line
    with job_lock(sched.settings):  # released by the holder's death, free again now
        pass


def test_run_forever_ticks_until_stopped(room: Newsroom, smtp_server: SmtpServer) -> None:
    import threading

    clock = Clock(SLOT - timedelta(days=1))
    sched, _ = scheduler(room, smtp_server, clock)
    stop = threading.Event()
    ticks: list[float] = []
    original = sched.tick

    def counting() -> list[str]:
        ticks.append(time.monotonic())
        if len(ticks) >= 2:
            stop.set()
        return original()

    sched.tick = counting  # type: ignore[method-assign]
    thread = threading.Thread(target=sched.run_forever, kwargs={"every": 1, "stop": stop})
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and len(ticks) >= 2


def test_status_reports_the_next_run_in_the_curators_time_zone(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    result = CliRunner().invoke(main, ["status", "--json"], env=room.env)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    nxt = datetime.fromisoformat(info["next_run"]["utc"].replace("Z", "+00:00"))
    assert nxt == next_slot(room.blogs.newsletter.schedule, datetime.now(UTC))
    assert info["next_run"]["local"].startswith("Mon ") and " 08:00 " in info["next_run"]["local"]
    assert info["feeds"]["total"] == 7 and info["last_issue"] is None
    text = CliRunner().invoke(main, ["status"], env=room.env)
    assert "Next run: Mon" in text.output and "Subscribers: 0 pending" in text.output


def test_serve_with_scheduler_runs_both_in_one_process(room: Newsroom) -> None:
    from plugins.smtp import free_port
    from plugins.website import digest_serve

    env = {**os.environ, **room.env}
    with digest_serve(env, room.root, free_port(), "--with-scheduler") as server:
        # The scheduler ticked once at start: it recorded when it began watching the slots.
        deadline = time.monotonic() + 30
        query = "SELECT value FROM meta WHERE key = 'scheduler_since'"
        while room.conn.execute(query).fetchone() is None:
            assert time.monotonic() < deadline, "the scheduler never ticked"
            time.sleep(0.1)
    # uvicorn shuts down on SIGTERM (and re-raises it): the scheduler thread never holds it up.
    assert server.returncode in (0, -signal.SIGTERM)


def test_a_feed_failing_several_runs_in_a_row_is_mailed_to_the_curator_once(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    # Delayed has no feed: its homepage on the local server is a 404, so discovery fails.
    configure(room, report_after_failures=2)
    room.subscribe_many(1)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    for week in range(3):
        room.add_posts(1, at=SLOT + week * WEEK - timedelta(hours=12))
        clock.now = SLOT + week * WEEK
        sched.tick()
    [report] = [m for m in to(smtp_server, CURATOR) if "need a look" in m["Subject"]]
    body = report.get_body(("plain",)).get_content()
    assert "Delayed." in body and "failed 2 runs in a row" in body


def test_a_hold_placed_before_the_draft_holds_the_issue_drafted_next(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    readers = room.subscribe_many(2)
    sched, clock = start(room, smtp_server, SLOT - timedelta(days=1))
    room.add_posts(1, at=SLOT - timedelta(hours=12))
    env = room.env | smtp_env(smtp_server)
    assert not (room.root / "drafts" / "1.yaml").exists()
    held = CliRunner().invoke(main, ["hold"], env=env)
    assert held.exit_code == 0, held.output
    assert "issue 1 is held (not drafted yet" in held.output
    status = CliRunner().invoke(main, ["status"], env=env)
    assert "Draft: none (the next run drafts one); issue 1 HELD" in status.output
    clock.now = SLOT + timedelta(minutes=1)
    [line] = sched.tick()  # the run drafts issue 1 and keeps it back
    assert "issue 1 is held" in line
    assert (room.root / "drafts" / "1.yaml").is_file()
    assert smtp_server.messages == [] and issues.get_issue(room.conn, 1) is None
    status = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert json.loads(status.output)["draft"]["held"] is True
    released = CliRunner().invoke(main, ["release", "--yes"], env=env)
    assert released.exit_code == 0, released.output
    assert "issue 1 released" in released.output
    assert sorted(smtp_server.message_ids()) == readers
    assert all(len(ids) == 1 for ids in smtp_server.message_ids().values())


def _no_base_url(room: Newsroom, smtp: SmtpServer) -> dict[str, str]:
    env = {k: v for k, v in room.subprocess_env().items() if k != "DIGEST_BASE_URL"}
    return {**env, **smtp.env()}


def test_the_scheduler_refuses_to_start_with_dead_unsubscribe_links(
    room: Newsroom, smtp_server: SmtpServer
) -> None:
    """DIGEST_BASE_URL never set and an SMTP host: `digest run` and `digest serve
    --with-scheduler` stop at once, before any slot, with the setting named."""
    env = _no_base_url(room, smtp_server)
    for args in (["run", "--every", "1"], ["serve", "--port", "0", "--with-scheduler"]):
        done = subprocess.run(
            [sys.executable, "-m", "digest", *args],
            env=env,
            cwd=room.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "error: DIGEST_BASE_URL is not set" in done.stderr
        assert "hint: set DIGEST_BASE_URL" in done.stderr and "Traceback" not in done.stderr
    settings = Settings(
        blogs=room.env["DIGEST_BLOGS"], db=room.env["DIGEST_DB"], smtp_host="127.0.0.1"
    )
    with pytest.raises(ConfigError, match="DIGEST_BASE_URL"):
        Scheduler(settings)
    Scheduler(settings, force=True)  # `digest run --force`
    assert room.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert smtp_server.messages == []
