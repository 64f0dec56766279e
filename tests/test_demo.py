"""`fleetcare demo` as a newcomer runs it: everything comes up, the fleet is listed within 30 s, its
replayed history has cases, inspections, callbacks and last month's reports, and Ctrl-C stops every
process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

from fleetcare.embedded import free_port
from tests.conftest import ROOT, wait_until


_TOKEN: dict[str, str] = {}


def _get(url: str, token: str | None = None) -> dict:
    """GET as the demo's admin (its token from credentials.json), or with `token`."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token or _TOKEN['admin']}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_demo_starts_everything_and_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCARE_")}  # embedded defaults
    out = open(tmp_path / "demo.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", "demo", "--port", str(port),
                             "--data-dir", str(tmp_path / "data")], stdout=out, stderr=subprocess.STDOUT,
                            env=env, cwd=ROOT)
    demo = psutil.Process(proc.pid)
    try:
        started = time.monotonic()

        creds_file = tmp_path / "data" / "credentials.json"

        def fleet_online() -> list[dict] | None:
            try:
                if "admin" not in _TOKEN:
                    if not creds_file.exists():
                        return None
                    _TOKEN["admin"] = json.loads(creds_file.read_text())["token"]
                items = _get(f"http://127.0.0.1:{port}/api/v1/devices")["items"]
            except OSError:
                return None
            online = [d for d in items if d["status"] == "online" and d["metrics"]]
            return items if len(online) >= 6 and len(online) == len(items) else None

        try:
            items = wait_until(fleet_online, timeout=90, interval=0.5, message="the demo fleet online")
        except AssertionError:
            out.flush()
            raise AssertionError((tmp_path / "demo.out").read_text())
        elapsed = time.monotonic() - started
        kinds = {d["kind"] for d in items}
        assert {"host", "switch", "ups"} <= kinds
        assert len({d["customer"] for d in items}) >= 2 and len({(d["customer"], d["site"]) for d in items}) >= 3
        assert len([d for d in items if d["kind"] != "host"]) >= 5
        banner = (tmp_path / "demo.out").read_text()
        assert f"http://127.0.0.1:{port}/" in banner and "broker" in banner
        descendants = demo.children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in descendants]
        assert len(descendants) >= 4, commands  # server, host agent, simulated fleet, broker (+ database)
        assert any("simulate" in c and "--follow" in c for c in commands), commands
        print(f"demo fleet online after {elapsed:.1f} s")
        # the simulated history's faults are found: alarms and health through the API
        alarms = wait_until(lambda: (a := _get(f"http://127.0.0.1:{port}/api/v1/alarms?state=active"))["total"]
                            and a, timeout=90, interval=1, message="alarms from the simulated history")
        assert all(a["text"] and a["detector"] for a in alarms["items"])
        healthy = _get(f"http://127.0.0.1:{port}/api/v1/devices?health_below=100")["items"]
        assert healthy, "a device with an open alarm has a health below 100"
        # and they opened cases, with their evidence and clocks
        cases = wait_until(lambda: (c := _get(f"http://127.0.0.1:{port}/api/v1/cases"))["total"] and c,
                           timeout=60, interval=1, message="cases from the simulated history")
        first = _get(f"http://127.0.0.1:{port}/api/v1/cases/{cases['items'][0]['id']}")
        assert first["events"] and first["severity"] in ("P1", "P2", "P3", "P4") and "response" in first["clocks"]
        assert "/api/v1/cases" in banner
        # the demo enrols its agents: remote diagnostics work out of the box
        agent = next(a for a in _get(f"http://127.0.0.1:{port}/api/v1/agents") if a["key"] == "demo-host")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/agents/{agent['id']}/diagnostics",
                                         data=json.dumps({"action": "status"}).encode(), method="POST",
                                         headers={"content-type": "application/json",
                                                  "Authorization": f"Bearer {_TOKEN['admin']}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            request_id = json.loads(resp.read())["request_id"]
        result = wait_until(lambda: (r := _get(f"http://127.0.0.1:{port}/api/v1/agents/{agent['id']}"
                                               f"/diagnostics/{request_id}"))["status"] != "sent" and r,
                            timeout=30, message="the demo agent's status diagnostic")
        assert result["status"] == "done", result
        # 60 days of service history: last month's report of each customer at once, the plan of the
        # next inspections with the reason for each date, callbacks answered
        wait_until(lambda: "history replayed" in (tmp_path / "demo.out").read_text(), timeout=300, interval=2,
                   message="the demo's history replayed and its reports issued")
        from datetime import UTC, datetime

        from api.reports.data import previous_period
        last = previous_period(datetime.now(UTC))
        customers = _get(f"http://127.0.0.1:{port}/api/v1/customers")
        assert {c["key"] for c in customers} >= {"acme", "globex"}
        for c in customers:
            report = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/customers/{c['id']}/reports/{last}.html"
                                            f"?lang={c['report_language']}",
                                            headers={"Authorization": f"Bearer {_TOKEN['admin']}"})
            with urllib.request.urlopen(report, timeout=60) as resp:
                assert resp.status == 200 and resp.headers["X-Fleetcare-Report"] == "stored"
                assert c["name"] in resp.read().decode()
        planned = _get(f"http://127.0.0.1:{port}/api/v1/inspections")
        assert len(planned) >= 12 and all(i["due_on"] and i["reason"] for i in planned)
        assert _get(f"http://127.0.0.1:{port}/api/v1/inspections?state=done")
        assert _get(f"http://127.0.0.1:{port}/api/v1/callbacks?state=done")
        assert "/api/v1/inspections" in banner and "/reports/" in banner
        # logins for people and scripts
        creds = json.loads((tmp_path / "data" / "credentials.json").read_text())
        assert creds["username"] == "admin" and len(creds["customers"]) == 2
        me = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/me",
                                    headers={"Authorization": f"Bearer {creds['token']}"})
        with urllib.request.urlopen(me, timeout=10) as resp:
            assert json.loads(resp.read())["role"] == "admin"
        portal = creds["customers"][0]
        form = urllib.parse.urlencode({"username": portal["username"], "password": portal["password"]}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/auth/token", data=form, timeout=10) as resp:
            login = json.loads(resp.read())
            assert login["token_type"] == "bearer"
        # a customer's login sees that customer's devices only
        theirs = _get(f"http://127.0.0.1:{port}/api/v1/devices?limit=1000", login["access_token"])["items"]
        assert theirs and {d["customer"] for d in theirs} == {portal["customer"]}
        assert creds["password"] in banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        finally:
            out.close()
    assert code == 0, (tmp_path / "demo.out").read_text()
    leftovers = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers, f"processes left behind: {[p.cmdline() for p in leftovers]}"
    assert "demo stopped" in (tmp_path / "demo.out").read_text()
    # pg_ctl daemonises the embedded PostgreSQL: look for it by its data directory
    data = str(tmp_path / "data")
    strays = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
              if p.info["cmdline"] and any(data in part for part in p.info["cmdline"])]
    assert not strays, f"processes left behind: {strays}"
