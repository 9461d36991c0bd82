-- Equipment rules, their evaluation state, alarms, maintenance windows, fault work orders,
-- escalations and the outbound webhook outbox.

-- A rule belongs to a site; it applies to one device, to every device of a type, or
-- (neither set) to every device of the site.
CREATE TABLE rules (
    site_id     ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id          ident NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('threshold', 'count', 'offline', 'rate')),
    -- the telemetry metric the rule reads; null for offline rules (the ingest reads
    -- SELECT DISTINCT metric FROM rules WHERE enabled AND metric IS NOT NULL)
    metric      text,
    enabled     boolean NOT NULL DEFAULT true,
    severity    text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    device_type ident,
    device_id   ident,
    -- kind parameters: op, threshold, clear, for, clear_for, count, clear_count, window, timeout, lwt
    params      jsonb NOT NULL DEFAULT '{}',
    -- alarms of this rule mute these rules' alarms while active: {"rules": [...]|"*", "scope": "site"|"device"}
    inhibits    jsonb,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id),
    CHECK ((kind = 'offline') = (metric IS NULL))
);
CREATE INDEX rules_metric_idx ON rules (site_id, metric) WHERE enabled;

-- Evaluation state of one rule for one device; rows exist only while not idle.
CREATE TABLE rule_state (
    site_id    text NOT NULL,
    rule_id    text NOT NULL,
    device_id  text NOT NULL,
    state      jsonb NOT NULL,
    firing     boolean NOT NULL DEFAULT false,
    -- when the clock must look at this state again without a new reading (hold time ends)
    due_at     timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, rule_id, device_id)
);
CREATE INDEX rule_state_due_idx ON rule_state (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE maintenance_windows (
    site_id    ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    id         ident NOT NULL,
    device_id  ident,             -- null: the whole site
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, id),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_time_idx ON maintenance_windows (site_id, ends_at);

CREATE TABLE alarms (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         text NOT NULL,
    device_id       text NOT NULL,
    rule_id         text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    state           text NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'acknowledged', 'cleared')),
    message         text NOT NULL,
    metric          text,
    first_value     double precision,
    last_value      double precision,
    count           integer NOT NULL DEFAULT 1,
    raised_at       timestamptz NOT NULL,
    last_at         timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    cleared_at      timestamptz,
    cleared_by      text,
    -- why the alarm opened no work order: 'maintenance:<window id>' or 'inhibited:<alarm id>'
    suppressed_by   text,
    -- when the suppression ended while the alarm was still active (its ticket opened then)
    suppression_ended_at timestamptz,
    work_order_id   bigint
);
-- The dedup stage: one alarm per (device, rule) that is not cleared, whoever raises it.
CREATE UNIQUE INDEX alarms_one_active_idx ON alarms (site_id, device_id, rule_id)
    WHERE state <> 'cleared';
CREATE INDEX alarms_site_time_idx ON alarms (site_id, raised_at DESC);

CREATE TABLE alarm_history (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id bigint NOT NULL REFERENCES alarms ON DELETE CASCADE,
    at       timestamptz NOT NULL,
    action   text NOT NULL,  -- raised, retriggered, acknowledged, cleared, suppressed, unsuppressed
    actor    text NOT NULL,
    note     text
);
CREATE INDEX alarm_history_alarm_idx ON alarm_history (alarm_id, id);

-- work_order_policy section of the site configuration (deadlines, repeat period, webhook).
CREATE TABLE work_order_policies (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    policy     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE work_orders (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id           text NOT NULL,
    device_id         text,
    rule_id           text,
    alarm_id          bigint,
    source            text NOT NULL CHECK (source IN ('alarm', 'inspection', 'manual')),
    source_ref        text,
    severity          text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    priority          smallint NOT NULL,
    title             text NOT NULL,
    description       text NOT NULL DEFAULT '',
    state             text NOT NULL DEFAULT 'open' CHECK (state IN
                      ('open', 'acknowledged', 'in_progress', 'resolved', 'closed', 'cancelled')),
    assignee          text,
    opened_at         timestamptz NOT NULL,
    respond_by        timestamptz NOT NULL,
    resolve_by        timestamptz NOT NULL,
    acknowledged_at   timestamptz,
    started_at        timestamptz,
    resolved_at       timestamptz,
    closed_at         timestamptz,
    cancelled_at      timestamptz,
    overdue           boolean NOT NULL DEFAULT false,
    alarm_cleared_at  timestamptz,
    repeat_of         bigint REFERENCES work_orders,
    repeat_count      integer NOT NULL DEFAULT 0,
    followup_contact  text,
    followup_result   text,
    satisfaction      smallint CHECK (satisfaction BETWEEN 1 AND 5),
    updated_at        timestamptz NOT NULL
);
CREATE INDEX work_orders_site_idx ON work_orders (site_id, opened_at DESC);
CREATE INDEX work_orders_device_idx ON work_orders (site_id, device_id, rule_id, opened_at DESC);
CREATE INDEX work_orders_live_idx ON work_orders (resolve_by)
    WHERE state IN ('open', 'acknowledged', 'in_progress');

-- Every fault (alarm, inspection finding) a ticket answers: makes opening idempotent and
-- shows the repeat faults linked to a ticket.
CREATE TABLE work_order_refs (
    source        text NOT NULL,
    source_ref    text NOT NULL,
    work_order_id bigint NOT NULL REFERENCES work_orders ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    PRIMARY KEY (source, source_ref)
);
CREATE INDEX work_order_refs_wo_idx ON work_order_refs (work_order_id);

CREATE TABLE work_order_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id bigint NOT NULL REFERENCES work_orders ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    action        text NOT NULL,
    from_state    text,
    to_state      text,
    actor         text NOT NULL,
    note          text
);
CREATE INDEX work_order_history_wo_idx ON work_order_history (work_order_id, id);

-- One escalation per ticket and passed deadline, ever (a reopened ticket has new deadlines).
CREATE TABLE work_order_escalations (
    work_order_id bigint NOT NULL REFERENCES work_orders ON DELETE CASCADE,
    deadline      text NOT NULL CHECK (deadline IN ('respond', 'resolve')),
    due_at        timestamptz NOT NULL,
    escalated_at  timestamptz NOT NULL,
    PRIMARY KEY (work_order_id, deadline, due_at)
);

-- Outbound notifications, written in the transaction that causes them and delivered
-- (with retries and back-off) by the rules worker, so a restart loses none.
CREATE TABLE webhook_outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url           text NOT NULL,
    event         text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL,
    delivered_at  timestamptz,
    failed_at     timestamptz,
    last_error    text
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
