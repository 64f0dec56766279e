"""The console and the portal in a real browser (Debian's headless Chromium through Playwright),
against the real system: a uvicorn server on a free port, PostgreSQL, the broker, a collector and a
site agent as subprocesses. A device goes offline because its agent dies (the broker's Last Will,
processed by the collector) and the console's row changes without a reload; a diagnostic travels
to the agent and back; a case is acknowledged from its page; a customer cannot open another
customer's device. Screenshots of the main pages go to $FLEETCARE_SCREENSHOTS, else the test's
temporary directory (printed)."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.registry import enrol
from fleetcare.embedded import free_port
from tests.api_support import make_user
from tests.conftest import Broker, Processes, _scratch_database, config_for, wait_until
from tests.console_support import build_fleet
from tests.test_diagnostics import ORIGIN, agent_with_secret
from tests.test_end_to_end import collector_env

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium): the browser tests need it",
                allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the Python package playwright is not installed (pip install -e .[test])", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@dataclass
class System:
    url: str
    db_url: str
    fleet: dict[str, Any]
    agent_device: int  # the live agent's device
    engineer: tuple[str, str]
    customer: tuple[str, str]
    agent: Any  # its process
    shots: Path


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("FLEETCARE_SCREENSHOTS")
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {path}")
    return path


@pytest.fixture(scope="module")
def system(pg_admin_url: str, template_db: str, broker: Broker, shots: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    import uuid

    import uvicorn

    from api.app import create_app

    work = tmp_path_factory.mktemp("browser")
    prefix = f"fcbrowser-{uuid.uuid4().hex[:8]}"
    with _scratch_database(pg_admin_url, "fc_b", template_db) as db_url:
        cfg = config_for(db_url, broker.url, prefix)
        fleet = build_fleet(db_url)
        with psycopg.connect(db_url) as conn:
            secret = enrol(conn, ORIGIN)
        procs = Processes(work)
        try:
            procs.fleetcare("collector", "collector", env=collector_env(cfg))
            agent = procs.fleetcare("agent", "agent", "--config", str(agent_with_secret(work, broker, prefix, secret)))

            def agent_device() -> int | None:
                with psycopg.connect(db_url) as conn:
                    row = conn.execute("SELECT d.id FROM devices d JOIN agents a ON a.id = d.agent_id "
                                       "WHERE a.key = %s AND a.state = 'online' AND d.status = 'online'",
                                       (ORIGIN.agent,)).fetchone()
                return row[0] if row else None

            device = wait_until(agent_device, timeout=40, message="the agent's device online")
            engineer = make_user(db_url, "engineer")[:2]
            customer = make_user(db_url, "customer", customer="acme")[:2]
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(create_app(db_url, mqtt=cfg.mqtt), host="127.0.0.1", port=port,
                                                   log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            wait_until(lambda: server.started, timeout=20, message="uvicorn started")
            try:
                yield System(f"http://127.0.0.1:{port}", db_url, fleet, int(device), engineer, customer, agent, shots)
            finally:
                server.should_exit = True
                thread.join(10)
        finally:
            procs.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-GB")
    context.set_default_timeout(20_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def log_in(page: Page, system: System, who: tuple[str, str], path: str = "/") -> None:
    page.goto(system.url + path)
    assert "/login" in page.url, page.url
    page.fill("#username", who[0])
    page.fill("#password", who[1])
    page.click("#login-submit")
    page.wait_for_load_state("domcontentloaded")


def shot(page: Page, system: System, name: str) -> None:
    page.screenshot(path=str(system.shots / f"{name}.png"), full_page=True)


def test_engineer_works_the_console(page: Page, system: System) -> None:
    f = system.fleet
    # --- login: a page without a session goes to the form, then back to where it was going
    page.goto(system.url + "/")
    assert "/login?next=" in page.url
    shot(page, system, "login")
    page.fill("#username", system.engineer[0])
    page.fill("#password", "wrong password, surely")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("#password", system.engineer[1])
    page.click("#login-submit")
    page.wait_for_url(system.url + "/")

    # --- the fleet, live
    row = page.locator(f"#device-{system.agent_device}")
    expect(row).to_have_attribute("data-status", "online")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    expect(page.locator(f"#device-{f['devices']['sw1']} .c-case a")).to_have_text(f"#{f['cases']['sw1']} P2 · open")
    shot(page, system, "console")

    # --- a device's chart: an hour of history, one point per 30 s
    page.goto(f"{system.url}/devices/{f['devices']['sw1']}")
    chart = page.locator("#chart")
    expect(chart.locator("canvas")).to_have_count(1)
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) > 50, timeout=20, message="chart points")
    page.click("button[data-range='24h']")
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) > 0, timeout=20, message="24 h chart points")
    expect(page.locator("#device-cases")).to_contain_text("Uplink errors rising")
    expect(page.locator("#next-inspection a")).to_be_visible()
    shot(page, system, "device")

    # --- remote diagnostics through the broker to the live agent and back
    page.goto(f"{system.url}/devices/{system.agent_device}")
    page.select_option("#diag-action", "status")
    page.click("#diag-run")
    expect(page.locator("#diag-status")).to_have_attribute("data-state", "done", timeout=40_000)
    expect(page.locator("#diag-result")).to_contain_text('"counters"')
    expect(page.locator("#diag-result")).to_contain_text('"diagnostics_secret": "***"')
    shot(page, system, "device-diagnostics")

    # --- the case queue: countdowns tick
    page.goto(system.url + "/cases")
    left = page.locator(f"#case-{f['cases']['sw1']} .countdown .left")
    expect(left).to_contain_text("left")
    first = left.text_content()
    wait_until(lambda: left.text_content() != first, timeout=5, message="the countdown ticking")
    shot(page, system, "case-queue")

    # --- a case: acknowledge it
    page.click(f"#case-{f['cases']['sw1']} a.case-link")
    page.wait_for_url(f"{system.url}/cases/{f['cases']['sw1']}")
    expect(page.locator("#case-state")).to_have_attribute("data-state", "open")
    page.click("#act-acknowledge")
    expect(page.locator("#case-state")).to_have_attribute("data-state", "acknowledged")
    expect(page.locator("#case-events")).to_contain_text(system.engineer[0])
    expect(page.locator("#clocks .clock[data-clock=response]")).to_contain_text("met")
    shot(page, system, "case")

    # --- inspections: the overdue one, its checklist, recorded
    page.goto(system.url + "/inspections")
    expect(page.locator(f"#insp-{f['inspection']}")).to_contain_text("2 days overdue")
    shot(page, system, "inspections")
    page.click(f"#insp-{f['inspection']} a.insp-link")
    expect(page.locator("#items tr").first).to_be_visible()
    page.fill("#notes", "all fine, dust removed")
    page.click("#complete")
    expect(page.locator("#insp-done")).to_be_visible()
    shot(page, system, "inspection")
    with psycopg.connect(system.db_url) as conn:
        assert conn.execute("SELECT state, done_by FROM inspections WHERE id = %s",
                            (f["inspection"],)).fetchone() == ("done", system.engineer[0])

    # --- the live change: the agent dies, its Last Will reaches the collector, the row turns offline
    page.goto(system.url + "/")
    expect(row).to_have_attribute("data-status", "online")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    page.evaluate("window.__sameDocument = 'yes'")
    system.agent.send_signal(signal.SIGKILL)
    expect(row).to_have_attribute("data-status", "offline", timeout=40_000)
    expect(row.locator(".c-status")).to_have_text("offline")
    assert page.evaluate("window.__sameDocument") == "yes"  # no reload: the event stream did it
    shot(page, system, "console-offline")

    # --- a callback made by phone, recorded on the callbacks page
    with psycopg.connect(system.db_url, autocommit=True) as conn:
        callback = conn.execute(
            "INSERT INTO callbacks (customer_id, kind, due_at) VALUES (%s, 'scheduled', now() - interval '1 day') "
            "RETURNING id", (system.fleet["customers"]["globex"],)).fetchone()[0]
    page.goto(system.url + "/callbacks")
    form = page.locator(f"#cb-{callback} form")
    expect(page.locator(f"#cb-{callback} .tag.overdue")).to_be_visible()
    form.locator("select[name=satisfaction]").select_option("3")
    form.locator("textarea[name=comment]").fill("wants a faster answer at night")
    shot(page, system, "callbacks")
    form.locator("button[type=submit]").click()
    expect(page.locator(f"#cb-{callback} .ok")).to_be_visible()
    with psycopg.connect(system.db_url) as conn:
        assert conn.execute("SELECT state, satisfaction, done_by FROM callbacks WHERE id = %s",
                            (callback,)).fetchone() == ("done", 3, system.engineer[0])

    # --- Chinese
    page.goto(system.url + "/?lang=zh-CN")
    expect(page.locator("h1")).to_contain_text("设备状态")
    shot(page, system, "console-zh")
    page.click("#logout")
    page.wait_for_url(lambda u: "/login" in u)


def test_customer_sees_the_portal_and_nothing_of_others(page: Page, system: System) -> None:
    f = system.fleet
    with psycopg.connect(system.db_url, autocommit=True) as conn:  # a scheduled callback of acme's, and one of globex's
        mine, theirs = (conn.execute(
            "INSERT INTO callbacks (customer_id, kind, due_at) VALUES (%s, 'scheduled', now() + interval '2 days') "
            "RETURNING id", (f["customers"][key],)).fetchone()[0] for key in ("acme", "globex"))
    log_in(page, system, system.customer)
    page.wait_for_url(system.url + "/portal")
    expect(page.locator(f"#device-{f['devices']['sw1']}")).to_be_visible()
    expect(page.locator(f"#pcase-{f['cases']['sw1']}")).to_be_visible()
    expect(page.locator("#reports li").first).to_be_visible()
    expect(page.locator(f"#device-{f['devices']['ups2']}")).to_have_count(0)
    expect(page.locator(f"#callback-{theirs}")).to_have_count(0)
    shot(page, system, "portal")
    # the customer answers its callback from the portal
    form = page.locator(f"#callback-{mine}")
    form.locator("select[name=satisfaction]").select_option("4")
    form.locator("textarea[name=comment]").fill("quick and friendly")
    form.locator("button[type=submit]").click()
    expect(form.locator(".ok")).to_be_visible()
    with psycopg.connect(system.db_url) as conn:
        state, satisfaction, by = conn.execute("SELECT state, satisfaction, done_by FROM callbacks WHERE id = %s",
                                               (mine,)).fetchone()
    assert (state, satisfaction, by) == ("done", 4, system.customer[0])
    # another customer's device, by URL
    response = page.goto(f"{system.url}/devices/{f['devices']['ups2']}")
    assert response is not None and response.status == 404
    expect(page.locator("#error-page")).to_be_visible()
    assert "UPS2" not in page.content()
    shot(page, system, "portal-other-customer-404")
    # the console is not theirs: back to the portal
    page.goto(system.url + "/cases")
    page.wait_for_url(system.url + "/portal")
    # their own device: no diagnostics panel
    page.goto(f"{system.url}/devices/{f['devices']['sw1']}")
    expect(page.locator("#chart canvas")).to_have_count(1)
    expect(page.locator("#diag-panel")).to_have_count(0)
