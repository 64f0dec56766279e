"""The one command line: `fleetcare <subcommand>`. Server subcommands import the server lazily, so a
site install (agent dependencies only) runs `fleetcare agent` without FastAPI or psycopg."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run at INFO
    # PDF rendering narrates every step at INFO and warns of an optional font library at each report
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.WARNING)


def _config_error(message: object) -> None:
    """Bad configuration: say what is wrong and exit 2, as every fleetcare command does."""
    print(f"configuration error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _server_config(args: argparse.Namespace):
    try:
        from collector.config import load
    except ImportError as exc:  # site install without the server extra
        raise SystemExit(f"fleetcare {args.command}: the server is not installed "
                         f"(pip install 'fleetcare[server]'): {exc}")
    from agent.settings import SettingsError
    try:
        cfg = load(args.config)
    except SettingsError as exc:
        _config_error(exc)
    if getattr(args, "port", None):
        cfg.api.port = args.port
    if getattr(args, "host", None):
        cfg.api.host = args.host
    return cfg


def _database_config(args: argparse.Namespace):
    """The server configuration of a command that needs the database (and nothing else)."""
    cfg = _server_config(args)
    if not cfg.database.url:
        _config_error("database.url is not set: set FLEETCARE_DATABASE_URL or [database] url")
    return cfg


def cmd_agent(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "discover":
        from agent.snmp.discover import run as discover
        return discover(args)
    if args.config is None:
        _config_error("fleetcare agent needs --config FILE (see deploy/agent.toml)")
    from agent.main import run
    return run(args.config)


def cmd_server(args: argparse.Namespace) -> int:
    from fleetcare import server
    cfg = _server_config(args)
    parts = {"server": dict(collector=True, api=True, jobs=True),
             "collector": dict(collector=True, api=False, jobs=True),
             "api": dict(collector=False, api=True, jobs=False)}[args.command]
    return server.run(cfg, **parts)


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = _server_config(args)
    import threading
    from collector.migrate import MigrationError
    from fleetcare.server import StartupError, wait_and_migrate
    try:
        info = wait_and_migrate(cfg, threading.Event(), timeout=60.0)
    except StartupError as exc:
        _config_error(exc) if "not set" in str(exc) else None
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    print(f"schema at version {info['to']} (was {info['from']}) on {info['backend']}")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    cfg = _database_config(args)
    import psycopg

    from agent import wire
    from collector.migrate import migrate
    from collector.registry import enrol
    for label, value in (("customer", args.customer), ("site", args.site), ("agent", args.agent)):
        if not wire.ID_RE.match(value):
            _config_error(f"--{label} {value!r} is not a valid id")
    migrate(cfg.database.url, cfg.database)
    with psycopg.connect(cfg.database.url) as conn:
        secret = enrol(conn, wire.Origin(args.customer, args.site, args.agent), rotate=args.rotate)
    print(f"# agent {args.customer}/{args.site}/{args.agent} is enrolled; put this in its configuration:\n"
          f"[agent]\nid = \"{args.agent}\"\ncustomer = \"{args.customer}\"\nsite = \"{args.site}\"\n"
          f"diagnostics_secret = \"{secret}\"")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from fleetcare.demo import run
    return run(port=args.port, data_dir=args.data_dir)


def cmd_detect(args: argparse.Namespace) -> int:
    """Run the streaming baseline detector over CSV files: each --input to the --output at its place."""
    from alerting.baseline import SeriesError, detect_file
    if len(args.input) != len(args.output):
        _config_error(f"fleetcare detect: {len(args.input)} --input files but {len(args.output)} --output files")
    failed = 0
    for source, target in zip(args.input, args.output):
        try:
            detect_file(source, target)
        except SeriesError as exc:
            print(f"detect: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Publish a simulated fleet with injected faults through the broker, faster than real time."""
    from fleetcare.simulate import run
    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    """Render one customer's health report for one month: the stored one when the month was issued,
    else built now (and kept, once the month has ended)."""
    cfg = _database_config(args)
    import psycopg

    from api.reports import data as report_data
    from api.reports import render, store
    try:
        with psycopg.connect(cfg.database.url, autocommit=True) as conn:
            report = store.get(conn, args.customer, args.period, args.lang, want_pdf=args.format == "pdf")
    except report_data.ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except render.PdfUnavailable as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"report: database unavailable: {str(exc).strip()}", file=sys.stderr)
        return 1
    body = report.pdf if args.format == "pdf" else report.html.encode()
    assert body is not None
    if args.output is None or str(args.output) == "-":
        sys.stdout.buffer.write(body)
    else:
        args.output.write_bytes(body)
        state = "issued" if report.stored else "provisional (the month is still running)"
        print(f"{args.output}: {args.format} report of {args.customer} for {args.period} in {args.lang}, {state}",
              file=sys.stderr)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """Users on the command line: the first admin, and scripts."""
    cfg = _database_config(args)
    import psycopg

    from api import auth
    from collector.migrate import migrate
    migrate(cfg.database.url, cfg.database)
    try:
        with psycopg.connect(cfg.database.url, autocommit=True) as conn:
            if args.action == "add":
                auth.add_user(conn, args.username, args.password, args.role, customer=args.customer,
                              customers=[c for c in (args.customers or "").split(",") if c], by="cli")
                print(f"user {args.username} added ({args.role}{', customer ' + args.customer if args.customer else ''})")
            elif args.action == "disable":
                auth.disable_user(conn, args.username, by="cli")
                print(f"user {args.username} disabled; their sessions and tokens are revoked")
            else:
                for u in auth.list_users(conn):
                    scope = u["customer"] or (",".join(u["customers"]) or "all customers")
                    print(f"{u['username']:<24} {u['role']:<9} {scope:<24} {'disabled' if u['disabled'] else 'active'}")
    except auth.AuthError as exc:
        print(f"user: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetcare", description="Watch installed equipment at customer "
                                     "sites and fix it before the customer notices.")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the whole system on this machine with embedded defaults")
    p.add_argument("--port", type=int, default=8080, help="HTTP port of the console and API (8080)")
    p.add_argument("--data-dir", type=Path, default=Path.home() / ".local/share/fleetcare/demo",
                   help="where embedded data lives; kept across runs")
    p.set_defaults(func=cmd_demo)

    for name, text in (("server", "collector + jobs + API in one process (single-node install)"),
                       ("collector", "MQTT ingest and storage housekeeping only"),
                       ("api", "the HTTP API and console only")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", type=Path, help="server TOML file (see deploy/server.toml)")
        if name != "collector":
            p.add_argument("--port", type=int, help="HTTP port (default from config: 8080)")
            p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
        p.set_defaults(func=cmd_server)

    p = sub.add_parser("agent", help="the site agent (or: fleetcare agent discover --range CIDR)")
    p.add_argument("--config", type=Path, help="agent TOML file (see deploy/agent.toml)")
    p.set_defaults(func=cmd_agent)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    d = actions.add_parser("discover", help="find SNMP devices in an address range; print config blocks")
    from agent.snmp.discover import add_arguments
    add_arguments(d)

    p = sub.add_parser("enrol", help="register an agent and print its diagnostics secret")
    p.add_argument("--config", type=Path, help="server TOML file")
    p.add_argument("--customer", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--rotate", action="store_true", help="replace an existing secret")
    p.set_defaults(func=cmd_enrol)

    p = sub.add_parser("detect", help="anomaly scores and alarms for a CSV of timestamp,value (NAB format)")
    p.add_argument("--input", type=Path, nargs="+", required=True, metavar="FILE.csv",
                   help="one or more CSV files with the header timestamp,value")
    p.add_argument("--output", type=Path, nargs="+", required=True, metavar="OUT.csv",
                   help="as many files, written as timestamp,value,anomaly_score,alarm")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("simulate", help="a simulated fleet with injected faults, faster than real time, "
                       "published through the broker; writes the ground truth")
    p.add_argument("--devices", type=int, default=12, help="number of devices (12)")
    p.add_argument("--days", type=float, default=7.0, help="simulated days (7)")
    p.add_argument("--speed", type=float, default=3600.0, help="simulated seconds per real second (3600)")
    p.add_argument("--as-fast-as-possible", action="store_true", help="no pacing at all")
    p.add_argument("--seed", type=int, default=1, help="same seed, same fleet, faults and readings (1)")
    p.add_argument("--truth", type=Path, metavar="FILE.json", help="write the ground truth here")
    p.add_argument("--interval", type=float, default=60.0, help="simulated seconds between samples (60)")
    p.add_argument("--history-interval", type=float, default=0.0,
                   help="seconds between samples of the history (before now); default: --interval")
    p.add_argument("--repair-h", type=float, default=0.0,
                   help="repair each fault this many hours after it becomes visible; negative: before (default: never)")
    p.add_argument("--customers", type=int, default=0, help="number of customers (default: one per 12 devices)")
    p.add_argument("--sites", type=int, default=0, help="sites per customer (default: one per 4 devices)")
    p.add_argument("--start", type=float, help="simulated start, epoch seconds (default: now minus --days)")
    p.add_argument("--fault-rate", type=float, default=0.3, help="share of devices given a fault (0.3)")
    p.add_argument("--customer-names", metavar="A,B", help="customer keys, comma-separated (default cust-01, …)")
    p.add_argument("--follow", action="store_true",
                   help="after the history (--days up to now, at once), go on live in real time until stopped")
    p.add_argument("--mqtt-url", help="broker URL (default: FLEETCARE_MQTT_URL or mqtt://127.0.0.1:1883)")
    p.add_argument("--topic-prefix", default="fleetcare", help="MQTT topic prefix (fleetcare)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("report", help="a customer's monthly health report (HTML or PDF, English or Chinese)")
    p.add_argument("--customer", required=True, help="customer key or id")
    p.add_argument("--period", required=True, help="the month, YYYY-MM")
    p.add_argument("--format", choices=("html", "pdf"), default="html")
    p.add_argument("--lang", choices=("en", "zh-CN"), default="en")
    p.add_argument("--output", type=Path, help="file to write (default: standard output)")
    p.add_argument("--config", type=Path, help="server TOML file")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("user", help="add, list or disable users (the first admin, scripts)")
    p.add_argument("--config", type=Path, help="server TOML file")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = users.add_parser("add", help="add a user")
    a.add_argument("--username", required=True)
    a.add_argument("--password", required=True, help="at least 10 characters")
    a.add_argument("--role", required=True, choices=("admin", "engineer", "customer"))
    a.add_argument("--customer", help="the customer (key) a customer user belongs to")
    a.add_argument("--customers", help="an engineer's assigned customers (keys, comma-separated); default all")
    d = users.add_parser("disable", help="disable a user and revoke their sessions and tokens")
    d.add_argument("--username", required=True)
    users.add_parser("list", help="list users")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--config", type=Path, help="server TOML file")
    p.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
