from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from digest.config import Schedule
from digest.schedule import next_slot, slot_on_or_before


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_slot_across_autumn_change_in_europe() -> None:
    sched = Schedule(weekday="monday", time=time(8, 0), timezone="Europe/Brussels")
    # Summer time (UTC+2) until Sunday 2026-10-25, winter time (UTC+1) after.
    assert next_slot(sched, utc(2026, 10, 14, 12)) == utc(2026, 10, 19, 6)
    assert next_slot(sched, utc(2026, 10, 19, 6)) == utc(2026, 10, 26, 7)
    assert slot_on_or_before(sched, utc(2026, 10, 26, 6, 59)) == utc(2026, 10, 19, 6)
    assert slot_on_or_before(sched, utc(2026, 10, 26, 7)) == utc(2026, 10, 26, 7)


def test_next_slot_across_spring_change_in_america() -> None:
    sched = Schedule(weekday="friday", time=time(17, 30), timezone="America/New_York")
    # EST (UTC-5) until Sunday 2026-03-08, EDT (UTC-4) after.
    assert next_slot(sched, utc(2026, 3, 1)) == utc(2026, 3, 6, 22, 30)
    assert next_slot(sched, utc(2026, 3, 6, 22, 30)) == utc(2026, 3, 13, 21, 30)


def test_wall_time_that_does_not_exist_runs_after_the_jump() -> None:
    sched = Schedule(weekday="sunday", time=time(2, 30), timezone="Europe/Brussels")
    slot = next_slot(sched, utc(2026, 3, 28))
    assert slot == utc(2026, 3, 29, 1, 30)  # 03:30 CEST, the clock's reading after 02:00
    assert next_slot(sched, slot) == utc(2026, 4, 5, 0, 30)  # back to 02:30 local


def test_repeated_wall_time_runs_once() -> None:
    sched = Schedule(weekday="sunday", time=time(1, 30), timezone="America/New_York")
    first = next_slot(sched, utc(2026, 10, 31))
    assert first == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first of the two 01:30s
    assert next_slot(sched, first) == utc(2026, 11, 8, 6, 30)


@pytest.mark.parametrize("zone", ["Europe/Brussels", "America/Los_Angeles", "Australia/Sydney"])
def test_a_year_of_slots_is_weekly_on_local_wall_time(zone: str) -> None:
    sched = Schedule(weekday="wednesday", time=time(9, 15), timezone=zone)
    slot = next_slot(sched, utc(2026, 1, 1))
    for _ in range(53):
        local = slot.astimezone(sched.tz)
        assert (local.weekday(), local.time()) == (2, time(9, 15))
        following = next_slot(sched, slot)
        assert timedelta(days=7) - timedelta(hours=1) <= following - slot
        assert following - slot <= timedelta(days=7) + timedelta(hours=1)
        assert slot_on_or_before(sched, following - timedelta(seconds=1)) == slot
        slot = following
