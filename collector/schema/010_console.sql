-- The console's live device list (api/routes/stream.py): which devices and cases changed since a poll.
--
-- Each row remembers the transaction that last changed what the console shows (a device's status,
-- its detail, last_seen, health; a case's state, severity or assignee). A poll asks for rows whose
-- changed_xid is at or above the oldest transaction still running at the previous poll
-- (pg_snapshot_xmin): a change committed late by a long transaction is still found, which a
-- timestamp compared with the previous poll's time would miss. Plain PostgreSQL 13+, no extension.

ALTER TABLE devices ADD COLUMN changed_xid xid8;
ALTER TABLE cases ADD COLUMN changed_xid xid8;

CREATE FUNCTION fleetcare_device_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.status_detail IS DISTINCT FROM OLD.status_detail
       OR NEW.last_seen IS DISTINCT FROM OLD.last_seen OR NEW.health IS DISTINCT FROM OLD.health THEN
        NEW.changed_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION fleetcare_case_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state OR NEW.severity IS DISTINCT FROM OLD.severity
       OR NEW.assignee IS DISTINCT FROM OLD.assignee OR NEW.device_id IS DISTINCT FROM OLD.device_id THEN
        NEW.changed_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER devices_changed BEFORE INSERT OR UPDATE ON devices
    FOR EACH ROW EXECUTE FUNCTION fleetcare_device_changed();
CREATE TRIGGER cases_changed BEFORE INSERT OR UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION fleetcare_case_changed();

-- No index on devices.changed_xid: last_seen changes with every batch the collector writes, and an
-- indexed column changing would make each of those updates non-HOT (a new entry in every index of
-- devices, and bloat). A poll scans the devices instead: 10,000 rows take a few milliseconds
-- (bench/console.py). Cases change seldom, so theirs is indexed.
CREATE INDEX cases_changed_xid ON cases (changed_xid) WHERE device_id IS NOT NULL;
