-- Plain PostgreSQL: native range partitioning by day (created ahead and on demand by the
-- collector), and a 5-minute rollup table kept by a job from the buckets ingest marks dirty.
-- collector/timescale.py holds the TimescaleDB equivalent; the column names are the same.

CREATE TABLE samples (
    time        timestamptz NOT NULL,
    device_id   integer NOT NULL,
    series_id   integer NOT NULL,
    value       double precision NOT NULL,
    PRIMARY KEY (device_id, series_id, time)
) PARTITION BY RANGE (time);

CREATE TABLE samples_5m (
    bucket      timestamptz NOT NULL,
    device_id   integer NOT NULL,
    series_id   integer NOT NULL,
    v_avg       double precision NOT NULL,
    v_min       double precision NOT NULL,
    v_max       double precision NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (device_id, series_id, bucket)
);

-- 5-minute buckets that received samples since the rollup job last ran.
CREATE TABLE rollup_dirty (
    bucket      timestamptz PRIMARY KEY
);
