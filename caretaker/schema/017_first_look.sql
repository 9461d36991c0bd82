-- A first look worth having: schedules take effect from an instant, acknowledged gaps leave
-- the open list, and a device's planned stop is told apart from a fault.

-- The instant a schedule takes effect: its `effective_from` when the site file gives one
-- (local midnight of a date, or a date-time), else when the schedule was first loaded.
-- Kept when the schedule is loaded again, so a reload never moves it. No run starts before.
ALTER TABLE schedules ADD COLUMN effective_at timestamptz;
UPDATE schedules s SET effective_at = ((s.definition->>'effective_from')::date::timestamp
                                       AT TIME ZONE st.timezone)
  FROM sites st WHERE st.id = s.site_id AND s.definition ? 'effective_from';
UPDATE schedules SET effective_at = created_at WHERE effective_at IS NULL;
ALTER TABLE schedules ALTER COLUMN effective_at SET NOT NULL;

-- open → acknowledged (a supervisor has seen it; out of the open list) → resolved (a scan
-- arrived after all). Resolved gaps may be acknowledged too: they keep status resolved.
ALTER TABLE inspection_gaps DROP CONSTRAINT inspection_gaps_status_check;
ALTER TABLE inspection_gaps ADD CONSTRAINT inspection_gaps_status_check
    CHECK (status IN ('open', 'acknowledged', 'resolved'));
UPDATE inspection_gaps SET status = 'acknowledged'
 WHERE status = 'open' AND acknowledged_at IS NOT NULL;

-- Where the device's current online/offline state came from: status (its own message),
-- lwt (its Last Will), planned (an orderly stop it announced: not a fault), telemetry.
ALTER TABLE devices ADD COLUMN online_source text;
