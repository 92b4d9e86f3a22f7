"""When the weekly job runs: slots in the curator's time zone, catch-up, and the loop.

Slot arithmetic is done here with zoneinfo, on wall-clock dates, rather than with the `schedule`
library's ``.at(time, tz)``: that path needs pytz and has shipped DST bugs for weekday jobs
(dbader/schedule#598, #608). `schedule` only drives the loop: a short-interval tick that asks
these functions what is due, so a machine that slept or was off catches up on the next tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.config import WEEKDAYS, Schedule


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
