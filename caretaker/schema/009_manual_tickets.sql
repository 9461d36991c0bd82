-- Manual tickets and complaints over the API (issue 10). Closing a work order no longer records
-- the follow-up visit: visits are rows of follow_ups (008 copied the old ones there).
ALTER TABLE work_orders
    DROP COLUMN followup_contact,
    DROP COLUMN followup_result,
    DROP COLUMN satisfaction;

-- A manual ticket (报事报修) always says how urgent it is: its deadlines come from that.
-- NOT VALID: rows written before manual tickets had an urgency are left as they were.
ALTER TABLE work_orders ADD CONSTRAINT work_orders_manual_urgency
    CHECK (source <> 'manual' OR urgency IS NOT NULL) NOT VALID;

-- The complaints board lists a site's complaints by state.
CREATE INDEX complaints_state_idx ON complaints (site_id, state, opened_at DESC);
