"""SLA clocks and support calendars: pure functions of datetimes, so a controlled clock, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerting.calendar import ALWAYS, advance, elapsed
from alerting.case_policy import load_case_policy
from alerting.policies import PolicyError
from alerting.sla import ClockState, clock_summary, load_rules, parse_budgets, rules

CST = ZoneInfo("Asia/Shanghai")


def cst(*args: int) -> datetime:
    return datetime(*args, tzinfo=CST)


def test_shipped_policies_hold_the_domain_defaults() -> None:
    std = rules().policy("standard").budgets
    assert (std["P1"].response_h, std["P1"].onsite_h, std["P1"].resolve_h) == (1, 4, 24)
    assert (std["P2"].response_h, std["P2"].onsite_h, std["P2"].resolve_h) == (1, 24, 72)
    assert (std["P3"].response_h, std["P3"].onsite_h, std["P3"].resolve_h) == (2, 72, 108)
    assert std["P4"].response_h == 24 and std["P4"].onsite_h is None and std["P4"].resolve_h is None
    assert [lv.at for lv in rules().levels] == [0.75, 1.0]
    assert "executive" in rules().on_open["P1"]


def test_business_hours_skip_nights_weekends_and_holidays() -> None:
    cal = rules().calendar("business-cn")
    # Friday 16:30: 30 minutes left that day, the weekend is off, Monday from 08:30
    assert advance(cal, cst(2026, 3, 13, 16, 30), 2 * 3600) == cst(2026, 3, 16, 10, 0).astimezone(UTC)
    # a case opened at night starts counting at 08:30
    assert advance(cal, cst(2026, 3, 17, 2, 0), 3600) == cst(2026, 3, 17, 9, 30).astimezone(UTC)
    # National Day week is off; Saturday 10 October is worked in exchange (调休)
    assert advance(cal, cst(2026, 9, 30, 16, 0), 2 * 3600) == cst(2026, 10, 8, 9, 30).astimezone(UTC)
    assert elapsed(cal, cst(2026, 10, 9, 17, 0), cst(2026, 10, 10, 17, 0)) == 8.5 * 3600
    assert elapsed(cal, cst(2026, 10, 1, 0, 0), cst(2026, 10, 8, 0, 0)) == 0.0
    # and the two agree: the working time until advance(x) is x
    start = cst(2026, 2, 13, 15, 0)
    for hours in (0.5, 3, 9, 40):
        assert elapsed(cal, start, advance(cal, start, hours * 3600)) == pytest.approx(hours * 3600)


def test_clock_pauses_while_waiting_on_the_customer() -> None:
    opened = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    budgets = rules().policy("standard").budgets
    st = ClockState("P2", opened, ALWAYS, budgets)
    assert st.due("response") == opened + timedelta(hours=1)
    at = opened + timedelta(minutes=45)
    assert st.used("response", at) == pytest.approx(0.75)
    assert st.left_s("response", at) == pytest.approx(15 * 60)
    # waiting since 08:30: at 10:00 the clock shows 30 minutes used, not 2 hours
    waiting = ClockState("P2", opened, ALWAYS, budgets, paused_at=opened + timedelta(minutes=30))
    assert waiting.used("response", opened + timedelta(hours=2)) == pytest.approx(0.5)
    summary = clock_summary(waiting, opened + timedelta(hours=2))
    assert summary["response"]["paused"] and not summary["response"]["breached"]
    # resumed after 90 minutes of waiting: every deadline moves by exactly that
    resumed = ClockState("P2", opened, ALWAYS, budgets, paused_s=90 * 60)
    assert resumed.due("resolve") == opened + timedelta(hours=72, minutes=90)
    late = opened + timedelta(hours=3)
    assert resumed.breached("response", late) and resumed.left_s("response", late) == pytest.approx(-30 * 60)
    # met: no time left to show, never breached afterwards
    met = ClockState("P2", opened, ALWAYS, budgets, met={"response": opened + timedelta(minutes=20)})
    assert met.left_s("response", late) is None and not met.breached("response", late)


def test_overrides_keep_the_rest_of_the_policy() -> None:
    base = rules().policy("standard").budgets
    out = parse_budgets({"P1": {"response_h": 0.25}}, "contract", base)
    assert out["P1"].response_h == 0.25 and out["P1"].onsite_h == 4 and out["P2"] == base["P2"]
    with pytest.raises(PolicyError, match="P1.response_h"):
        parse_budgets({"P1": {"response_h": -1}}, "contract", base)
    with pytest.raises(PolicyError, match="P7"):
        parse_budgets({"P7": {"response_h": 1}}, "contract", base)


def test_wrong_policy_files_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "sla.toml"
    bad.write_text('[calendars.x]\ntimezone = "Mars/Olympus"\n[policies.standard]\nP1 = { response_h = 1 }\n')
    with pytest.raises(PolicyError, match="calendars.x.timezone"):
        load_rules(bad)
    bad.write_text('[policies.standard]\nP1 = { response_h = 1 }\nP2 = { response_h = 1 }\nP3 = { response_h = 1 }\n')
    with pytest.raises(PolicyError, match="no times for P4"):
        load_rules(bad)
    cases = tmp_path / "cases.toml"
    cases.write_text('[priority.high]\ncritical = "P0"\n')
    with pytest.raises(PolicyError, match="priority"):
        load_case_policy(cases)
