"""`fleetcare simulate`: deterministic series, faults that show, benign episodes that stay benign, and a
run through the real broker and collector that stores exactly what was generated."""

from __future__ import annotations

import json
import operator
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from tests.api_support import api_client

from agent.wire import metric_base
from fleetcare import simulate as sim
from tests.conftest import wait_until

START = 1_700_000_000.0 - (1_700_000_000.0 % sim.DAY)  # a midnight, UTC
OPS = {">=": operator.ge, "<=": operator.le}


def _series(params: sim.Params):
    p = sim.plan(params)
    by_device: dict[str, list[tuple[float, dict[str, float]]]] = defaultdict(list)
    for ts, dev, metrics in sim.generate(p):
        by_device[dev.device].append((ts, metrics))
    return p, by_device


@pytest.fixture(scope="module")
def fleet():
    return _series(sim.Params(devices=24, days=3, seed=7, start=START, fault_rate=0.5))


def _values(samples, base: str, key_filter=lambda k: True):
    return [(ts, v) for ts, m in samples for k, v in m.items() if metric_base(k) == base and key_filter(k)]


def test_same_seed_same_everything_other_seed_differs():
    params = sim.Params(devices=6, days=1, seed=3, start=START, fault_rate=0.5)
    a = list(sim.generate(sim.plan(params)))
    b = list(sim.generate(sim.plan(params)))
    assert [(ts, d.device, m) for ts, d, m in a] == [(ts, d.device, m) for ts, d, m in b]
    assert sim.plan(params).truth() == sim.plan(params).truth()
    other = list(sim.generate(sim.plan(sim.Params(devices=6, days=1, seed=4, start=START, fault_rate=0.5))))
    assert [m for _, _, m in a] != [m for _, _, m in other]
    times = [ts for ts, _, _ in a]
    assert times == sorted(times)


def test_every_fault_kind_is_injected_and_shows(fleet):
    p, series = fleet
    assert {f.kind for f in p.faults} == set(sim.FAULT_KINDS)
    for f in p.faults:
        samples = series[f.device["device"]]
        after = [(ts, m) for ts, m in samples if ts >= f.onset]
        assert f.onset <= f.visible <= f.end
        if f.kind == "device_silent":
            assert samples and not after, "a silent device reports nothing after onset"
            continue
        assert after
        before = [(ts, m) for ts, m in samples if ts < f.onset]
        if f.kind in sim.FAULT_LEVELS:
            metric, op, level = sim.FAULT_LEVELS[f.kind]
            port = f.detail.get("port")
            pick = (lambda k: f"if={port}" in k) if port else (lambda k: True)
            crossed = [ts for ts, v in _values(after, metric, pick) if OPS[op](v, level)]
            assert crossed, f"{f.kind} on {f.device['device']} never reaches {metric} {op} {level}"
            assert min(crossed) <= f.visible + p.params.interval, f"{f.kind}: level reached late"
            assert not [v for _, v in _values(before, metric, pick) if OPS[op](v, level)]
        if f.kind == "disk_filling":
            assert max(v for _, v in _values(after, "disk_used_percent")) == 100.0
        if f.kind == "battery_ageing":
            early = [v for _, v in _values(before, "battery_runtime_seconds")]
            late = [v for ts, v in _values(after, "battery_runtime_seconds") if ts >= f.visible]
            assert max(late) < min(early)
        if f.kind == "fan_failure":
            stopped = [v for ts, v in _values(after, "fan_rpm") if ts >= f.detail["fan_stops_by"]]
            assert stopped and max(stopped) == 0.0
        if f.kind == "link_flapping":
            states = [v for _, v in _values(after, "if_oper_up", lambda k: f.detail["port"] in k)]
            changes = sum(1 for a, b in zip(states, states[1:]) if a != b)
            assert 0.0 in states and changes >= 4
            assert all(v == 1.0 for _, v in _values(before, "if_oper_up"))


