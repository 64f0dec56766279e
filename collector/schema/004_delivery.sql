-- Delivery accounting per agent: what it says it spooled, delivered and dropped (status
-- messages), and which sequence numbers arrived (so that gaps can be counted).

ALTER TABLE agents ADD COLUMN spooled bigint;
ALTER TABLE agents ADD COLUMN delivered_messages bigint;
ALTER TABLE agents ADD COLUMN dropped_messages bigint;
ALTER TABLE agents ADD COLUMN dropped_samples bigint;
ALTER TABLE agents ADD COLUMN counters_at timestamptz;

-- One row per message received (telemetry and events share an agent's sequence).
CREATE TABLE agent_sequences (
    agent_id    integer NOT NULL REFERENCES agents(id),
    boot        bigint NOT NULL,
    seq         bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, boot, seq)
);
