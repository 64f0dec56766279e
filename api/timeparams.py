"""Parsing the time parameters of series queries: RFC 3339 or epoch seconds; steps like 30s, 5m, 1h."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from api.errors import BadRequest

MAX_POINTS = 11_000  # as Prometheus: a step so small that the series explodes is refused
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, None: 1}


def parse_time(value: str | None, name: str, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}={value!r}: expected RFC 3339 (2026-11-23T10:00:00Z) or epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_step(value: str | None, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds()
    if value is None or value == "":
        return max(1.0, float(int(span / 300) or 1))
    match = _DURATION.match(value.strip())
    if not match:
        raise BadRequest(f"step={value!r}: expected seconds or a duration such as 30s, 5m, 1h")
    step = float(match.group(1)) * _UNIT[match.group(2)]
    if step < 1:
        raise BadRequest(f"step={value!r}: must be at least 1 second")
    if span / step > MAX_POINTS:
        raise BadRequest(f"step={value!r} gives {int(span / step)} points over this range; "
                         f"the limit is {MAX_POINTS}: use a larger step or a shorter range")
    return step


def time_range(start: str | None, end: str | None, default_span: timedelta = timedelta(hours=1)
               ) -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    end_t = parse_time(end, "end", now)
    start_t = parse_time(start, "start", end_t - default_span)
    if start_t >= end_t:
        raise BadRequest("start must be before end")
    return start_t, end_t
