"""`fleetcare demo`: the whole system on one machine — database, broker, server, an agent watching
this host and a simulated fleet — started with embedded defaults and stopped together on Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from fleetcare import embedded

log = logging.getLogger("fleetcare.demo")


def fleet() -> dict[str, Any]:
    return tomllib.loads(resources.files("fleetcare").joinpath("demo_fleet.toml").read_text("utf-8"))


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def agent_configs(data_dir: Path, mqtt_url: str, database_url: str | None = None) -> list[Path]:
    """The host agent's TOML file (written every run, so edits to the fleet file apply). With a
    database, the agent is enrolled so that remote diagnostics work in the demo too."""
    host = fleet()["host"]
    agents_dir = data_dir / "agents"
    agents_dir.mkdir(parents=True, exist_ok=True)
    secret = ""
    if database_url:
        import psycopg

        from agent import wire
        from collector.registry import enrol
        with psycopg.connect(database_url) as conn:
            secret = enrol(conn, wire.Origin(host["customer"], host["site"], host["agent"]))
    lines = ["[agent]", f"id = {_q(host['agent'])}", f"customer = {_q(host['customer'])}",
             f"site = {_q(host['site'])}", f"interval = {host['interval']}",
             f"data_dir = {_q(str(agents_dir / host['agent']))}", f"diagnostics_secret = {_q(secret)}", "",
             "[mqtt]", f"url = {_q(mqtt_url)}", "", "[host]", "enabled = true", ""]
    path = agents_dir / f"{host['agent']}.toml"
    path.write_text("\n".join(lines))
    return [path]


def simulate_args(data_dir: Path, mqtt_url: str) -> list[str]:
    """`fleetcare simulate` for the demo's fleet: history up to now at once, then live."""
    sim = fleet()["simulate"]
    return ["simulate", "--devices", str(sim["devices"]), "--days", str(sim["days"]),
            "--interval", str(sim["interval"]), "--history-interval", str(sim["history_interval"]),
            "--repair-h", str(sim["repair_h"]), "--seed", str(sim["seed"]),
            "--customer-names", ",".join(sim["customers"]), "--fault-rate", str(sim["fault_rate"]),
            "--follow", "--truth", str(data_dir / "simulated-truth.json"), "--mqtt-url", mqtt_url]


class Children:
    """The processes the demo started; stopped in reverse order, politely then firmly."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", *args], env=env,
                                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        logfile.close()
        self.procs.append((name, proc))
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                proc.kill()
                proc.wait()
        self.procs.clear()


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _last_month(now: Any) -> str:
    from api.reports.data import previous_period
    return previous_period(now)


def run(port: int = 8080, data_dir: Path | None = None, stop: threading.Event | None = None) -> int:
    """Start everything, print the banner, wait for Ctrl-C (or ``stop``), stop everything."""
    data_dir = Path(data_dir or Path.home() / ".local/share/fleetcare/demo").expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    services: list[Any] = []
    children = Children(data_dir / "logs")
    try:
        database_url = os.environ.get("FLEETCARE_DATABASE_URL", "")
        if database_url:
            db_line = "PostgreSQL from FLEETCARE_DATABASE_URL"
        else:
            pg = embedded.EmbeddedPostgres(data_dir / "postgres")
            database_url = pg.start()
            services.append(pg)
            db_line = f"embedded PostgreSQL, data in {pg.data_dir} (no TimescaleDB: plain partitions)"
        mqtt_url = os.environ.get("FLEETCARE_MQTT_URL", "")
        if mqtt_url:
            broker_line = f"broker from FLEETCARE_MQTT_URL ({mqtt_url})"
        else:
            broker = embedded.broker(data_dir / "mosquitto")
            mqtt_url = broker.start()
            services.append(broker)
            broker_line = f"{broker.kind} on {mqtt_url} — {broker.limits}"

        env = dict(os.environ, FLEETCARE_DATABASE_URL=database_url, FLEETCARE_MQTT_URL=mqtt_url)
        server = children.spawn("server", ["server", "--port", str(port)], env)
        console = f"http://127.0.0.1:{port}/"
        if not _wait_http(console + "healthz", 120, server):
            log.error("the server did not come up; see %s", children.log_dir / "server.log")
            return 1
        from datetime import UTC, datetime

        import psycopg

        from fleetcare import demo_seed
        today = datetime.now(UTC)
        with psycopg.connect(database_url, autocommit=True) as conn:
            demo_seed.contracts(conn, fleet(), today)
            logins = demo_seed.users(conn, fleet(), data_dir / "credentials.json")
        configs = agent_configs(data_dir, mqtt_url, database_url)
        for path in configs:
            children.spawn(f"agent-{path.stem}", ["agent", "--config", str(path)], env)
        spec = fleet()["simulate"]
        children.spawn("simulate", simulate_args(data_dir, mqtt_url), env)
        seeded: dict[str, Any] = {}
        # the seeder plans ~two inspections per device: the banner's terminal is not the place for them
        logging.getLogger("alerting.inspections").setLevel(logging.WARNING)

        def seed() -> None:
            try:
                seeded.update(demo_seed.seed(database_url, fleet(), stop, today=today))
            except Exception:  # the demo goes on without its history; the log says why
                log.exception("seeding the demo's service history failed")
                return
            if "reports" in seeded:
                print(f"history replayed: {seeded['cases']} cases, {seeded['inspected']} inspections done, "
                      f"{len(seeded['reports'])} reports issued — last month's: "
                      f"{console}api/v1/customers/<id>/reports", flush=True)

        threading.Thread(target=seed, name="demo-seed", daemon=True).start()
        print("\n".join([
            "",
            "fleetcare demo is running",
            f"  console   {console}   (log in as admin; a customer's login opens its portal, {console}portal)",
            f"  API       {console}api/v1/devices   (OpenAPI: {console}docs; every route needs "
            f"'Authorization: Bearer <token>', the admin's is in credentials.json)",
            f"  database  {db_line}",
            f"  broker    {broker_line}",
            f"  fleet     1 agent watching this host + {spec['devices']} simulated devices of "
            f"{len(spec['customers'])} customers ({spec['days']} days of history with faults, then live; "
            f"ground truth in {data_dir / 'simulated-truth.json'})",
            f"  alarms    {console}api/v1/alarms",
            f"  cases     {console}api/v1/cases?sort=urgency   (opened from the alarms, with SLA clocks)",
            f"  plan      {console}api/v1/inspections   (next inspections, each with the reason for its date)",
            f"  reports   {console}api/v1/customers   → /{{id}}/reports/{_last_month(today)}.html (or .pdf, ?lang=zh-CN)",
            f"  logins    admin / {logins['password']}; "
            + ", ".join(f"{c['username']} / {c['password']}" for c in logins["customers"])
            + f" (in {data_dir / 'credentials.json'}; POST {console}api/v1/auth/token)",
            f"  logs      {children.log_dir}",
            "Press Ctrl-C to stop everything.",
            "",
        ]), flush=True)
        while not stop.wait(1.0):
            dead = children.dead()
            if dead:
                log.error("%s exited; stopping the demo (see %s)", ", ".join(dead), children.log_dir)
                return 1
        return 0
    finally:
        children.stop()
        for service in reversed(services):
            service.stop()
        print("fleetcare demo stopped.", flush=True)
