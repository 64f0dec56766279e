"""SNMP polling cost: a simulated fleet served by snmpsim, polled by fleetcare's SNMP poller.

    python bench/snmp_poll.py [--devices 1000] [--interval 30] [--duration 95]

Each simulated device is a switch with two interfaces (about 30 OIDs per poll with the if-mib
profile: sysUpTime plus 15 ifTable/ifXTable columns × 2 rows). snmpsim serves them all on one
port (community = device name). The poller runs in this process; its CPU time is measured with
the process clock, and every poll is checked against its schedule. The last line is
    devices=<int> oids_per_s=<float> cpu_s_per_1000_oids=<float> on_schedule_pct=<float>
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import SnmpSection, SnmpTarget  # noqa: E402
from agent.snmp.poller import SnmpPoller  # noqa: E402


def recording() -> str:
    """A small switch: system group, ifTable and ifXTable for two ports."""
    rows = ["1.3.6.1.2.1.1.1.0|4|Simulated switch, fleetcare bench",
            "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10",
            "1.3.6.1.2.1.1.3.0|67|123456",
            "1.3.6.1.2.1.1.5.0|4|bench-switch",
            "1.3.6.1.2.1.1.6.0|4|rack 1"]
    columns = {1: (2, "{i}"), 2: (4, "eth{i}"), 3: (2, "6"), 5: (66, "1000000000"), 7: (2, "1"), 8: (2, "1"),
               10: (65, "{c}"), 13: (65, "0"), 14: (65, "3"), 16: (65, "{c}"), 19: (65, "0"), 20: (65, "1")}
    for col, (tag, value) in sorted(columns.items()):
        for i in (1, 2):
            rows.append(f"1.3.6.1.2.1.2.2.1.{col}.{i}|{tag}|{value.format(i=i, c=1000 * i)}")
    xcolumns = {1: (4, "eth{i}"), 6: (70, "{c}"), 10: (70, "{c}"), 15: (66, "1000")}
    for col, (tag, value) in sorted(xcolumns.items()):
        for i in (1, 2):
            rows.append(f"1.3.6.1.2.1.31.1.1.1.{col}.{i}|{tag}|{value.format(i=i, c=5000 * i)}")
    return "\n".join(rows) + "\n"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NullSink:
    def __init__(self) -> None:
        self.samples = 0
        self.lock = threading.Lock()

    def emit_points(self, points):  # noqa: ANN001
        with self.lock:
            self.samples += sum(len(p.metrics) for p in points)

    def emit_events(self, events):  # noqa: ANN001
        pass

    def devices_changed(self) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=95.0, help="seconds of measured polling")
    ap.add_argument("--responders", type=int, default=2, help="snmpsim processes (ports) to spread load")
    ap.add_argument("--concurrency", type=int, default=200, help="devices polled at the same time (snmp.concurrency)")
    args = ap.parse_args()

    responder = shutil.which("snmpsim-command-responder") or str(Path(sys.executable).parent / "snmpsim-command-responder")
    if not os.path.exists(responder):
        print("snmpsim is not installed: pip install snmpsim pysmi", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="fleetcare-snmpbench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for r in range(args.responders):
            data = tmp / f"data{r}"
            data.mkdir()
            (data / "switch.snmprec").write_text(recording())  # copied, not linked: snmpsim names a
            # device after the real file, so links would all answer to one community
            for n in range(r, args.devices, args.responders):
                shutil.copyfile(data / "switch.snmprec", data / f"dev{n:05d}.snmprec")
            port = free_udp_port()
            ports.append(port)
            log = open(tmp / f"snmpsim{r}.log", "wb")
            procs.append(subprocess.Popen(
                [responder, f"--data-dir={data}", f"--agent-udpv4-endpoint=127.0.0.1:{port}",
                 f"--cache-dir={tmp / f'cache{r}'}"],
                env=dict(os.environ, SNMPSIM_ALLOW_ROOT="true"), stdout=log, stderr=subprocess.STDOUT))
        time.sleep(3 + args.devices / 400)  # snmpsim indexes its data files at start

        targets = [SnmpTarget(name=f"dev{n:05d}", host="127.0.0.1", port=ports[n % args.responders],
                              community=f"dev{n:05d}", interval=args.interval, profile="if-mib",
                              timeout=5.0, retries=1)
                   for n in range(args.devices)]
        poller = SnmpPoller(SnmpSection(targets=targets, concurrency=args.concurrency))
        sink = NullSink()
        print(f"{args.devices} devices on {args.responders} snmpsim responder(s), every {args.interval:.0f} s, "
              f"measuring {args.duration:.0f} s after one warm-up round", flush=True)
        poller.start(sink)
        time.sleep(args.interval + 2)  # warm-up: identification and first counter readings
        status = poller.status()
        polls0 = sum(s["polls"] for s in status.values())
        late0 = sum(s["late"] for s in status.values())
        varbinds0 = sum(d.session.varbinds for d in poller._devices.values())
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(args.duration)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        status = poller.status()
        varbinds = sum(d.session.varbinds for d in poller._devices.values()) - varbinds0
        polls = sum(s["polls"] for s in status.values()) - polls0
        late = sum(s["late"] for s in status.values()) - late0
        states: dict[str, int] = {}
        for s in status.values():
            states[s["state"]] = states.get(s["state"], 0) + 1
        poller.stop()
        expected = args.devices * int(args.duration // args.interval)
        on_schedule = 100.0 * min(polls - late, expected) / expected if expected else 0.0
        oids_per_s = varbinds / wall
        cpu_per_1000 = cpu / (varbinds / 1000) if varbinds else float("inf")
        print(f"polls {polls} (expected ≥ {expected}), late {late}, varbinds {varbinds}, samples {sink.samples}; "
              f"CPU {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.1f} % of a core; states {states}")
        print(f"devices={args.devices} oids_per_s={oids_per_s:.1f} cpu_s_per_1000_oids={cpu_per_1000:.4f} "
              f"on_schedule_pct={on_schedule:.1f}")
        return 0
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
