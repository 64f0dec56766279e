"""Agent footprint: RSS, CPU and spool writes of a real `fleetcare agent` watching 50 SNMP devices.

    python bench/agent_footprint.py [--duration 300] [--warmup 65] [--devices 50]

An snmpsim responder serves the simulated switches of bench/snmp_poll.py (one copied recording
per device; community = device name). A private Mosquitto carries the messages (without the
binary: FLEETCARE_MQTT_URL if set, else the in-process amqtt broker). The agent runs as a
subprocess (`python -m fleetcare.cli agent --config …`) with the host probe every 10 s, the 50
targets every 60 s (profile if-mib) and the disk spool in a temporary data_dir. After --warmup
(one full SNMP round) the agent process is sampled with psutil every second for --duration:
RSS (max and mean), CPU time (user + system) as a share of one core, and bytes written to
storage (io_counters().write_bytes; the spool is the agent's only writer: its log goes to a
pipe). A subscriber in this script counts what reached the broker during the window, to show
the agent really worked. Targets (issue): under 60 MB RSS and under 2 % of one core.
The last line is
    rss_mb=<float> cpu_pct=<float> spool_write_kb_s=<float>
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import paho.mqtt.client as paho  # noqa: E402
import psutil  # noqa: E402
from snmp_poll import free_udp_port, recording  # noqa: E402

from fleetcare.embedded import InProcessAmqtt, PrivateMosquitto  # noqa: E402

MiB = 2**20


def agent_toml(*, mqtt_url: str, prefix: str, data_dir: Path, snmp_port: int, devices: int,
               host_interval: float, snmp_interval: float) -> str:
    lines = ["[agent]", 'id = "footprint"', 'customer = "bench"', 'site = "lab"',
             f"interval = {host_interval}", f"data_dir = {json.dumps(str(data_dir))}", "",
             "[mqtt]", f"url = {json.dumps(mqtt_url)}", f"topic_prefix = {json.dumps(prefix)}", "",
             "[host]", "enabled = true", "",
             "[spool]", "disk = true", f"path = {json.dumps(str(data_dir / 'spool.sqlite'))}", ""]
    for n in range(devices):
        lines += ["[[snmp.targets]]", f'name = "dev{n:05d}"', 'host = "127.0.0.1"', f"port = {snmp_port}",
                  f'community = "dev{n:05d}"', f"interval = {snmp_interval}", 'profile = "if-mib"',
                  "timeout = 5.0", "retries = 1", ""]
    return "\n".join(lines)


class Counter:
    """Subscribes to <prefix>/v1/# and counts messages by kind and telemetry points/samples."""

    def __init__(self, url: str, prefix: str) -> None:
        from urllib.parse import urlsplit
        u = urlsplit(url)
        self.lock = threading.Lock()
        self.c: collections.Counter[str] = collections.Counter()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"footprint-counter-{os.getpid()}",
                                  protocol=paho.MQTTv311)
        if u.username:
            self.client.username_pw_set(u.username, u.password)
        if u.scheme == "mqtts":
            self.client.tls_set()
        topic = f"{prefix}/v1/#"
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883), keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        kind = msg.topic.rsplit("/", 1)[-1]
        counts: collections.Counter[str] = collections.Counter({f"msg_{kind}": 1})
        if kind == "telemetry":
            try:
                body = json.loads(msg.payload)
            except ValueError:
                counts["bad_payload"] += 1
            else:
                for p in body.get("points", []):
                    which = "host" if p.get("device") == "host" else "snmp"
                    counts[f"{which}_points"] += 1
                    counts[f"{which}_samples"] += len(p.get("metrics", {}))
        with self.lock:
            self.c.update(counts)

    def snapshot(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.c)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Written:
    """Bytes the agent process has written to storage: psutil, else /proc/PID/io, else the spool
    files' sizes (a poor lower bound: the WAL is reused after each checkpoint)."""

    def __init__(self, proc: psutil.Process, spool: Path) -> None:
        self.proc, self.spool = proc, spool
        self.source = "psutil io_counters().write_bytes"
        try:
            proc.io_counters()
        except (AttributeError, psutil.AccessDenied, NotImplementedError):
            self.source = f"/proc/{proc.pid}/io write_bytes"
            try:
                self._proc_io()
            except OSError:
                self.source = "spool file sizes (sqlite + -wal + -shm)"

    def _proc_io(self) -> int:
        with open(f"/proc/{self.proc.pid}/io") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["write_bytes"])

    def read(self) -> tuple[int, int | None]:
        """(written bytes, all write() bytes incl. sockets and pipes, or None)."""
        if self.source.startswith("psutil"):
            io = self.proc.io_counters()
            return io.write_bytes, getattr(io, "write_chars", None)
        if self.source.startswith("/proc"):
            return self._proc_io(), None
        return sum(p.stat().st_size for p in self.spool.parent.glob(self.spool.name + "*") if p.exists()), None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="measured seconds (default 300: five minutes)")
    ap.add_argument("--warmup", type=float, default=65.0, help="seconds before measuring (one SNMP round)")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--host-interval", type=float, default=10.0)
    ap.add_argument("--snmp-interval", type=float, default=60.0)
    args = ap.parse_args()

    responder = shutil.which("snmpsim-command-responder") or str(Path(sys.executable).parent / "snmpsim-command-responder")
    if args.devices and not os.path.exists(responder):
        print("snmpsim is not installed: pip install snmpsim pysmi", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="fleetcare-footprint-"))
    snmpsim: subprocess.Popen[bytes] | None = None
    broker: PrivateMosquitto | InProcessAmqtt | None = None
    counter: Counter | None = None
    agent: subprocess.Popen[bytes] | None = None
    agent_log: collections.deque[str] = collections.deque(maxlen=200)
    try:
        # ------------------------------------------------------------ SNMP devices
        snmp_port = free_udp_port()
        if args.devices:
            data = tmp / "snmprec"
            data.mkdir()
            (data / "switch.snmprec").write_text(recording())
            for n in range(args.devices):  # copies: snmpsim names a device after the real file
                shutil.copyfile(data / "switch.snmprec", data / f"dev{n:05d}.snmprec")
            (data / "switch.snmprec").unlink()
            snmpsim = subprocess.Popen(
                [responder, f"--data-dir={data}", f"--agent-udpv4-endpoint=127.0.0.1:{snmp_port}",
                 f"--cache-dir={tmp / 'snmpsim-cache'}"],
                env=dict(os.environ, SNMPSIM_ALLOW_ROOT="true"), stdout=open(tmp / "snmpsim.log", "wb"),
                stderr=subprocess.STDOUT, start_new_session=True)

        # ------------------------------------------------------------ broker
        binary = PrivateMosquitto.available()
        if binary:
            broker = PrivateMosquitto(tmp / "mosquitto", binary=binary)
            url = broker.start()
        elif os.environ.get("FLEETCARE_MQTT_URL"):
            url = os.environ["FLEETCARE_MQTT_URL"]
            print(f"mosquitto is not installed: using FLEETCARE_MQTT_URL {url}", flush=True)
        else:
            broker = InProcessAmqtt()
            url = broker.start()
            print("mosquitto is not installed: using the in-process amqtt broker (in this process, "
                  "not the agent's)", flush=True)
        prefix = f"footprint{os.getpid()}"
        counter = Counter(url, prefix)
        if not counter.subscribed.wait(10):
            raise RuntimeError(f"could not subscribe to {url}")
        if snmpsim is not None:
            time.sleep(max(0.0, 3 + args.devices / 400 - 1))  # snmpsim indexes its data files at start
            if snmpsim.poll() is not None:
                raise RuntimeError(f"snmpsim exited ({snmpsim.returncode}); see {tmp / 'snmpsim.log'}")

        # ------------------------------------------------------------ the agent
        data_dir = tmp / "agent"
        config = tmp / "agent.toml"
        config.write_text(agent_toml(mqtt_url=url, prefix=prefix, data_dir=data_dir, snmp_port=snmp_port,
                                     devices=args.devices, host_interval=args.host_interval,
                                     snmp_interval=args.snmp_interval))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCARE_")}  # the file rules
        agent = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", "agent", "--config", str(config)],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def read_log() -> None:
            assert agent is not None and agent.stdout is not None
            for line in agent.stdout:
                agent_log.append(line.decode(errors="replace").rstrip())

        threading.Thread(target=read_log, name="agent-log", daemon=True).start()
        proc = psutil.Process(agent.pid)
        written = Written(proc, data_dir / "spool.sqlite")
        print(f"agent pid {agent.pid}: host probe every {args.host_interval:.0f} s, {args.devices} SNMP "
              f"targets every {args.snmp_interval:.0f} s (if-mib), disk spool; broker {url} "
              f"({broker.kind if broker else 'external'}); warm-up {args.warmup:.0f} s, "
              f"measuring {args.duration:.0f} s", flush=True)

        def alive() -> None:
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}:\n" + "\n".join(list(agent_log)[-30:]))

        warm_rss: list[int] = []
        t_end = time.monotonic() + args.warmup
        while time.monotonic() < t_end:
            alive()
            warm_rss.append(proc.memory_info().rss)
            time.sleep(1.0)
        alive()

        # ------------------------------------------------------------ measured window
        msgs0 = counter.snapshot()
        cpu0 = proc.cpu_times()
        w0, wc0 = written.read()
        wall0 = time.monotonic()
        rss: list[int] = []
        uss_last = None
        next_at = wall0
        while True:
            alive()
            mem = proc.memory_info()
            rss.append(mem.rss)
            next_at += 1.0
            if next_at - wall0 > args.duration:
                break
            time.sleep(max(0.0, next_at - time.monotonic()))
        wall = time.monotonic() - wall0
        cpu1 = proc.cpu_times()
        w1, wc1 = written.read()
        try:
            full = proc.memory_full_info()
            uss_last = full.uss
        except (psutil.AccessDenied, AttributeError):
            pass
        threads = proc.num_threads()
        msgs = counter.snapshot()
        msgs.subtract(msgs0)
        spool_files = {p.name: p.stat().st_size for p in sorted(data_dir.glob("spool.sqlite*"))}
        load1 = os.getloadavg()

        cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        cpu_pct = 100.0 * cpu_s / wall
        rss_max, rss_mean = max(rss) / MiB, sum(rss) / len(rss) / MiB
        write_kb_s = (w1 - w0) / 1024 / wall

        # ------------------------------------------------------------ report
        print(f"RSS over {len(rss)} samples: max {rss_max:.1f} MiB, mean {rss_mean:.1f} MiB, "
              f"min {min(rss) / MiB:.1f} MiB (warm-up max {max(warm_rss, default=0) / MiB:.1f} MiB)"
              + (f"; USS at end {uss_last / MiB:.1f} MiB" if uss_last else "") + f"; {threads} threads")
        print(f"CPU: {cpu_s:.2f} s (user {cpu1.user - cpu0.user:.2f}, system {cpu1.system - cpu0.system:.2f}) "
              f"over {wall:.1f} s = {cpu_pct:.2f} % of one core")
        print(f"writes ({written.source}): {(w1 - w0) / 1024:.1f} KiB = {write_kb_s:.2f} KiB/s"
              + (f"; all write() calls incl. sockets and the log pipe: {(wc1 - wc0) / 1024 / wall:.2f} KiB/s"
                 if wc0 is not None and wc1 is not None else "")
              + f"; spool files at end: {spool_files}")
        exp_host = args.duration / args.host_interval
        exp_snmp = args.devices * args.duration / args.snmp_interval
        print(f"broker received in the window: {msgs['msg_telemetry']} telemetry messages "
              f"({msgs['host_points']} host points / {msgs['host_samples']} samples, expected ~{exp_host:.0f} points; "
              f"{msgs['snmp_points']} SNMP points / {msgs['snmp_samples']} samples, expected ~{exp_snmp:.0f} points), "
              f"{msgs['msg_status']} status, {msgs['msg_birth']} birth, {msgs['msg_events']} events")
        print(f"machine: {psutil.cpu_count()} CPUs, load average {load0[0]:.2f} at start, "
              f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} (1/5/15 min) at end; "
              f"targets: RSS < 60 MB ({rss_max:.1f} MiB = {rss_max * MiB / 1e6:.1f} MB: "
              f"{'met' if rss_max * MiB < 60e6 else 'NOT met'}), "
              f"CPU < 2 % ({'met' if cpu_pct < 2.0 else 'NOT met'})")
        print(f"rss_mb={rss_max:.1f} cpu_pct={cpu_pct:.2f} spool_write_kb_s={write_kb_s:.2f}", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"agent_footprint: {exc}", file=sys.stderr)
        return 1
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        if counter is not None:
            counter.stop()
        if broker is not None:
            broker.stop()
        if snmpsim is not None and snmpsim.poll() is None:
            snmpsim.terminate()
            try:
                snmpsim.wait(10)
            except subprocess.TimeoutExpired:
                snmpsim.kill()
                snmpsim.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
