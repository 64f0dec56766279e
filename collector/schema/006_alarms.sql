-- Detection: alarms (a detector's finding, open until its cause clears), their history, and each
-- device's health score as a time series with its breakdown.

-- One row per problem occurrence. An alarm belongs to a device, or to an agent when the whole site
-- agent is gone (device_id NULL). `series` is the series key it watches ('' for device-level
-- findings: silent, SNMP unreachable, traps keyed by `series` = trap name and interface).
CREATE TABLE alarms (
    id           bigserial PRIMARY KEY,
    device_id    integer REFERENCES devices(id),
    agent_id     integer NOT NULL REFERENCES agents(id),
    series       text NOT NULL DEFAULT '',
    detector     text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cleared')),
    opened_at    timestamptz NOT NULL,           -- event time of the sample that raised it
    updated_at   timestamptz NOT NULL,           -- event time of the last change
    cleared_at   timestamptz,
    text         text NOT NULL,
    clear_text   text,
    evidence     jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz,                    -- when the collector received the deciding message
    decided_at   timestamptz NOT NULL DEFAULT now()  -- when the server decided (latency = decided - received)
);
-- At most one active alarm per device (or agent), series and detector: a raise is an upsert.
CREATE UNIQUE INDEX alarms_one_active ON alarms (agent_id, coalesce(device_id, 0), series, detector)
    WHERE state = 'active';
CREATE INDEX alarms_device_time ON alarms (device_id, opened_at DESC);
CREATE INDEX alarms_time ON alarms (opened_at DESC);
CREATE INDEX alarms_active ON alarms (state) WHERE state = 'active';

-- Every change of an alarm: raised, severity_changed, cleared, with the words and evidence of each.
CREATE TABLE alarm_events (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
    time      timestamptz NOT NULL,
    change    text NOT NULL CHECK (change IN ('raised', 'severity_changed', 'cleared')),
    severity  text NOT NULL,
    text      text NOT NULL,
    evidence  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, time);

-- The health score: current value on the device, history in health_scores.
ALTER TABLE devices ADD COLUMN health real;
ALTER TABLE devices ADD COLUMN health_breakdown jsonb NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN health_at timestamptz;
CREATE INDEX devices_health ON devices (health);

CREATE TABLE health_scores (
    device_id  integer NOT NULL REFERENCES devices(id),
    time       timestamptz NOT NULL,
    score      real NOT NULL,
    breakdown  jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (device_id, time)
);
