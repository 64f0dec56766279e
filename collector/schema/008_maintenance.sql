-- Preventive maintenance: the rest of the contract (coverage, warranty, inspection cadence, callbacks,
-- reports), the device archive, inspections planned from health, scheduled callbacks and the
-- customers' health reports. alerting/inspections.py writes inspections, api/reports/ writes reports.

-- When the collector last stored data of a device (wall clock; last_seen is the data's own time):
-- tells a device still sending history (a spool draining, a replay) from one that went quiet.
ALTER TABLE devices ADD COLUMN received_at timestamptz;

ALTER TABLE customers ADD COLUMN address text NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN contacts jsonb NOT NULL DEFAULT '[]';

-- Coverage: site keys and "site/device" keys the contract covers; both empty: every device of the
-- customer. Warranty runs from the acceptance date (the device's own, else the contract's).
ALTER TABLE contracts ADD COLUMN starts_on date;
ALTER TABLE contracts ADD COLUMN ends_on date;
ALTER TABLE contracts ADD COLUMN sites jsonb NOT NULL DEFAULT '[]';
ALTER TABLE contracts ADD COLUMN devices jsonb NOT NULL DEFAULT '[]';
ALTER TABLE contracts ADD COLUMN accepted_on date;
ALTER TABLE contracts ADD COLUMN warranty_months integer NOT NULL DEFAULT 12 CHECK (warranty_months >= 0);
ALTER TABLE contracts ADD COLUMN inspection_cadence text NOT NULL DEFAULT 'quarterly';
ALTER TABLE contracts ADD COLUMN callback_plan text NOT NULL DEFAULT 'standard';
ALTER TABLE contracts ADD COLUMN report_recipients jsonb NOT NULL DEFAULT '[]';
ALTER TABLE contracts ADD COLUMN report_language text NOT NULL DEFAULT 'en'
    CHECK (report_language IN ('en', 'zh-CN'));

-- The device archive (客户档案): what the service side knows of a device beyond what it reports.
-- NULL fields fall back to the device's reported attributes (SNMP sysDescr, the agent's config).
CREATE TABLE device_archive (
    device_id       integer PRIMARY KEY REFERENCES devices(id),
    brand           text,
    model           text,
    serial          text,                 -- 出厂编号
    location        text,
    firmware        text,
    installed_on    date,
    accepted_on     date,                 -- 验收日期: starts the warranty
    warranty_months integer CHECK (warranty_months >= 0),
    warranty_end    date,                 -- set: wins over acceptance + months
    notes           text NOT NULL DEFAULT '',
    updated_by      text NOT NULL DEFAULT 'fleetcare',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Inspections (巡检) are work orders. One planned inspection per device at a time; its due date
-- moves with health (every move in inspection_plan_changes, with its reason).
CREATE TABLE inspections (
    id            bigserial PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customers(id),
    site_id       integer REFERENCES sites(id),
    device_id     integer NOT NULL REFERENCES devices(id),
    contract_id   integer REFERENCES contracts(id),
    state         text NOT NULL DEFAULT 'planned' CHECK (state IN ('planned', 'done', 'cancelled')),
    due_on        date NOT NULL,
    latest_on     date NOT NULL,          -- the contract's cadence: never later than this
    reason        text NOT NULL,          -- why this date
    checklist     text NOT NULL,          -- the checklist's name (alerting/data/checklists/)
    assignee      text,
    escalated_level integer NOT NULL DEFAULT 0,   -- overdue escalations fired (0, 1 assignee, 2 manager)
    booked        boolean NOT NULL DEFAULT false, -- a person set the date: planning leaves it alone
    done_at       timestamptz,
    done_by       text,
    results       jsonb NOT NULL DEFAULT '[]',    -- [{item, ok, value, note}]
    readings      jsonb NOT NULL DEFAULT '{}',
    findings      jsonb NOT NULL DEFAULT '[]',    -- [{text, severity, case_id}]
    parts_replaced jsonb NOT NULL DEFAULT '[]',
    notes         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inspections_one_planned ON inspections (device_id) WHERE state = 'planned';
CREATE INDEX inspections_due ON inspections (due_on) WHERE state = 'planned';
CREATE INDEX inspections_customer ON inspections (customer_id, due_on);
CREATE INDEX inspections_device_done ON inspections (device_id, done_at DESC);

CREATE TABLE inspection_plan_changes (
    id             bigserial PRIMARY KEY,
    inspection_id  bigint NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
    time           timestamptz NOT NULL DEFAULT now(),
    old_due_on     date,
    new_due_on     date NOT NULL,
    reason         text NOT NULL
);
CREATE INDEX inspection_plan_changes_i ON inspection_plan_changes (inspection_id, time);

-- Callbacks: after a case (case_id) or on the contract's schedule (contract_id, one per due date).
ALTER TABLE callbacks ADD COLUMN contract_id integer REFERENCES contracts(id);
ALTER TABLE callbacks ADD COLUMN kind text NOT NULL DEFAULT 'case' CHECK (kind IN ('case', 'scheduled'));
CREATE UNIQUE INDEX callbacks_one_scheduled ON callbacks (contract_id, due_at) WHERE kind = 'scheduled';

-- Health reports: immutable once stored, with the data they were built from.
CREATE TABLE reports (
    id           bigserial PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers(id),
    period       text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    lang         text NOT NULL CHECK (lang IN ('en', 'zh-CN')),
    data         jsonb NOT NULL,
    html         text NOT NULL,
    pdf          bytea,
    sha256       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    mailed_at    timestamptz,              -- its e-mails were put in the outbox (once)
    UNIQUE (customer_id, period, lang)
);

-- A report's e-mail goes through the notification outbox (retried, visible) with its PDF attached.
ALTER TABLE notifications ADD COLUMN report_id bigint REFERENCES reports(id);
ALTER TABLE notifications ADD COLUMN inspection_id bigint REFERENCES inspections(id);

-- A device's service facts in one place: its customer, the contract covering it, the archive with
-- the device's own reports as fallback, and the warranty end (explicit, else acceptance + months).
-- Every list that shows a device or a case shows its warranty from here.
CREATE VIEW device_service AS
SELECT d.id AS device_id, cu.id AS customer_id, s.id AS site_id, k.id AS contract_id,
       (k.id IS NOT NULL
        AND (k.starts_on IS NULL OR k.starts_on <= (now() AT TIME ZONE 'UTC')::date)
        AND (k.ends_on IS NULL OR k.ends_on >= (now() AT TIME ZONE 'UTC')::date)
        AND ((jsonb_array_length(k.sites) = 0 AND jsonb_array_length(k.devices) = 0)
             OR k.sites ? s.key OR k.devices ? (s.key || '/' || d.key))) AS covered,
       coalesce(ar.brand, d.attrs->>'brand', d.attrs->>'vendor') AS brand,
       coalesce(ar.model, d.attrs->>'model') AS model,
       coalesce(ar.serial, d.attrs->>'serial') AS serial,
       coalesce(ar.location, d.attrs->>'location', d.attrs->>'sys_location') AS location,
       coalesce(ar.firmware, d.attrs->>'firmware') AS firmware,
       ar.installed_on,
       coalesce(ar.accepted_on, k.accepted_on) AS accepted_on,
       coalesce(ar.warranty_end,
                (coalesce(ar.accepted_on, k.accepted_on)
                 + make_interval(months => coalesce(ar.warranty_months, k.warranty_months, 12)))::date
               ) AS warranty_end,
       k.inspection_cadence
FROM devices d
JOIN agents g ON g.id = d.agent_id
JOIN sites s ON s.id = g.site_id
JOIN customers cu ON cu.id = coalesce(d.customer_id, s.customer_id)
LEFT JOIN device_archive ar ON ar.device_id = d.id
LEFT JOIN contracts k ON k.customer_id = cu.id AND k.active;
