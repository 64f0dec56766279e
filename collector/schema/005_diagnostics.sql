-- Remote diagnostics: the per-agent secret that signs commands, and every request with who asked
-- and what came back.

ALTER TABLE agents ADD COLUMN diag_secret text;

CREATE TABLE diagnostics (
    id           bigserial PRIMARY KEY,
    request_id   text NOT NULL UNIQUE,
    agent_id     integer NOT NULL REFERENCES agents(id),
    action       text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{}',
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'done', 'failed', 'refused')),
    error        text,
    result       jsonb,
    finished_at  timestamptz
);
CREATE INDEX diagnostics_agent_time ON diagnostics (agent_id, requested_at DESC);
