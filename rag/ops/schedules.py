"""Refresh schedules: "every 6h" (an interval) or a 5-field cron expression.

trigger = parse_schedule("every 6h"); next_run("every 6h", last_success=..., now=...)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rag.durations import parse_duration

_EVERY = re.compile(r"^\s*every\s+(.+)$", re.IGNORECASE)


def interval_of(schedule: str) -> timedelta | None:
    match = _EVERY.match(schedule)
    return parse_duration(match.group(1)) if match else None


def parse_schedule(schedule: str) -> BaseTrigger:
    """A trigger for the schedule; ValueError with the accepted forms otherwise."""
    try:
        every = interval_of(schedule)
        if every is not None:
            return IntervalTrigger(seconds=every.total_seconds(), timezone="UTC")
        return CronTrigger.from_crontab(schedule, timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f"invalid schedule {schedule!r}: use 'every <n><s|m|h|d|w>' (e.g. 'every 6h') "
            f"or a 5-field cron expression (e.g. '0 */6 * * *'): {exc}"
        ) from exc


def next_run(schedule: str, last_run: datetime | None, now: datetime) -> datetime:
    """When the source is due next: an interval counts from the last run, cron from now."""
    every = interval_of(schedule)
    if every is not None:
        return (last_run + every) if last_run else now
    trigger = parse_schedule(schedule)
    fire = trigger.get_next_fire_time(None, last_run or now)
    return fire or now


def is_overdue(schedule: str, last_run: datetime | None, now: datetime, grace: float = 0.5) -> bool:
    """Not refreshed within its schedule (plus `grace` of one period, for a run in flight)."""
    every = interval_of(schedule)
    if every is None:
        trigger = parse_schedule(schedule)
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first) if first else None
        every = (second - first) if first and second else timedelta(days=1)
    if last_run is None:
        return True
    return now - last_run > every * (1 + grace)