def test_benign_episodes_stay_short_of_every_fault_level(fleet):
    p, series = fleet
    kinds = {e.kind for e in p.benign}
    assert kinds == set(sim.BENIGN_KINDS)
    faulty = {f.device["device"] for f in p.faults}
    healthy = [d for d in p.devices if d.device not in faulty]
    assert healthy
    for dev in healthy:
        for metric, op, level in sim.FAULT_LEVELS.values():
            values = [v for _, v in _values(series[dev.device], metric)]
            assert not [v for v in values if OPS[op](v, level)], f"{dev.device} crosses {metric} {op} {level}"
        ports = _values(series[dev.device], "if_oper_up")
        assert all(v == 1.0 for _, v in ports)
    for e in p.benign:
        samples = series[e.device["device"]]
        during = [m for ts, m in samples if e.onset <= ts < e.end]
        if e.kind == "nightly_backup":
            assert during and min(m["disk_write_bps"] for m in during) > 1e8
        elif e.kind == "single_spike":
            assert len(during) == 1 and during[0][e.detail["metric"]] >= 95
        elif e.kind in ("maintenance", "firmware_reboot"):
            assert not during, "no answer while down"
            later = [m["uptime_seconds"] for ts, m in samples if ts >= e.end]
            assert later and later[0] < 3 * p.params.interval, "uptime starts again after the reboot"


def test_truth_lists_faults_and_benign_with_device_keys(fleet, tmp_path: Path):
    p, _ = fleet
    path = tmp_path / "truth.json"
    sim.write_truth(p, path)
    truth = json.loads(path.read_text())
    assert truth["parameters"]["seed"] == 7 and truth["parameters"]["devices"] == 24
    assert len(truth["faults"]) == len(p.faults) and len(truth["benign"]) == len(p.benign)
    for f in truth["faults"]:
        assert set(f["device"]) == {"customer", "site", "agent", "device"}
        assert f["onset"] <= f["visible"] <= f["end"]
    assert all("visible" not in b for b in truth["benign"])


def test_end_to_end_through_broker_and_collector(broker, prefix, run_collector, db_url, tmp_path: Path, capsys):
    """`fleetcare simulate` for 3 devices x 1 day, as fast as possible: every generated sample is stored."""
    import time

    from fleetcare.cli import main
    start = int(time.time() - sim.DAY)
    params = sim.Params(devices=3, days=1, seed=11, start=float(start), fault_rate=0.34)
    p = sim.plan(params)
    expected = sum(len(m) for _, _, m in sim.generate(p))
    run_collector()
    truth = tmp_path / "truth.json"
    rc = main(["simulate", "--devices", "3", "--days", "1", "--seed", "11", "--fault-rate", "0.34",
               "--start", str(start), "--as-fast-as-possible", "--truth", str(truth),
               "--mqtt-url", broker.url, "--topic-prefix", prefix])
    assert rc == 0
    assert f"{expected} samples" in capsys.readouterr().out

    def stored() -> int:
        with psycopg.connect(db_url) as conn:
            return conn.execute("SELECT count(*) FROM samples").fetchone()[0]

    wait_until(lambda: stored() >= expected, timeout=60, message=f"{expected} samples stored")
    time.sleep(0.5)
    assert stored() == expected
    data = json.loads(truth.read_text())
    assert data["counts"]["samples"] == expected
    assert data["faults"] == p.truth()["faults"] and data["benign"] == p.truth()["benign"]
    assert len(p.faults) == 1 and any(e.kind == "maintenance" for e in p.benign)
    with psycopg.connect(db_url) as conn:
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
    assert devices == 3
    reboots = [e for e in p.benign if e.kind in ("maintenance", "firmware_reboot")]
    assert data["counts"]["events"] == len(reboots)

    def reboot_events() -> int:
        with psycopg.connect(db_url) as conn:
            return conn.execute("SELECT count(*) FROM device_events WHERE kind = 'reboot'").fetchone()[0]

    wait_until(lambda: reboot_events() == len(reboots), timeout=20, message="the reboot events stored")


