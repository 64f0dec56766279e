"""Scheduled callbacks (回访) per contract: monthly in the first year after acceptance, quarterly
after (the plan is data: alerting/data/inspection.toml [callbacks.*]).

Each due date is one row (a unique index on contract and date), so the daily job can run any number
of times, and after any outage, without doubling a callback. Callbacks after a closed case are the
case's own (alerting/case_actions.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from alerting.inspection_policy import InspectionPolicy, default_policy
from alerting.inspections import add_months


def due_dates(accepted_on: date, steps: tuple[tuple[int, int | None], ...], until: date) -> Iterator[date]:
    """The plan's due dates after acceptance, up to `until` (inclusive)."""
    month = 0
    for every, until_month in steps:
        while until_month is None or month + every <= until_month:
            month += every
            d = add_months(accepted_on, month)
            if d > until:
                return
            yield d
        month = until_month if until_month is not None else month


def schedule(conn: psycopg.Connection, today: date | None = None, *, horizon_days: int = 31,
             policy: InspectionPolicy | None = None) -> int:
    """Create the callbacks of every active contract due within `horizon_days` either side of today
    (so a month of downtime misses none, and a contract accepted years ago does not flood the list
    with callbacks nobody can make any more); returns how many were created."""
    policy = policy or default_policy()
    today = today or datetime.now(UTC).date()
    until = today + timedelta(days=horizon_days)
    created = 0
    for cid, customer_id, accepted, starts, ends, plan_name in conn.execute(
            "SELECT id, customer_id, accepted_on, starts_on, ends_on, callback_plan FROM contracts "
            "WHERE active AND accepted_on IS NOT NULL").fetchall():
        steps = policy.callback_plans.get(plan_name)
        if steps is None:
            continue  # the contract API refuses unknown plans; an old row is skipped, not fatal
        first = max(starts or accepted, today - timedelta(days=horizon_days))
        for d in due_dates(accepted, steps, min(until, ends) if ends else until):
            if d < first:
                continue
            created += conn.execute(
                "INSERT INTO callbacks (customer_id, contract_id, kind, due_at) VALUES (%s, %s, 'scheduled', %s) "
                "ON CONFLICT (contract_id, due_at) WHERE kind = 'scheduled' DO NOTHING",
                (customer_id, cid, datetime.combine(d, time(9, 0), UTC))).rowcount
    return created
