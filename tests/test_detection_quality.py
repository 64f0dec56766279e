"""The detectors against the simulator's ground truth: every fault found before the customer would
notice, nothing raised by benign behaviour (daily cycles, backups, spikes, firmware reboots).

Pure: the engine is fed the simulated series directly (the pipeline is tested elsewhere)."""

from __future__ import annotations

import pytest

from alerting.engine import DetectionEngine, DeviceContext, Finding
from alerting.event_rules import load_event_rules
from alerting.policies import load_policies
from fleetcare import simulate as sim

INTERVAL = 300.0


@pytest.fixture(scope="module")
def run() -> tuple[sim.Plan, list[tuple[str, Finding]]]:
    p = sim.plan(sim.Params(devices=12, days=6, seed=3, interval=INTERVAL, start=1.7e9, fault_rate=0.7))
    engine = DetectionEngine(load_policies(), load_event_rules())
    ids: dict[str, int] = {}
    agents: dict[str, int] = {}
    for i, d in enumerate(p.devices):
        agent = agents.setdefault(d.agent, len(agents) + 1)
        ids[d.device] = i + 1
        engine.add_device(DeviceContext(i + 1, agent, d.device, d.device, d.kind, d.customer, d.site, INTERVAL))
    names = {v: k for k, v in ids.items()}
    found: list[Finding] = []
    last = None
    for ts, dev, metrics in sim.generate(p):
        if last is not None and ts != last:
            for agent in agents.values():
                found += engine.silence_check(agent)
        last = ts
        found += engine.samples(ids[dev.device], [(ts, k, v) for k, v in metrics.items()])
    return p, [(names[f.device_id], f) for f in found]


def raised(findings, device: str) -> list[Finding]:
    return [f for d, f in findings if d == device and f.alarm.state == "raised" and f.alarm.detector != "reboot"]


def test_every_fault_is_found_before_the_customer_notices(run) -> None:
    p, findings = run
    assert len({f.kind for f in p.faults}) >= 6
    for fault in p.faults:
        alarms = [f for f in raised(findings, fault.device["device"]) if f.alarm.ts >= fault.onset]
        assert alarms, f"{fault.kind} on {fault.device['device']} raised nothing"
        first = min(f.alarm.ts for f in alarms)
        if fault.visible - fault.onset > 3600:
            assert first < fault.visible, f"{fault.kind}: first alarm after the customer-visible moment"
        else:  # noticed at once (a silent device, a flapping port): found within two hours
            assert first - fault.onset < 2 * 3600, f"{fault.kind}: found {(first - fault.onset) / 3600:.1f} h late"


def test_benign_behaviour_raises_nothing(run) -> None:
    p, findings = run
    faulty = {f.device["device"]: f.onset for f in p.faults}
    maintenance = {(b.device["device"]) for b in p.benign if b.kind == "maintenance"}
    false = []
    for device, f in findings:
        if f.alarm.state != "raised" or f.alarm.detector == "reboot":
            continue
        if device in faulty and f.alarm.ts >= faulty[device]:
            continue
        if device in maintenance and f.alarm.detector == "silence":
            continue  # planned work: maintenance windows suppress the case, the alarm is true
        false.append((device, f.alarm.text))
    assert not false


def test_firmware_reboots_are_seen_as_reboots(run) -> None:
    p, findings = run
    for b in p.benign:
        if b.kind == "firmware_reboot":
            reboots = [f for d, f in findings if d == b.device["device"] and f.alarm.detector == "reboot"]
            assert reboots and reboots[0].instant and abs(reboots[0].alarm.ts - b.end) <= 2 * INTERVAL
