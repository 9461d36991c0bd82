-- Escalation that reaches people (issue 10): one outbox for every channel (the generic JSON
-- webhook, WeCom and DingTalk group robots, e-mail), each site's receivers and escalation
-- ladder, and escalations recorded per level so that each level is told exactly once.

-- The webhook outbox becomes the one notification outbox; its rows keep their meaning.
ALTER TABLE webhook_outbox RENAME TO notification_outbox;
ALTER INDEX webhook_outbox_due_idx RENAME TO notification_outbox_due_idx;
ALTER TABLE notification_outbox RENAME COLUMN url TO target;  -- a URL, or e-mail addresses
ALTER TABLE notification_outbox
    ADD COLUMN channel  text NOT NULL DEFAULT 'webhook'
        CHECK (channel IN ('webhook', 'wecom', 'dingtalk', 'email')),
    ADD COLUMN site_id  text,
    ADD COLUMN subject  text NOT NULL DEFAULT 'work_order',
    -- the site's receiver it is for (NULL: the work-order policy's or the global webhook);
    -- its secrets (signing key, SMTP password) are read at send time, never stored here
    ADD COLUMN receiver text;
ALTER TABLE notification_outbox ALTER COLUMN channel DROP DEFAULT,
                                ALTER COLUMN subject DROP DEFAULT;

-- A site's `notifications:` (receivers) and `escalation:` (ladders) sections, as written.
CREATE TABLE notification_settings (
    site_id       ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    notifications jsonb,
    escalation    jsonb,
    updated_at    timestamptz NOT NULL
);

-- Escalations per level: level 0 is "the deadline passed" (the overdue event), levels 1..n
-- the ladder's. The key makes each level happen once, however many workers race.
ALTER TABLE work_order_escalations ADD COLUMN level smallint NOT NULL DEFAULT 1
    CHECK (level BETWEEN 0 AND 9);
ALTER TABLE work_order_escalations DROP CONSTRAINT work_order_escalations_pkey;
ALTER TABLE work_order_escalations ADD PRIMARY KEY (work_order_id, deadline, due_at, level);
-- An escalation made before the ladder was both the overdue event and the first level.
INSERT INTO work_order_escalations (work_order_id, deadline, due_at, escalated_at, level)
SELECT work_order_id, deadline, due_at, escalated_at, 0 FROM work_order_escalations;
ALTER TABLE work_order_escalations ALTER COLUMN level DROP DEFAULT;

CREATE TABLE complaint_escalations (
    complaint_id bigint NOT NULL REFERENCES complaints ON DELETE CASCADE,
    due_at       timestamptz NOT NULL,  -- the answer_by that passed
    level        smallint NOT NULL CHECK (level BETWEEN 0 AND 9),
    escalated_at timestamptz NOT NULL,
    PRIMARY KEY (complaint_id, due_at, level)
);
