-- Tickets as a service centre runs them (issue 10): manual tickets (报事报修), complaints (投诉)
-- and follow-up visits (回访) as records of their own. The KPIs read these tables.

-- The front desk (客服) creates tickets and complaints and makes follow-up calls.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'supervisor', 'engineer', 'frontdesk', 'guard', 'viewer'));

-- A work order is the centre's unit of work, whatever opened it.
ALTER TABLE work_orders DROP CONSTRAINT work_orders_source_check;
ALTER TABLE work_orders ADD CONSTRAINT work_orders_source_check
    CHECK (source IN ('alarm', 'inspection', 'patrol', 'manual', 'complaint'));
ALTER TABLE work_orders
    -- 公区维修, 居家维修 (paid, 有偿服务), 整改 (rectification), 设备 (equipment), 其他
    ADD COLUMN category       text NOT NULL DEFAULT '设备'
        CHECK (category IN ('公区维修', '居家维修', '整改', '设备', '其他')),
    ADD COLUMN urgency        text CHECK (urgency IN ('急修', '零修')),  -- manual tickets
    ADD COLUMN channel        text CHECK (channel IN
        ('phone', 'wechat', 'front_desk', 'console', 'app', 'system')),
    ADD COLUMN reporter_name  text,
    ADD COLUMN reporter_unit  text,  -- unit/room (房号)
    ADD COLUMN reporter_phone text,
    ADD COLUMN zone_id        text,
    ADD COLUMN checkpoint_id  text,
    ADD COLUMN rework_count   integer NOT NULL DEFAULT 0;
UPDATE work_orders SET channel = 'system' WHERE source IN ('alarm', 'inspection');
CREATE INDEX work_orders_category_idx ON work_orders (site_id, category, resolved_at);

-- Complaints (投诉): numbered per site and year (TS-2026-0007), gap-free.
CREATE TABLE complaint_numbers (
    site_id ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    year    integer NOT NULL,
    last    integer NOT NULL,
    PRIMARY KEY (site_id, year)
);

CREATE TABLE complaints (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id           ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    number            text NOT NULL,
    grade             text NOT NULL CHECK (grade IN ('轻微', '一般', '严重')),
    category          text NOT NULL CHECK (category IN ('房屋管理', '设备管理', '秩序管理',
                          '环境管理', '综合服务', '相邻关系', '开发相关', '政府部门移送', '其他')),
    channel           text NOT NULL CHECK (channel IN
                          ('phone', 'wechat', 'front_desk', 'console', 'app', 'letter', 'visit')),
    complainant_name  text,
    complainant_unit  text,
    complainant_phone text,
    description       text NOT NULL,
    -- open → assigned → answered → closed; rework sends an answered one back to be handled
    state             text NOT NULL DEFAULT 'open'
                          CHECK (state IN ('open', 'assigned', 'answered', 'rework', 'closed')),
    team              text,  -- the team it is assigned to
    assignee          text,
    opened_at         timestamptz NOT NULL,
    answer_by         timestamptz NOT NULL,
    answered_at       timestamptz,  -- first answer to the complainant
    answer            text,
    closed_at         timestamptz,
    resolution        text CHECK (resolution IN ('handled', 'invalid')),
    close_reason      text,
    rework_count      integer NOT NULL DEFAULT 0,
    overdue           boolean NOT NULL DEFAULT false,
    work_order_id     bigint REFERENCES work_orders ON DELETE SET NULL,
    created_by        text NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (site_id, number),
    CHECK ((state = 'closed') = (resolution IS NOT NULL))
);
CREATE INDEX complaints_site_idx ON complaints (site_id, opened_at DESC);
CREATE INDEX complaints_due_idx ON complaints (answer_by) WHERE answered_at IS NULL;

CREATE TABLE complaint_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    complaint_id bigint NOT NULL REFERENCES complaints ON DELETE CASCADE,
    at           timestamptz NOT NULL,
    action       text NOT NULL,
    from_state   text,
    to_state     text,
    actor        text NOT NULL,
    note         text
);
CREATE INDEX complaint_history_idx ON complaint_history (complaint_id, id);

-- Follow-up visits (回访): each attempt a record; unreachable is a valid attempt.
CREATE TABLE follow_ups (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id        ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    work_order_id  bigint REFERENCES work_orders ON DELETE CASCADE,
    complaint_id   bigint REFERENCES complaints ON DELETE CASCADE,
    at             timestamptz NOT NULL,
    actor          text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('phone', 'visit', 'app', 'wechat')),
    outcome        text NOT NULL CHECK (outcome IN ('reached', 'unreachable', 'refused')),
    opinion        text,
    satisfaction   smallint CHECK (satisfaction BETWEEN 1 AND 5),
    -- 三级抽查: a supervisor's spot check of this visit
    checked_by     text,
    checked_at     timestamptz,
    check_result   text,
    CHECK ((work_order_id IS NULL) <> (complaint_id IS NULL)),
    CHECK ((outcome = 'reached') = (satisfaction IS NOT NULL))
);
CREATE INDEX follow_ups_wo_idx ON follow_ups (work_order_id, at) WHERE work_order_id IS NOT NULL;
CREATE INDEX follow_ups_complaint_idx ON follow_ups (complaint_id, at)
    WHERE complaint_id IS NOT NULL;
CREATE INDEX follow_ups_site_idx ON follow_ups (site_id, at);

-- The follow-up visit recorded on close before follow-ups were records becomes one.
INSERT INTO follow_ups (site_id, work_order_id, at, actor, channel, outcome, opinion, satisfaction)
SELECT w.site_id, w.id, coalesce(w.closed_at, w.updated_at), 'migrated', 'phone', 'reached',
       concat_ws(': ', w.followup_contact, w.followup_result), w.satisfaction
  FROM work_orders w JOIN sites s ON s.id = w.site_id
 WHERE w.satisfaction IS NOT NULL;
