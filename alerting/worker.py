"""The detection worker: what the collector committed goes through the engine; findings become alarms,
alarms move health scores. One thread with its own database connection, beside the collector.

Why a thread and a queue rather than detection inside the collector's transaction: ingest keeps its
speed, and a slow detector never holds back acknowledgements. The queue is bounded: when detection
falls behind, the collector waits (back-pressure) rather than anything being dropped.

After a restart the engine's memory is rebuilt per device on first sight, from the device's stored
samples of the last `warmup_h` hours (findings of that replay are not stored again), then
reconciled with the open alarms: an alarm whose condition is gone is cleared, one the replay shows
still standing stays open. A sample committed just before a crash but never seen by the engine is in
that replay, so nothing is missed for long.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import psycopg

from alerting import alarms, health, liveness
from alerting.cases import CaseManager
from alerting.detectors import CLEARED, RAISED, SEVERITY_CHANGED, Alarm
from alerting.engine import DetectionEngine, DeviceContext, Finding
from alerting.event_rules import EventRules, load_event_rules
from alerting.inspections import Inspections
from alerting.policies import Policies, load_policies
from collector.store import WriteResult

log = logging.getLogger(__name__)

SERIES_DETECTORS = ("threshold", "trend", "flatline", "rate", "flap")
LIVE_WITHIN_S = 86_400.0  # event time this close to the wall clock is live, not replayed history
REPLAN_ON_CHANGE = 1.0  # points of health a device must move (or first get) to replan its inspection
HEALTH_EVERY_S = 3600.0  # event time between two stored scores of a device whose score did not change


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class DetectionWorker:
    def __init__(self, database_url: str, *, policies: Policies | None = None, rules: EventRules | None = None,
                 warmup_h: float = 24.0, queue_max: int = 1000, sweep_s: float = 5.0,
                 cases: CaseManager | None = None, inspections: Inspections | None = None) -> None:
        self.database_url = database_url
        self.inspections = inspections  # None: no replanning here (the hourly job still plans)
        self.cases = cases  # None: alarms only (as `fleetcare detect` and some tests want)
        self.rules = rules or load_event_rules()
        self.engine = DetectionEngine(policies or load_policies(), self.rules)
        self.warmup_s = warmup_h * 3600.0
        self.sweep_s = sweep_s
        self.inbox: queue.Queue[tuple[WriteResult, float]] = queue.Queue(maxsize=queue_max)
        self.series: dict[int, str] = {}
        self.health_at: dict[int, tuple[float, float]] = {}  # device → (event time, score) last stored
        self.planned_at: dict[int, float] = {}  # device → the score its inspection was last planned with
        self.conn: psycopg.Connection | None = None
        self.processed = 0
        self.findings = 0
        self.idle = threading.Event()  # set when the inbox is empty and everything taken is stored
        # judged, not yet stored (the database went away in between): stored first when it is back
        self.pending: list[tuple[list[Finding], float, set[int]]] = []

    # ------------------------------------------------------------ collector side

    def submit(self, result: WriteResult, received: float) -> None:
        """The collector's listener: blocks while the inbox is full (back-pressure, never a drop)."""
        if result.rows or result.events or result.births:
            self.idle.clear()
            self.inbox.put((result, received))

    # ------------------------------------------------------------ the thread

    def run(self, stop: threading.Event) -> None:
        next_sweep = 0.0
        held: tuple[WriteResult, float] | None = None
        delay = 0.5
        while not stop.is_set():
            try:
                if held is None:
                    try:
                        held = self.inbox.get(timeout=0.2)
                    except queue.Empty:
                        held = None
                conn = self._connection()
                self._flush(conn)  # findings judged before an outage first, in order
                if held is not None:
                    judged = self.judge(conn, *held)  # reads only: an outage here leaves the engine as it was
                    held = None
                    self.pending.append(judged)
                    self.processed += 1
                    self._flush(conn)
                if time.monotonic() >= next_sweep:
                    self.sweep(conn)
                    next_sweep = time.monotonic() + self.sweep_s
                if held is None and not self.pending and self.inbox.empty():
                    self.idle.set()
                delay = 0.5
            except psycopg.OperationalError as exc:
                log.error("detection: database unavailable (%s); retrying in %.0f s",
                          str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer", delay)
                self._drop()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except Exception:
                # a bug on one batch must not stop detection for the fleet: log it, skip that batch
                log.exception("detection failed on a batch; skipping it")
                self._drop()
                held = None
        self._drop()

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
        return self.conn

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    # ------------------------------------------------------------ one batch

    def process(self, conn: psycopg.Connection, result: WriteResult, received: float) -> list[Finding]:
        """Judge one committed write and store the findings and the health scores they move."""
        judged = self.judge(conn, result, received)
        self.pending.append(judged)
        self._flush(conn)
        return judged[0]

    def _flush(self, conn: psycopg.Connection) -> None:
        """Store what was judged, oldest first; on failure it stays pending (the engine has moved on)."""
        while self.pending:
            findings, received, due = self.pending[0]
            with conn.transaction():
                changed = alarms.apply(conn, findings, received)
                if self.cases is not None:
                    self.cases.on_alarms(conn, changed)  # an alarm and its case commit together
                self.refresh_health(conn, alarms.devices_of(changed) | due)
            self.pending.pop(0)
            self.findings += len(findings)

    def judge(self, conn: psycopg.Connection, result: WriteResult,
              received: float) -> tuple[list[Finding], float, set[int]]:
        """(findings, received, devices whose health is due). The database is only read, and all
        reads come before the engine moves, so a failed read can be retried as if nothing happened."""
        births = [d for d, st in self.engine.devices.items() if st.ctx.agent_id in result.births]
        missing_series = {r[2] for r in result.rows if r[2] not in self.series}
        if missing_series:
            for sid, key in conn.execute("SELECT id, key FROM series WHERE id = ANY(%s)", (list(missing_series),)):
                self.series[sid] = key
        per_device: dict[int, list[tuple[float, str, float]]] = defaultdict(list)
        for ts, device, sid, value in result.rows:
            per_device[device].append((ts, self.series[sid], value))
        new = [d for d in {*per_device, *(d for d, _ in result.events)} if not self.engine.knows(d)]
        contexts = self._read_contexts(conn, births + new)  # kind, name or interval may have changed
        until = {d: min((p[0] for p in per_device.get(d, [])), default=time.time()) for d in new if d in contexts}
        history = self._read_history(conn, until)
        open_alarms = {d: alarms.active_for_device(conn, d) for d in until}
        # ---- from here on, no database: the engine moves
        for ctx in contexts.values():
            self.engine.add_device(ctx)
        findings = self._warm_up(until, history, open_alarms)
        agents = set()
        for device, points in per_device.items():
            if not self.engine.knows(device):
                continue
            findings += self.engine.samples(device, points)
            state = self.engine.devices[device]
            agents.add(state.ctx.agent_id)
            if state.last_ts is not None:
                findings += self.engine.expire_traps(device, state.last_ts)
        for device, event in result.events:
            if self.engine.knows(device):
                findings += self.engine.event(device, event)
        for agent in agents:
            findings += self.engine.silence_check(agent)
        due = {d for d in per_device if self.engine.knows(d) and self._health_due(d)} | set(until)
        return findings, received, due

    def sweep(self, conn: psycopg.Connection) -> list[Finding]:
        """Agent loss and SNMP states (wall clock), as alarms; then what time alone decides for cases:
        maintenance windows ended (event time of each agent), escalations and auto-close (wall clock)."""
        with conn.transaction():
            findings = liveness.sweep(conn, self.rules)
            changed = alarms.apply(conn, findings)
            if self.cases is not None:
                self.cases.on_alarms(conn, changed)
            self.refresh_health(conn, alarms.devices_of(changed))
        if self.cases is not None:
            event_now = {a: _ts(t) for a, t in self.engine.agent_ts.items()}
            with conn.transaction():
                self.cases.release(conn, event_now)
            with conn.transaction():
                self.cases.tick(conn, event_now=event_now)
        return findings

    # ------------------------------------------------------------ devices met for the first time

    def _read_contexts(self, conn: psycopg.Connection, device_ids: list[int]) -> dict[int, DeviceContext]:
        if not device_ids:
            return {}
        return {row[0]: DeviceContext(*row[:7], float(row[7] or 60.0)) for row in conn.execute(
            "SELECT d.id, d.agent_id, d.key, d.name, d.kind, c.key, s.key, "
            "  coalesce((d.attrs->>'interval_s')::float8, a.interval_s, 60) "
            "FROM devices d JOIN agents a ON a.id = d.agent_id JOIN sites s ON s.id = a.site_id "
            "JOIN customers c ON c.id = coalesce(d.customer_id, s.customer_id) WHERE d.id = ANY(%s)",
            (device_ids,))}

    def _read_history(self, conn: psycopg.Connection,
                      until: dict[int, float]) -> dict[int, list[tuple[float, str, float]]]:
        """Each new device's samples of the warm-up window before its first sample in this batch."""
        history: dict[int, list[tuple[float, str, float]]] = defaultdict(list)
        if not until or self.warmup_s <= 0:
            return history
        ids = list(until)
        for device, ts, key, value in conn.execute(
                "SELECT s.device_id, extract(epoch FROM s.time)::float8, se.key, s.value "
                "FROM unnest(%s::int4[], %s::timestamptz[]) AS w(device_id, until) "
                "JOIN samples s ON s.device_id = w.device_id AND s.time < w.until "
                "  AND s.time >= w.until - make_interval(secs => %s) "
                "JOIN series se ON se.id = s.series_id",
                (ids, [_ts(until[d]) for d in ids], self.warmup_s)):
            history[device].append((ts, key, value))
        return history

    def _warm_up(self, until: dict[int, float], history: dict[int, list[tuple[float, str, float]]],
                 open_alarms: dict[int, list[tuple[str, str, float]]]) -> list[Finding]:
        """Replay each new device's recent history into its detectors; reconcile with its open alarms."""
        out: list[Finding] = []
        for device in until:
            replayed = self.engine.samples(device, history[device]) if history.get(device) else []
            last: dict[tuple[str, str], Finding] = {}
            for f in replayed:
                last[(f.alarm.series, f.alarm.detector)] = f
            standing = self.engine.active_series_alarms(device)
            for key in standing:
                f = last.get(key)
                if f is not None and f.alarm.state in (RAISED, SEVERITY_CHANGED):
                    out.append(f)  # an upsert: changes nothing when the database already has it
            state = self.engine.devices[device]
            for series, detector, changed_at in open_alarms.get(device, []):
                if detector in SERIES_DETECTORS and (series, detector) not in standing:
                    out.append(Finding(Alarm(detector, "info", CLEARED, series, state.last_ts or changed_at,
                                             f"{state.ctx.name}: condition no longer present (detectors rebuilt "
                                             f"from the last {self.warmup_s / 3600:.0f} h after a restart)"),
                                       state.ctx.agent_id, device))
                elif detector == "trap":
                    self.engine.restore_trap(device, series, changed_at)
                elif detector == "silence":
                    state.silent = True  # cleared by the next sample
        return out

    # ------------------------------------------------------------ health

    def _health_due(self, device: int) -> bool:
        state = self.engine.devices[device]
        stored = self.health_at.get(device)
        return state.last_ts is not None and (stored is None or state.last_ts - stored[0] >= HEALTH_EVERY_S)

    def refresh_health(self, conn: psycopg.Connection, devices: set[int]) -> None:
        """Recompute, store on the device and as a point of its health series (when it moved, or hourly)."""
        if not devices:
            return
        ids = sorted(devices)
        now_of = {d: (self.engine.devices[d].last_ts if d in self.engine.devices and self.engine.devices[d].last_ts
                      else time.time()) for d in ids}
        signals = {d: health.Signals(now=now_of[d]) for d in ids}
        for device, detector, severity, series, text, hours in conn.execute(
                "SELECT device_id, detector, severity, series, text, "
                "  (evidence->'forecast'->>'hours_left')::float8 FROM alarms "
                "WHERE device_id = ANY(%s) AND state = 'active'", (ids,)):
            signals[device].alarms.append(health.OpenAlarm(detector, severity, series, text, hours))
        w = health.weights()
        for device, reboots, raised in conn.execute(
                "SELECT a.device_id, "
                "  count(*) FILTER (WHERE a.detector = 'reboot' AND a.opened_at >= w.now - make_interval(days => %s)), "
                "  count(*) FILTER (WHERE a.detector <> 'reboot' AND a.opened_at >= w.now - make_interval(days => %s)) "
                "FROM unnest(%s::int4[], %s::timestamptz[]) AS w(device_id, now) "
                "JOIN alarms a ON a.device_id = w.device_id AND a.opened_at <= w.now GROUP BY a.device_id",
                (w["reboots"]["window_days"], w["repeats"]["window_days"], ids, [_ts(now_of[d]) for d in ids])):
            signals[device].reboots, signals[device].raised = int(reboots), int(raised)
        if self.cases is not None:  # with cases, a repeat is a case (its repeats and flaps are one)
            for device in ids:
                signals[device].raised, signals[device].repeats_are = 0, "cases"
            for device, n in conn.execute(
                    "SELECT k.device_id, count(*) FROM unnest(%s::int4[], %s::timestamptz[]) AS w(device_id, now) "
                    "JOIN cases k ON k.device_id = w.device_id AND k.opened_at <= w.now "
                    "  AND k.opened_at >= w.now - make_interval(days => %s) AND k.state <> 'suppressed' "
                    "GROUP BY k.device_id", (ids, [_ts(now_of[d]) for d in ids], w["repeats"]["window_days"])):
                signals[device].raised = int(n)
        for device, attrs, warranty_end, accepted_on, installed_on, due_on in conn.execute(
                "SELECT d.id, d.attrs, v.warranty_end, v.accepted_on, v.installed_on, "
                "  (SELECT due_on FROM inspections i WHERE i.device_id = d.id AND i.state = 'planned') "
                "FROM devices d LEFT JOIN device_service v ON v.device_id = d.id WHERE d.id = ANY(%s)", (ids,)):
            s = signals[device]  # the archive first, what the device reports about itself second
            s.warranty_end = warranty_end or health.parse_date(attrs.get("warranty_end"))
            s.inspection_due = due_on or health.parse_date(attrs.get("inspection_due"))
            s.in_service_since = (accepted_on or installed_on
                                  or health.parse_date(attrs.get("acceptance_date") or attrs.get("installed")))
        moved: list[int] = []
        scores: dict[int, float] = {}
        for device in sorted(ids):  # in id order, as ingest locks them (collector/store.py, _touch_devices)
            score, breakdown = health.compute(signals[device], w)
            scores[device] = score
            at = now_of[device]
            conn.execute("UPDATE devices SET health = %s, health_breakdown = %s, health_at = %s WHERE id = %s",
                         (score, json.dumps(breakdown), _ts(at), device))
            stored = self.health_at.get(device)
            planned = self.planned_at.get(device)
            if planned is None or abs(planned - score) >= REPLAN_ON_CHANGE:
                moved.append(device)
            if stored is None or stored[1] != score or at - stored[0] >= HEALTH_EVERY_S:
                conn.execute("INSERT INTO health_scores (device_id, time, score, breakdown) VALUES (%s, %s, %s, %s) "
                             "ON CONFLICT (device_id, time) DO UPDATE SET score = EXCLUDED.score, "
                             "breakdown = EXCLUDED.breakdown", (device, _ts(at), score, json.dumps(breakdown)))
                self.health_at[device] = (at, score)
        live = [d for d in moved if time.time() - now_of[d] < LIVE_WITHIN_S]
        if live and self.inspections is not None:
            # health moved: bring the inspection forward now, not at the next hourly plan. Only for live
            # data: a dip in replayed history says nothing about when to visit today. In a savepoint:
            # planning failing must never cost the alarms and cases of this batch.
            try:
                with conn.transaction():
                    self.inspections.replan(conn, live)
                for d in live:
                    self.planned_at[d] = scores[d]
            except Exception:
                log.exception("replanning inspections of %d devices failed; the hourly plan will retry", len(live))
