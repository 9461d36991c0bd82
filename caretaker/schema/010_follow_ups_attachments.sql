-- Follow-up visits (回访): the site's policy, spot-check notes; attachments (photos before and
-- after a repair) stored with their ticket (issue 10).

-- follow_up_policy section of the site configuration (rates per category, deadlines, retries).
CREATE TABLE follow_up_policies (
    site_id    ident PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    policy     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- 三级抽查: what the supervisor found when checking a visit.
ALTER TABLE follow_ups
    ADD COLUMN check_note text,
    ADD CONSTRAINT follow_ups_check_result_check
        CHECK (check_result IN ('confirmed', 'not_confirmed')),
    ADD CONSTRAINT follow_ups_checked_check
        CHECK ((checked_at IS NULL) = (check_result IS NULL));
-- A site's visits to spot-check, newest first.
CREATE INDEX follow_ups_unchecked_idx ON follow_ups (site_id, at DESC) WHERE checked_at IS NULL;
-- The queue ranks a month's work orders of a site and category to pick a share of them.
CREATE INDEX work_orders_category_opened_idx ON work_orders (site_id, category, opened_at)
    INCLUDE (source);

CREATE TABLE attachments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       ident NOT NULL REFERENCES sites ON DELETE CASCADE,
    work_order_id bigint REFERENCES work_orders ON DELETE CASCADE,
    complaint_id  bigint REFERENCES complaints ON DELETE CASCADE,
    phase         text NOT NULL CHECK (phase IN ('before', 'after', 'other')),
    filename      text NOT NULL,
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    size          integer NOT NULL CHECK (size > 0),
    sha256        text NOT NULL,
    data          bytea NOT NULL,
    uploaded_by   text NOT NULL,
    uploaded_at   timestamptz NOT NULL,
    CHECK ((work_order_id IS NULL) <> (complaint_id IS NULL)),
    CHECK (octet_length(data) = size)
);
-- Photos are compressed already: store them out of line without trying to compress again.
ALTER TABLE attachments ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX attachments_wo_idx ON attachments (work_order_id, id) WHERE work_order_id IS NOT NULL;
CREATE INDEX attachments_complaint_idx ON attachments (complaint_id, id)
    WHERE complaint_id IS NOT NULL;
