"""The agent loop without a network: chunking, collect() into the spool, and the bounded spool."""

from __future__ import annotations

import logging

import pytest

from agent import wire
from agent.config import AgentConfig
from agent.runner import MAX_SAMPLES_PER_MESSAGE, Agent, chunk
from agent.spool import Entry, MemorySpool
from agent.wire import DeviceInfo, MetricInfo, Point

NOW = 1_700_000_000.0


def flatten(points: list[Point]) -> list[tuple[str, float, str, float]]:
    return [(p.device, p.ts, key, value) for p in points for key, value in p.metrics.items()]


def point(device: str, ts: float, n: int, start: int = 0) -> Point:
    return Point(device, ts, {f"m{i}": float(i) for i in range(start, start + n)})


# ---------------------------------------------------------------- chunk

@pytest.mark.parametrize("sizes, limit", [
    ([3, 3, 3], 5),
    ([5, 5], 5),
    ([1] * 12, 5),
    ([12], 5),           # one point larger than the limit
    ([4, 12, 1, 9], 5),
    ([2000, 10, 999], MAX_SAMPLES_PER_MESSAGE),
    ([7], 1),
])
def test_chunk_respects_the_limit_and_keeps_every_sample(sizes: list[int], limit: int) -> None:
    points = [point(f"dev-{i}", NOW + i, n) for i, n in enumerate(sizes)]

    groups = chunk(points, limit)

    assert all(0 < sum(len(p.metrics) for p in g) <= limit for g in groups)
    assert flatten([p for g in groups for p in g]) == flatten(points)  # nothing lost, order kept


def test_large_point_is_split_into_parts_of_the_same_device_and_time() -> None:
    big = point("sw-1", NOW, 12)

    groups = chunk([big], 5)

    assert [[(p.device, p.ts, len(p.metrics)) for p in g] for g in groups] == [
        [("sw-1", NOW, 5)], [("sw-1", NOW, 5)], [("sw-1", NOW, 2)]]


def test_small_points_share_a_message() -> None:
    groups = chunk([point("a", NOW, 2), point("b", NOW, 2), point("c", NOW, 2)], 4)
    assert [[p.device for p in g] for g in groups] == [["a", "b"], ["c"]]


def test_chunk_of_nothing() -> None:
    assert chunk([], 5) == []


def test_default_limit_keeps_messages_under_the_payload_limit() -> None:
    metrics = {f"if_in_bps{{if=port-{i:04d}/with/a/long/name}}": 123456789.123 for i in range(5000)}
    groups = chunk([Point("core-switch-01", NOW, metrics)])
    origin = wire.Origin("customer", "site", "agent")
    for group in groups:
        assert len(wire.encode_telemetry(origin, 1, 1, group)) < wire.MAX_PAYLOAD_BYTES


# ---------------------------------------------------------------- Agent.collect

class FakePoller:
    def __init__(self, name: str, points: list[Point] | None = None, error: Exception | None = None) -> None:
        self.name = name
        self._points = points or []
        self._error = error
        self.polled: list[float] = []

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(p.device, "fake", p.device) for p in self._points]

    def metrics(self) -> list[MetricInfo]:
        return [MetricInfo(wire.metric_base(k), "", "gauge", "fake") for p in self._points for k in p.metrics]

    def poll(self, now: float) -> list[Point]:
        self.polled.append(now)
        if self._error is not None:
            raise self._error
        return [Point(p.device, now, dict(p.metrics)) for p in self._points]


def agent_config() -> AgentConfig:
    cfg = AgentConfig()
    cfg.agent.id, cfg.agent.customer, cfg.agent.site = "agent-1", "acme", "hq"
    cfg.mqtt.url = "mqtt://127.0.0.1:1"  # never connected: run() is not called
    cfg.mqtt.topic_prefix = "test"
    return cfg


def drain(spool: MemorySpool) -> list[Entry]:
    entries = []
    while (entry := spool.take()) is not None:
        entries.append(entry)
    return entries


def parse(agent: Agent, entry: Entry) -> wire.Telemetry:
    return wire.parse_telemetry(agent.origin, entry.payload, now=NOW)


def test_collect_spools_parseable_messages_with_increasing_seq() -> None:
    host = FakePoller("host", [Point("host", 0, {"cpu_percent": 12.5, "disk_used_percent{mount=/}": 40.0})])
    sim = FakePoller("simulate", [Point("sw-1", 0, {"if_in_bps{if=ge-0/0/1}": 1e8})])
    spool = MemorySpool()
    agent = Agent(agent_config(), [host, sim], spool=spool)

    assert agent.collect(NOW) == 3
    assert agent.collect(NOW + 10) == 3
    entries = drain(spool)

    assert [e.seq for e in entries] == [1, 2]
    assert [e.samples for e in entries] == [3, 3]
    first, second = (parse(agent, e) for e in entries)
    assert (first.origin, first.boot, first.seq) == (wire.Origin("acme", "hq", "agent-1"), agent.boot, 1)
    assert second.seq == 2 and second.boot == first.boot
    assert first.points == [Point("host", NOW, {"cpu_percent": 12.5, "disk_used_percent{mount=/}": 40.0}),
                            Point("sw-1", NOW, {"if_in_bps{if=ge-0/0/1}": 1e8})]
    assert [p.ts for p in second.points] == [NOW + 10, NOW + 10]
    assert host.polled == [NOW, NOW + 10] and sim.polled == [NOW, NOW + 10]


