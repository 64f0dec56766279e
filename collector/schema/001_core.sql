-- The registry: who owns what, and the metric catalogue. Ids are surrogate integers so that the
-- samples table stays narrow; the wire's text ids live in the `key` columns.

CREATE TABLE customers (
    id          serial PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    key         text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, key)
);

CREATE TABLE agents (
    id          serial PRIMARY KEY,
    site_id     integer NOT NULL REFERENCES sites(id),
    key         text NOT NULL,
    version     text,
    boot        bigint,                      -- the agent process's start (ms), from the wire
    interval_s  real,
    host        jsonb NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'online', 'offline')),
    state_since timestamptz,
    last_seen   timestamptz,
    last_seq    bigint,
    messages    bigint NOT NULL DEFAULT 0,
    samples     bigint NOT NULL DEFAULT 0,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, key)
);

CREATE TABLE devices (
    id          serial PRIMARY KEY,
    agent_id    integer NOT NULL REFERENCES agents(id),
    key         text NOT NULL,
    kind        text NOT NULL DEFAULT 'unknown',
    name        text NOT NULL,
    attrs       jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline')),
    status_since timestamptz,
    last_seen   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, key)
);
CREATE INDEX devices_status ON devices (status);

-- One row per series: a metric name plus its labels (disk_used_percent{mount=/var}).
CREATE TABLE series (
    id          serial PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    name        text NOT NULL,
    labels      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX series_name ON series (name);

-- The metric catalogue, as the agents declare it in their birth messages.
CREATE TABLE metric_catalogue (
    name        text PRIMARY KEY,
    unit        text NOT NULL DEFAULT '',
    type        text NOT NULL DEFAULT 'gauge',
    description text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The latest value of every series, so the device list never scans the samples.
CREATE TABLE latest_values (
    device_id   integer NOT NULL REFERENCES devices(id),
    series_id   integer NOT NULL REFERENCES series(id),
    time        timestamptz NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (device_id, series_id)
);

-- State changes of devices and agents (online/offline), the start of every device's timeline.
CREATE TABLE device_events (
    id          bigserial PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT now(),
    device_id   integer REFERENCES devices(id),
    agent_id    integer REFERENCES agents(id),
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX device_events_device_time ON device_events (device_id, time DESC);

-- Messages the collector refused, kept (truncated) so that nothing vanishes without a trace.
CREATE TABLE rejected_messages (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    size        integer NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX rejected_messages_time ON rejected_messages (received_at);