def test_speed_paces_simulated_time(broker, prefix):
    """--speed X: X simulated seconds per real second (here 20 simulated minutes in about half a second)."""
    import time
    p = sim.plan(sim.Params(devices=2, days=1200 / sim.DAY, seed=2, start=float(int(time.time() - 3600))))
    began = time.monotonic()
    counts = sim.publish(p, broker.url, prefix, speed=2400.0)
    took = time.monotonic() - began
    assert counts["points"] == sum(1 for _ in sim.generate(p)) > 0
    assert 0.45 <= took < 10


def test_alarms_on_the_simulated_fleet_through_the_pipeline_and_api(broker, prefix, server_config, db_url):
    """simulate → broker → collector → detection worker → alarms, health and cases through the API."""
    import threading
    import time

    from alerting.cases import CaseManager
    from alerting.worker import DetectionWorker
    from collector.ingest import Collector

    p = sim.plan(sim.Params(devices=6, days=3, seed=3, interval=300.0, start=float(int(time.time() - 3 * sim.DAY)),
                            fault_rate=0.5))
    expected = sum(len(m) for _, _, m in sim.generate(p))
    worker = DetectionWorker(db_url, cases=CaseManager())
    stop = threading.Event()
    col = Collector(server_config, protocol=broker.protocol, listeners=[worker.submit])
    threads = [threading.Thread(target=t, args=(stop,), daemon=True) for t in (worker.run, col.run)]
    for t in threads:
        t.start()
    try:
        assert col.ready.wait(10)
        time.sleep(0.3)
        sim.publish(p, broker.url, prefix)
        wait_until(lambda: col.stats.samples_stored >= expected, timeout=90, message="every sample stored")
        wait_until(lambda: worker.idle.is_set() and worker.inbox.empty(), timeout=60, message="detection done")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    with api_client(db_url) as client:
        devices = {d["key"]: d for d in client.get("/api/v1/devices").json()["items"]}
        slow = [f for f in p.faults if f.visible - f.onset > 3600]
        assert slow
        for fault in slow:
            dev = devices[fault.device["device"]]
            body = client.get("/api/v1/alarms", params={"device_id": dev["id"], "start": fault.onset,
                                                         "end": fault.visible}).json()
            found = [a for a in body["items"] if a["detector"] != "reboot"
                     and fault.onset <= datetime_epoch(a["opened_at"]) < fault.visible]
            assert found, f"{fault.kind} on {dev['key']}: no alarm before it became visible"
            alarm = client.get(f"/api/v1/alarms/{found[-1]['id']}").json()
            assert alarm["history"][0]["change"] == "raised" and alarm["text"]
            assert alarm["received_at"] and alarm["decided_at"]
            health = client.get(f"/api/v1/devices/{dev['id']}/health").json()
            assert health["history"] and min(h["score"] for h in health["history"]) < 100
            # the fault opened one case before the customer would have noticed, with its evidence
            cases = client.get("/api/v1/cases", params={"device_id": dev["id"]}).json()["items"]
            assert len(cases) == 1, (fault.kind, cases)
            assert datetime_epoch(cases[0]["opened_at"]) < fault.visible
            case = client.get(f"/api/v1/cases/{cases[0]['id']}").json()
            assert case["alarms"] and case["evidence"]["alarm"]["text"] and case["source"] == "monitoring"
        # maintenance silences a device for real: without a window registered (tests/test_cases.py
        # has them) that is a true reachability case, so those devices are left out here
        healthy = ({d.device for d in p.devices} - {f.device["device"] for f in p.faults}
                   - {b.device["device"] for b in p.benign if b.kind == "maintenance"})
        assert healthy
        for key in healthy:
            opened = client.get("/api/v1/cases", params={"device_id": devices[key]["id"]}).json()["items"]
            assert not [c for c in opened if datetime_epoch(c["opened_at"]) < p.params.end - p.params.interval], \
                f"benign behaviour of {key} opened a case: {opened}"
        # time filter: nothing opened before the simulation began
        early = client.get("/api/v1/alarms", params={"end": p.params.start - 1}).json()
        assert early["total"] == 0
        assert client.get("/api/v1/alarms", params={"state": "bogus"}).status_code == 422


def datetime_epoch(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
