"""The MQTT wire format: topics, encode → parse round trips, and every rejection reason."""

from __future__ import annotations

import json
import time

import pytest

from agent import wire
from agent.wire import Origin, Point, WireError

ORIGIN = Origin("acme", "hq", "agent-1")
NOW = 1_700_000_000.0


def telemetry_body(**overrides: object) -> dict:
    body = {"v": 1, "customer": "acme", "site": "hq", "agent": "agent-1", "boot": 7, "seq": 1,
            "points": [{"device": "host", "ts": NOW, "metrics": {"cpu_percent": 12.5}}]}
    body.update(overrides)
    return body


def dump(body: object) -> bytes:
    return json.dumps(body).encode()


def point_with(**overrides: object) -> bytes:
    point = {"device": "host", "ts": NOW, "metrics": {"cpu_percent": 12.5}}
    point.update(overrides)
    return dump(telemetry_body(points=[point]))


def reject(payload: bytes, reason: str, **kwargs: object) -> WireError:
    kwargs.setdefault("now", NOW)
    with pytest.raises(WireError) as info:
        wire.parse_telemetry(ORIGIN, payload, **kwargs)
    assert info.value.reason == reason, str(info.value)
    return info.value


# ---------------------------------------------------------------- round trips

def test_telemetry_round_trip() -> None:
    points = [Point("host", NOW + 0.123, {"cpu_percent": 12.5, "disk_used_percent{mount=/var/lib}": 40.0}),
              Point("sw-1", NOW, {"if_in_bps{if=ge-0/0/1}": 1.5e8, "if_oper_up{if=ge-0/0/1}": 1.0})]
    payload = wire.encode_telemetry(ORIGIN, 7, 42, points)

    parsed = wire.parse_telemetry(ORIGIN, payload, now=NOW)

    assert parsed == wire.Telemetry(ORIGIN, 7, 42, points)
    assert parsed.sample_count == 4


def test_telemetry_integer_values_become_floats() -> None:
    parsed = wire.parse_telemetry(ORIGIN, point_with(metrics={"processes": 93}), now=NOW)
    value = parsed.points[0].metrics["processes"]
    assert value == 93.0 and isinstance(value, float)


def test_birth_round_trip() -> None:
    birth = wire.Birth(ORIGIN, 7, "1.2.3", 10.0, {"hostname": "box", "cpus": 4},
                       [wire.DeviceInfo("host", "host", "box", {"os": "Linux"}),
                        wire.DeviceInfo("sw-1", "switch", "sw-1", {"simulated": True})],
                       [wire.MetricInfo("cpu_percent", "%", "gauge", "CPU busy"),
                        wire.MetricInfo("if_in_octets", "B", "counter", "Bytes in")])

    assert wire.parse_birth(ORIGIN, wire.encode_birth(birth)) == birth


@pytest.mark.parametrize("state, boot", [("online", 7), ("offline", 7), ("offline", None)])
def test_status_round_trip(state: str, boot: int | None) -> None:
    payload = wire.encode_status(ORIGIN, state, boot, ts=NOW + 0.5)

    assert wire.parse_status(ORIGIN, payload) == wire.Status(ORIGIN, state, NOW + 0.5, boot)


def test_status_default_time_is_now() -> None:
    status = wire.parse_status(ORIGIN, wire.encode_status(ORIGIN, "online", 1))
    assert abs(status.ts - time.time()) < 5


# ---------------------------------------------------------------- topics

def test_topic_and_parse_topic() -> None:
    name = wire.topic("fleetcare", ORIGIN, wire.TELEMETRY)
    assert name == "fleetcare/v1/acme/hq/agent-1/telemetry"
    assert wire.parse_topic("fleetcare", name) == (ORIGIN, "telemetry")


def test_parse_topic_multi_level_prefix() -> None:
    name = wire.topic("lab/fleet", ORIGIN, wire.BIRTH)
    assert wire.parse_topic("lab/fleet", name) == (ORIGIN, "birth")


def test_subscription_matches_topic_shape() -> None:
    assert wire.subscription("fleetcare") == "fleetcare/v1/+/+/+/+"
    assert wire.subscription("fleetcare", wire.STATUS) == "fleetcare/v1/+/+/+/status"


@pytest.mark.parametrize("name, reason", [
    ("other/v1/acme/hq/agent-1/telemetry", "bad_topic"),          # wrong prefix
    ("fleetcare/v1/acme/hq/telemetry", "bad_topic"),              # a level missing
    ("fleetcare/v1/acme/hq/agent-1/telemetry/x", "bad_topic"),    # a level too many
    ("fleetcare/v2/acme/hq/agent-1/telemetry", "bad_version"),    # wrong version
    ("fleetcare/v1/acme/hq/bad id!/telemetry", "bad_topic"),      # bad agent id
    ("fleetcare/v1/-acme/hq/agent-1/telemetry", "bad_topic"),     # id must start with a letter or digit
    ("fleetcare/v1/acme//agent-1/telemetry", "bad_topic"),        # empty site
    ("fleetcare/v1/acme/hq/agent-1/metrics", "bad_topic"),        # unknown kind
])
def test_parse_topic_rejects(name: str, reason: str) -> None:
    with pytest.raises(WireError) as info:
        wire.parse_topic("fleetcare", name)
    assert info.value.reason == reason


