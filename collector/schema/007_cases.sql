-- Cases: the work an alarm (or a person) opens, with the contract's SLA clocks, escalations,
-- notifications, maintenance windows and callbacks. alerting/cases.py is the only writer of cases.

-- A customer's contract, its SLA part: which SLA policy and support calendar (alerting/data/sla.toml)
-- apply, per-severity overrides of the policy's hours, and the people escalations reach.
CREATE TABLE contracts (
    id            serial PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customers(id),
    key           text NOT NULL UNIQUE,
    name          text NOT NULL,
    sla_policy    text NOT NULL DEFAULT 'standard',
    calendar      text,                        -- NULL: the policy's calendar
    sla_overrides jsonb NOT NULL DEFAULT '{}', -- {"P1": {"response_h": 0.25}, …}
    contacts      jsonb NOT NULL DEFAULT '[]', -- [{"role": "manager", "name": …, "email": …}, …]
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One contract in force per customer carries the clocks.
CREATE UNIQUE INDEX contracts_one_active ON contracts (customer_id) WHERE active;

CREATE TABLE cases (
    id              bigserial PRIMARY KEY,
    customer_id     integer NOT NULL REFERENCES customers(id),
    site_id         integer REFERENCES sites(id),
    agent_id        integer REFERENCES agents(id),
    device_id       integer REFERENCES devices(id),   -- NULL: a site case
    problem         text NOT NULL,                    -- what it is about: a series key, 'reachability', …
    source          text NOT NULL DEFAULT 'monitoring' CHECK (source IN ('monitoring', 'manual', 'inspection')),
    parent_id       bigint REFERENCES cases(id),      -- the site case a suppressed device case belongs to
    severity        text NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'on_site',
                        'waiting_customer', 'recovered', 'resolved', 'closed', 'suppressed')),
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    evidence        jsonb NOT NULL DEFAULT '{}',
    contract_id     integer REFERENCES contracts(id),
    sla_policy      text NOT NULL,
    calendar        text NOT NULL,
    sla             jsonb NOT NULL,                   -- the hours promised per severity, as at opening
    assignee        text,
    assignee_email  text,
    opened_at       timestamptz NOT NULL,             -- starts the clocks (event time of the deciding alarm)
    acknowledged_at timestamptz,                      -- response met
    arrived_at      timestamptz,                      -- on site
    recovered_at    timestamptz,                      -- the cause cleared (monitoring)
    resolved_at     timestamptz,
    closed_at       timestamptz,
    paused_at       timestamptz,                      -- waiting on the customer since
    paused_s        double precision NOT NULL DEFAULT 0,  -- working seconds spent waiting, before paused_at
    response_due    timestamptz,
    onsite_due      timestamptz,
    resolve_due     timestamptz,
    root_cause      text,
    parts_used      jsonb NOT NULL DEFAULT '[]',
    resolution      text,
    created_at      timestamptz NOT NULL DEFAULT now(), -- wall clock: alarm received → case created is the latency
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Once: at most one case per device (or site) and problem that is not closed.
CREATE UNIQUE INDEX cases_one_open ON cases (customer_id, coalesce(site_id, 0), coalesce(device_id, 0), problem)
    WHERE state <> 'closed';
CREATE INDEX cases_device ON cases (device_id, opened_at DESC);
CREATE INDEX cases_state ON cases (state) WHERE state <> 'closed';
CREATE INDEX cases_opened ON cases (opened_at DESC);

ALTER TABLE alarms ADD COLUMN case_id bigint REFERENCES cases(id);
CREATE INDEX alarms_case ON alarms (case_id);

-- Every step of a case, with who and when: the case's history and audit trail.
CREATE TABLE case_events (
    id       bigserial PRIMARY KEY,
    case_id  bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    time     timestamptz NOT NULL,
    actor    text NOT NULL,                 -- 'fleetcare' for the system, else the user
    kind     text NOT NULL,
    text     text NOT NULL DEFAULT '',
    data     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, time, id);

-- An escalation fires once per case, clock, level and severity (a severity change has its own).
CREATE TABLE case_escalations (
    case_id   bigint NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    clock     text NOT NULL CHECK (clock IN ('response', 'onsite', 'resolve')),
    level     real NOT NULL,
    severity  text NOT NULL,
    fired_at  timestamptz NOT NULL,
    PRIMARY KEY (case_id, clock, level, severity)
);

-- Planned work: no new case opens for what happens inside (per device, site or customer).
CREATE TABLE maintenance_windows (
    id          bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    site_id     integer REFERENCES sites(id),
    device_id   integer REFERENCES devices(id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_time ON maintenance_windows (customer_id, ends_at);

-- Callbacks (回访): after a case closes, ask the customer whether it is really fixed.
CREATE TABLE callbacks (
    id            bigserial PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customers(id),
    case_id       bigint REFERENCES cases(id),
    due_at        timestamptz NOT NULL,
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done')),
    resolved      boolean,
    satisfaction  smallint CHECK (satisfaction BETWEEN 1 AND 5),
    comment       text,
    done_at       timestamptz,
    done_by       text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX callbacks_one_per_case ON callbacks (case_id) WHERE case_id IS NOT NULL;

-- The notification outbox: written in the transaction of the case change, delivered after it,
-- retried with back-off; every attempt is logged. Nothing leaves this table unseen.
CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    case_id          bigint REFERENCES cases(id),
    event            text NOT NULL,        -- opened, escalated, severity_changed, resolved
    channel          text NOT NULL CHECK (channel IN ('webhook', 'email')),
    target           text NOT NULL,        -- URL or e-mail address
    subject          text NOT NULL,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_case ON notifications (case_id);

CREATE TABLE notification_attempts (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    at               timestamptz NOT NULL DEFAULT now(),
    ok               boolean NOT NULL,
    detail           text NOT NULL,
    duration_ms      real NOT NULL
);
CREATE INDEX notification_attempts_n ON notification_attempts (notification_id, at);
