-- Device states beyond online/offline (SNMP reachability), why a device is in its state, events
-- with severity and words, and a device's own customer when it is not its agent's.

ALTER TABLE devices DROP CONSTRAINT devices_status_check;
ALTER TABLE devices ADD CONSTRAINT devices_status_check
    CHECK (status IN ('unknown', 'online', 'offline', 'partial', 'no_response', 'auth_failure', 'error'));
ALTER TABLE devices ADD COLUMN status_detail text NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN customer_id integer REFERENCES customers(id);

ALTER TABLE device_events ADD COLUMN severity text NOT NULL DEFAULT 'info';
ALTER TABLE device_events ADD COLUMN text text NOT NULL DEFAULT '';