# ---------------------------------------------------------------- rejections

@pytest.mark.parametrize("payload", [b"{not json", b"", b"\xff\xfe\x80garbage", b'{"v": 1, "customer": "\xc3\x28"}'])
def test_bad_json(payload: bytes) -> None:
    reject(payload, "bad_json")


def test_bad_version() -> None:
    reject(dump(telemetry_body(v=2)), "bad_version")


def test_missing_version_is_bad_version() -> None:
    body = telemetry_body()
    del body["v"]
    reject(dump(body), "bad_version")


def test_missing_field_is_bad_schema() -> None:
    body = telemetry_body()
    del body["seq"]
    error = reject(dump(body), "bad_schema")
    assert "seq" in error.detail


def test_missing_field_in_point_is_bad_schema() -> None:
    reject(dump(telemetry_body(points=[{"device": "host", "ts": NOW}])), "bad_schema")


@pytest.mark.parametrize("payload", [
    dump(telemetry_body(points={"device": "host"})),   # points not a list
    dump(telemetry_body(points=[42])),                  # a point not an object
    dump([telemetry_body()]),                           # payload not an object
    b"42",
    dump(telemetry_body(seq=-1)),                       # seq negative
    dump(telemetry_body(boot=True)),                    # a bool is not an integer
    point_with(metrics=[1, 2]),                         # metrics not an object
    point_with(device="bad device"),                    # device not an id
])
def test_bad_schema(payload: bytes) -> None:
    reject(payload, "bad_schema")


def test_unknown_top_level_field() -> None:
    error = reject(dump(telemetry_body(extra=1)), "unknown_field")
    assert "extra" in error.detail


def test_unknown_field_inside_point() -> None:
    error = reject(point_with(unit="%"), "unknown_field")
    assert "unit" in error.detail


@pytest.mark.parametrize("field, value", [("customer", "other"), ("site", "branch"), ("agent", "agent-2")])
def test_origin_mismatch(field: str, value: str) -> None:
    error = reject(dump(telemetry_body(**{field: value})), "origin_mismatch")
    assert field in error.detail


@pytest.mark.parametrize("payload", [
    point_with(metrics={"cpu_percent": "12.5"}),
    point_with(metrics={"cpu_percent": True}),
    point_with(metrics={"cpu_percent": None}),
    point_with(metrics={"cpu_percent": [1]}),
    point_with(ts="yesterday"),
    dump(telemetry_body()).replace(b"12.5", b"NaN"),
    dump(telemetry_body()).replace(b"12.5", b"Infinity"),
    dump(telemetry_body()).replace(b"12.5", b"-Infinity"),
    dump(telemetry_body()).replace(b"12.5", b"1e400"),
    dump(telemetry_body()).replace(b"12.5", b"1" + b"0" * 400),  # an integer too large for a float
])
def test_bad_value(payload: bytes) -> None:
    reject(payload, "bad_value")


def test_huge_integer_timestamp_is_bad_value() -> None:
    reject(dump(telemetry_body()).replace(str(NOW).encode(), b"9" * 400), "bad_value")


@pytest.mark.parametrize("key", ["CPU", "cpu percent", "9lives", "cpu-percent", "disk{mount}",
                                 "disk{mount=/}x", "disk{=/}", "a{b=c}{d=e}", "x" * 81, ""])
def test_bad_metric(key: str) -> None:
    reject(point_with(metrics={key: 1.0}), "bad_metric")


@pytest.mark.parametrize("key", ["cpu_percent", "_private", "disk_used_percent{mount=/var/lib}",
                                 "if_in_bps{if=ge-0/0/1}", "temp{sensor=cpu 0,zone=a}", "x{k=}"])
def test_label_keys_accepted(key: str) -> None:
    parsed = wire.parse_telemetry(ORIGIN, point_with(metrics={key: 1.0}), now=NOW)
    assert parsed.points[0].metrics == {key: 1.0}


def test_bad_time_in_the_future() -> None:
    ok = wire.parse_telemetry(ORIGIN, point_with(ts=NOW + wire.MAX_FUTURE_SECONDS - 1), now=NOW)
    assert ok.points[0].ts == NOW + wire.MAX_FUTURE_SECONDS - 1
    reject(point_with(ts=NOW + wire.MAX_FUTURE_SECONDS + 1), "bad_time")


def test_bad_time_older_than_oldest() -> None:
    oldest = NOW - 30 * 86_400
    assert wire.parse_telemetry(ORIGIN, point_with(ts=oldest), now=NOW, oldest=oldest).points[0].ts == oldest
    reject(point_with(ts=oldest - 1), "bad_time", oldest=oldest)