def test_collect_splits_large_polls_into_several_messages() -> None:
    many = FakePoller("simulate", [Point("sw-1", 0, {f"m{i}": float(i) for i in range(2500)})])
    spool = MemorySpool()
    agent = Agent(agent_config(), [many], spool=spool)

    assert agent.collect(NOW) == 2500
    entries = drain(spool)

    assert [e.seq for e in entries] == [1, 2, 3]
    assert [e.samples for e in entries] == [1000, 1000, 500]
    received = [p for e in entries for p in parse(agent, e).points]
    assert {k: v for p in received for k, v in p.metrics.items()} == {f"m{i}": float(i) for i in range(2500)}


def test_failing_poller_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    broken = FakePoller("snmp", error=RuntimeError("agent timed out"))
    host = FakePoller("host", [Point("host", 0, {"cpu_percent": 1.0})])
    spool = MemorySpool()
    agent = Agent(agent_config(), [broken, host], spool=spool)

    with caplog.at_level(logging.ERROR, logger="agent.runner"):
        assert agent.collect(NOW) == 1

    (entry,) = drain(spool)
    assert parse(agent, entry).points == [Point("host", NOW, {"cpu_percent": 1.0})]
    assert "snmp" in caplog.text and "agent timed out" in caplog.text
    assert broken.polled == [NOW]


def test_collect_with_nothing_to_say_spools_nothing() -> None:
    spool = MemorySpool()
    agent = Agent(agent_config(), [FakePoller("quiet")], spool=spool)

    assert agent.collect(NOW) == 0
    assert len(spool) == 0 and agent.pending == 0


def test_seq_keeps_increasing_across_collects_into_a_full_spool() -> None:
    spool = MemorySpool(max_messages=2)
    agent = Agent(agent_config(), [FakePoller("host", [Point("host", 0, {"cpu_percent": 1.0})])], spool=spool)
    for i in range(5):
        agent.collect(NOW + i)

    assert [e.seq for e in drain(spool)] == [4, 5]
    assert spool.dropped_messages == 3 and spool.dropped_samples == 3


def test_birth_lists_devices_and_metrics_of_every_poller() -> None:
    host = FakePoller("host", [Point("host", 0, {"cpu_percent": 1.0, "disk_used_percent{mount=/}": 2.0})])
    sim = FakePoller("simulate", [Point("sw-1", 0, {"cpu_percent": 3.0})])
    agent = Agent(agent_config(), [host, sim])

    birth = agent.birth()
    parsed = wire.parse_birth(agent.origin, wire.encode_birth(birth))

    assert [d.device for d in parsed.devices] == ["host", "sw-1"]
    assert sorted(m.name for m in parsed.metrics) == ["cpu_percent", "disk_used_percent"]
    assert parsed.interval == 10.0 and parsed.boot == agent.boot


# ---------------------------------------------------------------- MemorySpool

def entry(seq: int, samples: int = 1) -> Entry:
    return Entry(seq, f"payload-{seq}".encode(), samples)


def test_spool_is_fifo() -> None:
    spool = MemorySpool()
    for seq in (1, 2, 3):
        spool.put(entry(seq))
    assert len(spool) == 3
    assert [e.seq for e in drain(spool)] == [1, 2, 3]
    assert spool.take() is None and len(spool) == 0


def test_spool_drops_oldest_when_full_and_counts() -> None:
    spool = MemorySpool(max_messages=3)
    for seq, samples in [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]:
        spool.put(entry(seq, samples))

    assert len(spool) == 3
    assert spool.dropped_messages == 2
    assert spool.dropped_samples == 30
    assert [(e.seq, e.payload) for e in drain(spool)] == [(3, b"payload-3"), (4, b"payload-4"), (5, b"payload-5")]


def test_spool_taken_entries_do_not_count_against_the_bound() -> None:
    spool = MemorySpool(max_messages=2)
    spool.put(entry(1))
    spool.put(entry(2))
    taken = spool.take()
    spool.put(entry(3))
    spool.done(taken)

    assert spool.dropped_messages == 0
    assert [e.seq for e in drain(spool)] == [2, 3]


def test_an_old_message_in_flight_does_not_make_the_spool_drop_newer_ones(tmp_path) -> None:  # noqa: ANN001
    from agent.spool import DiskSpool
    clock = [1000.0]
    spool = DiskSpool(tmp_path / "s.sqlite", max_age_s=100, clock=lambda: clock[0])
    spool.put(Entry(1, b"old", 1))
    in_flight = spool.take()  # handed to the broker, never acknowledged (the link went down)
    for seq in range(2, 50):
        clock[0] += 5  # 245 s later the first message is far past max_age, but it is in flight
        spool.put(Entry(seq, b"x", 1))
    assert in_flight is not None
    # at the last put (t = 1240) only messages created before 1140 were past 100 s: 27 of them;
    # the 21 younger ones are kept (before the fix every message but the newest was dropped)
    assert spool.dropped_messages == 27
    assert len(spool) == 21  # waiting; the one in flight is not counted twice
    spool.close()
