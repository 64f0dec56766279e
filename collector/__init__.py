"""Ingest and storage: MQTT subscription, validation, batching, the schema and its migrations, the
device registry and liveness."""
