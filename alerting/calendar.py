"""Support calendars: when a contract's clocks run (7×24, or business hours with holidays).

A clock counts only the calendar's working time. `elapsed(cal, a, b)` is the working seconds
between two instants; `advance(cal, start, seconds)` the instant when that much working time has
passed. Pure functions of datetimes, so SLA tests move a controlled clock instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Calendar:
    name: str
    always: bool = False  # 7×24: every second counts
    timezone: str = "UTC"
    days: frozenset[int] = frozenset(range(5))  # weekday numbers (0 = Monday) with working hours
    start: time = time(8, 30)
    end: time = time(17, 0)
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)  # weekend days worked (调休)

    def _windows(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of a local date, or None when it is not a working day."""
        working = (day.weekday() in self.days and day not in self.holidays) or day in self.workdays
        if not working:
            return None
        tz = ZoneInfo(self.timezone)
        return (datetime.combine(day, self.start, tz), datetime.combine(day, self.end, tz))


ALWAYS = Calendar("24x7", always=True)


def elapsed(cal: Calendar, a: datetime, b: datetime) -> float:
    """Working seconds between a and b (0 when b is not after a)."""
    if b <= a:
        return 0.0
    if cal.always:
        return (b - a).total_seconds()
    tz = ZoneInfo(cal.timezone)
    day = a.astimezone(tz).date()
    last = b.astimezone(tz).date()
    total = 0.0
    while day <= last:
        window = cal._windows(day)
        if window is not None:
            lo, hi = max(window[0], a), min(window[1], b)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


def advance(cal: Calendar, start: datetime, seconds: float) -> datetime:
    """The instant at which `seconds` of working time have passed since `start`."""
    if cal.always:
        return start + timedelta(seconds=seconds)
    tz = ZoneInfo(cal.timezone)
    left = seconds
    day = start.astimezone(tz).date()
    for _ in range(3660):  # ten years of days: a calendar with no working day at all ends here
        window = cal._windows(day)
        if window is not None:
            lo = max(window[0], start)
            if window[1] > lo:
                room = (window[1] - lo).total_seconds()
                if left <= room:
                    return (lo + timedelta(seconds=left)).astimezone(UTC)
                left -= room
        day += timedelta(days=1)
    raise ValueError(f"calendar {cal.name}: no working time within ten years")


def parse_calendar(name: str, table: dict, where: str) -> Calendar:
    """A calendar from its data-file table; errors name the file and field."""
    def hhmm(key: str, default: str) -> time:
        value = table.get(key, default)
        try:
            return time.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{key}: expected HH:MM, got {value!r}") from None

    def dates(key: str) -> frozenset[date]:
        out = set()
        for v in table.get(key, []):
            try:
                out.add(v if isinstance(v, date) else date.fromisoformat(str(v)))
            except ValueError:
                raise ValueError(f"{where}.{key}: {v!r} is not a date (YYYY-MM-DD)") from None
        return frozenset(out)

    tzname = table.get("timezone", "UTC")
    try:
        ZoneInfo(tzname)
    except Exception:
        raise ValueError(f"{where}.timezone: unknown time zone {tzname!r}") from None
    days = table.get("days", ["mon", "tue", "wed", "thu", "fri"])
    bad = [d for d in days if d not in DAY_NAMES]
    if bad:
        raise ValueError(f"{where}.days: unknown day {bad[0]!r} (mon … sun)")
    cal = Calendar(name, timezone=tzname, days=frozenset(DAY_NAMES.index(d) for d in days),
                   start=hhmm("start", "08:30"), end=hhmm("end", "17:00"), holidays=dates("holidays"),
                   workdays=dates("workdays"))
    if cal.end <= cal.start:
        raise ValueError(f"{where}: end {cal.end} must come after start {cal.start}")
    return cal
