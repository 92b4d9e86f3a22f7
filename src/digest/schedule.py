"""When the weekly job runs: slots in the curator's time zone, catch-up, and the loop.

Slot arithmetic is done here with zoneinfo, on wall-clock dates, rather than with the `schedule`
library's ``.at(time, tz)``: that path needs pytz and has shipped DST bugs for weekday jobs
(dbader/schedule#598, #608). `schedule` only drives the loop: a short-interval tick that asks
these functions what is due, so a machine that slept or was off catches up on the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import schedule

from digest.config import WEEKDAYS, BlogsFile, Schedule, Settings, load_blogs
from digest.errors import DigestError, LockedError
from digest.send.deliver import send_issue
from digest.store import connect, deliveries, parse_ts, runs, transaction, ts, utcnow
from digest.store.db import Connection, get_meta, set_meta


def _local_slot(schedule: Schedule, day: datetime) -> datetime:
    """The slot on `day`'s local date, as an aware UTC datetime.

    A wall time that does not exist (spring forward) runs at the same offset as before the
    jump, i.e. the clock's new reading (02:30 -> 03:30); a repeated one (fall back) runs once,
    at the first occurrence (fold=0).
    """
    tz = schedule.tz
    naive = datetime.combine(day.date(), schedule.time)
    local = naive.replace(tzinfo=tz, fold=0)
    return local.astimezone(UTC)


def slot_on_or_before(schedule: Schedule, moment: datetime) -> datetime:
    """The latest slot at or before `moment` (aware)."""
    local = moment.astimezone(schedule.tz)
    back = (local.weekday() - WEEKDAYS.index(schedule.weekday)) % 7
    for days in (back, back + 7):
        slot = _local_slot(schedule, local - timedelta(days=days))
        if slot <= moment:
            return slot
    raise AssertionError("unreachable: a weekly slot exists within 14 days")


def next_slot(schedule: Schedule, after: datetime) -> datetime:
    """The first slot strictly after `after` (aware)."""
    local = after.astimezone(schedule.tz)
    ahead = (WEEKDAYS.index(schedule.weekday) - local.weekday()) % 7
    for days in (ahead, ahead + 7):
        slot = _local_slot(schedule, local + timedelta(days=days))
        if slot > after:
            return slot
    raise AssertionError("unreachable: a weekly slot exists within 14 days")


# --- the loop ----------------------------------------------------------------------------------

RETRY_FAILED_AFTER = timedelta(hours=1)
MAX_ATTEMPTS = 3  # a failing slot is tried this often, an hour apart, then waits for the next
RETRY_DEFERRED_EVERY = timedelta(hours=1)
log = logging.getLogger("digest.schedule")


class Scheduler:
    """Runs the weekly job at its slots. ``tick`` does whatever is due at the clock's time.

    A slot is served once (recorded in `runs`); the latest slot is caught up when the scheduler
    starts after missing it (the issue covers the whole gap, since its window starts where the
    last issue ended). Only slots after the scheduler first ran count, so starting it for the
    first time mid-week sends nothing at once.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        force: bool = False,
    ) -> None:
        """``ConfigError`` at once, before any slot, when its sends would carry dead links
        (DIGEST_BASE_URL never set, an SMTP host set), unless ``force``."""
        if not force:
            from digest.weekly import require_base_url

            require_base_url(settings)
        self.settings = settings
        self.clock = clock

    def tick(self) -> list[str]:
        """Do what is due now; returns what was done, one line each. Never raises a
        DigestError: the failure is logged (and mailed by the job) and retried later."""
        now = self.clock()
        try:
            blogs = load_blogs(self.settings.blogs)  # re-read: the curator edits it any time
            conn = connect(self.settings.db)
        except DigestError as exc:
            log.error("%s", exc.message)
            return [f"error: {exc.message}"]
        try:
            return self._tick(blogs, conn, now)
        except LockedError as exc:
            log.warning("%s; trying again at the next tick", exc.message)
            return [f"waiting: {exc.message}"]
        except DigestError as exc:
            log.error("the weekly job failed: %s", exc.message)
            return [f"failed: {exc.message}"]
        finally:
            conn.close()

    def _tick(self, blogs: BlogsFile, conn: Connection, now: datetime) -> list[str]:
        from digest import weekly

        newsletter = blogs.newsletter
        sched = newsletter.schedule
        epoch = parse_ts(get_meta(conn, "scheduler_since"))
        if epoch is None:
            epoch = now
            with transaction(conn):
                set_meta(conn, "scheduler_since", ts(now))
        done: list[str] = []
        due = slot_on_or_before(sched, now)
        if due >= epoch and _needs_run(runs.get_run(conn, due), now):
            if newsletter.mode == "review" and not _reviewed(conn, due):
                weekly.review(self.settings, blogs, conn, now=now, slot=due)
                done.append(f"reviewed the slot of {_local(due, sched)} (late: catching up)")
            outcome = weekly.run_once(self.settings, blogs, conn, now=now, slot=due)
            done.append(f"ran the slot of {_local(due, sched)}: {outcome.line()}")
            return done
        upcoming = next_slot(sched, now)
        review_from = upcoming - timedelta(hours=newsletter.review_hours)
        if newsletter.mode == "review" and now >= review_from and not _reviewed(conn, upcoming):
            weekly.review(self.settings, blogs, conn, now=now, slot=upcoming)
            done.append(f"reviewed the slot of {_local(upcoming, sched)}")
        elif deliveries.pending_issues(conn) and _retry_due(conn, now):
            summary = send_issue(self.settings, blogs, conn, now=now)
            with transaction(conn):
                set_meta(conn, "deferred_retried", ts(now))
            done.append(f"retried deferred deliveries: {summary.line()}")
        return done

    def run_forever(self, *, every: int = 60, stop: threading.Event | None = None) -> None:
        """Tick every `every` seconds until `stop` is set (or forever)."""
        stop = stop or threading.Event()
        # `schedule` drives the loop only: ticking often (not sleeping until a slot) is what
        # makes a suspended laptop or a changed clock catch up correctly.
        jobs = schedule.Scheduler()
        jobs.every(every).seconds.do(self._logged_tick)
        self._logged_tick()
        while not stop.is_set():
            jobs.run_pending()
            stop.wait(max(1.0, min(float(every), jobs.idle_seconds or every)))

    def _logged_tick(self) -> None:
        for line in self.tick():
            log.info("%s", line)

    def next_run(self, blogs: BlogsFile) -> datetime:
        return next_slot(blogs.newsletter.schedule, self.clock())


def _needs_run(run: runs.Run | None, now: datetime) -> bool:
    if run is None or run.outcome is None:  # never ran (or only reviewed)
        return True
    if run.outcome != "failed" or run.attempts >= MAX_ATTEMPTS:
        return False
    return run.finished_at is None or now >= run.finished_at + RETRY_FAILED_AFTER


def _reviewed(conn: Connection, slot: datetime) -> bool:
    run = runs.get_run(conn, slot)
    return run is not None and run.reviewed_at is not None


def _retry_due(conn: Connection, now: datetime) -> bool:
    last = parse_ts(get_meta(conn, "deferred_retried"))
    return last is None or now >= last + RETRY_DEFERRED_EVERY


def _local(slot: datetime, sched: Schedule) -> str:
    return slot.astimezone(sched.tz).strftime("%a %d %b %Y %H:%M %Z")