def test_one_bad_point_rejects_the_whole_message() -> None:
    good = {"device": "host", "ts": NOW, "metrics": {"cpu_percent": 1.0}}
    bad = {"device": "host", "ts": NOW, "metrics": {"cpu_percent": "high"}}
    reject(dump(telemetry_body(points=[good, bad])), "bad_value")


def test_too_large_with_default_limit() -> None:
    payload = b"{" + b" " * 10_000_000 + b"}"
    error = reject(payload, "too_large")
    assert str(wire.MAX_PAYLOAD_BYTES) in error.detail


def test_too_large_with_custom_limit() -> None:
    payload = dump(telemetry_body())
    assert wire.parse_telemetry(ORIGIN, payload, max_bytes=len(payload), now=NOW)
    reject(payload, "too_large", max_bytes=len(payload) - 1)


def test_birth_and_status_rejections() -> None:
    with pytest.raises(WireError) as info:
        wire.parse_status(ORIGIN, wire.encode_status(ORIGIN, "sleeping", 1, ts=NOW))
    assert info.value.reason == "bad_schema"
    with pytest.raises(WireError) as info:
        wire.parse_status(Origin("acme", "hq", "agent-2"), wire.encode_status(ORIGIN, "online", 1, ts=NOW))
    assert info.value.reason == "origin_mismatch"
    birth = wire.Birth(ORIGIN, 1, "1.0", 10.0, {}, [], [wire.MetricInfo("disk{mount=/}", "%", "gauge", "")])
    with pytest.raises(WireError) as info:
        wire.parse_birth(ORIGIN, wire.encode_birth(birth))
    assert info.value.reason == "bad_metric"


def test_wire_error_message_carries_reason_and_detail() -> None:
    error = WireError("bad_json", "payload is not JSON")
    assert isinstance(error, ValueError)
    assert str(error) == "bad_json: payload is not JSON"
    assert (error.reason, error.detail) == ("bad_json", "payload is not JSON")


# ---------------------------------------------------------------- metric keys

@pytest.mark.parametrize("key, base, labels", [
    ("cpu_percent", "cpu_percent", {}),
    ("disk_used_percent{mount=/var/lib}", "disk_used_percent", {"mount": "/var/lib"}),
    ("if_in_bps{if=ge-0/0/1}", "if_in_bps", {"if": "ge-0/0/1"}),
    ("temp{sensor=cpu,zone=a=b}", "temp", {"sensor": "cpu", "zone": "a=b"}),
])
def test_metric_base_and_labels(key: str, base: str, labels: dict[str, str]) -> None:
    assert wire.metric_base(key) == base
    assert wire.metric_labels(key) == labels


# ---------------------------------------------------------------- limits a database needs

def test_times_a_database_cannot_hold_are_refused() -> None:
    event = {"device": "host", "ts": -1e12, "kind": "reboot", "severity": "info", "text": "t", "detail": {}}
    body = {"v": 1, "customer": "acme", "site": "hq", "agent": "agent-1", "boot": 1, "seq": 1, "events": [event]}
    with pytest.raises(WireError) as err:
        wire.parse_events(ORIGIN, dump(body))
    assert err.value.reason == "bad_time"
    status = json.loads(wire.encode_status(ORIGIN, "online", 1))
    status["ts"] = 1e20
    with pytest.raises(WireError) as err:
        wire.parse_status(ORIGIN, dump(status))
    assert err.value.reason == "bad_time"


def test_a_series_key_longer_than_an_index_allows_is_refused() -> None:
    labels = ",".join(f"l{i}=v{i}" for i in range(100))
    payload = wire.encode_telemetry(ORIGIN, 1, 1, [Point("host", time.time(), {f"m{{{labels}}}": 1.0})])
    with pytest.raises(WireError) as err:
        wire.parse_telemetry(ORIGIN, payload)
    assert err.value.reason == "bad_metric"


def test_the_text_backslash_u0000_is_not_a_nul() -> None:
    birth = wire.Birth(ORIGIN, 1, "1", 10.0, {"note": "C:\\u0000 is not NUL"}, [], [])
    assert wire.parse_birth(ORIGIN, wire.encode_birth(birth)).host["note"] == "C:\\u0000 is not NUL"
    nul = wire.Birth(ORIGIN, 1, "1", 10.0, {"note": "real \x00 NUL"}, [], [])
    with pytest.raises(WireError) as err:
        wire.parse_birth(ORIGIN, wire.encode_birth(nul))
    assert err.value.reason == "bad_value"


def test_a_device_interval_must_be_a_number() -> None:
    birth = wire.Birth(ORIGIN, 1, "1", 10.0, {}, [wire.DeviceInfo("sw", "switch", "sw", {"interval_s": "abc"})], [])
    with pytest.raises(WireError) as err:
        wire.parse_birth(ORIGIN, wire.encode_birth(birth))
    assert err.value.reason == "bad_schema"
