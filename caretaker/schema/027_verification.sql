-- Alarm verification by the nearest guard (issue 16, part 4): an alarm of a configured kind
-- (a door forced, water on a pump-room floor) sends the on-duty guard whose last scan is
-- closest to look at a checkpoint by a deadline; the guard's scan (or the API) records the
-- result on the alarm, and nobody verifying in time escalates.

-- A site's `verification:` section, as written (rules/verification_config.py).
CREATE TABLE verification_settings (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    spec       jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One verification visit per alarm (the alarm id is unique: dispatched exactly once).
CREATE TABLE verifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    alarm_id        bigint NOT NULL UNIQUE REFERENCES alarms ON DELETE CASCADE,
    rule_id         text NOT NULL,
    device_id       text NOT NULL,
    checkpoint_id   ident,                -- where to go and look (NULL: nowhere known)
    title           text NOT NULL,
    guard_id        ident,                -- who was sent; NULL: no guard was on duty
    run_id          bigint REFERENCES patrol_runs ON DELETE SET NULL,  -- the guard's run then
    from_checkpoint ident,                -- the guard's last scan, the distance measured from
    distance        float8,               -- metres (given, or the zone estimate)
    basis           text CHECK (basis IN ('distances', 'zones', 'unknown')),
    requested_at    timestamptz NOT NULL,
    due_by          timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'confirmed', 'false_alarm', 'not_verified')),
    result_at       timestamptz,
    result_by       text,
    scan_id         uuid,
    note            text,
    work_order_id   bigint
);
CREATE INDEX verifications_due_idx ON verifications (due_by) WHERE state = 'open';
CREATE INDEX verifications_site_idx ON verifications (site_id, requested_at DESC);
CREATE INDEX verifications_guard_idx ON verifications (site_id, guard_id, checkpoint_id)
    WHERE state = 'open';

-- The alarm shows its verification's state (open, confirmed, false_alarm, not_verified).
ALTER TABLE alarms ADD COLUMN verification text
    CHECK (verification IN ('open', 'confirmed', 'false_alarm', 'not_verified'));

-- A scan that verified an alarm and matched no route visit is a verification, not unscheduled.
ALTER TABLE scan_checks DROP CONSTRAINT scan_checks_disposition_check;
ALTER TABLE scan_checks ADD CONSTRAINT scan_checks_disposition_check
    CHECK (disposition IN ('matched', 'repeat', 'unknown_tag', 'unscheduled', 'verification'));
