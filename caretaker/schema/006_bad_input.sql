-- Bad input that no longer hurts: scan_id is a scan's identity whatever its time, and a
-- redelivered dead letter is counted on its first row instead of written again.

-- The scans hypertable's unique key must include time, so a scan_id sent again with another
-- timestamp would be a second row. This table makes the scan_id alone unique: ingest writes
-- it in the same statement as the scan and stores only the scans whose id was new.
CREATE TABLE scan_ids (
    scan_id uuid PRIMARY KEY,
    time    timestamptz NOT NULL  -- the stored scan's time; retention prunes by it
);
INSERT INTO scan_ids (scan_id, time)
SELECT DISTINCT ON (scan_id) scan_id, time FROM scans ORDER BY scan_id, time;
CREATE INDEX scan_ids_time_idx ON scan_ids (time);

-- Dead letters get a natural key: where from, which topic, which bytes, which array item.
-- Before the key exists, repeated rows are merged into their first one.
ALTER TABLE dead_letters
    ADD COLUMN item             integer,  -- index of the refused array item; null: the message
    ADD COLUMN payload_hash     bytea GENERATED ALWAYS AS (sha256(payload)) STORED,
    ADD COLUMN size             integer GENERATED ALWAYS AS (octet_length(payload)) STORED,
    ADD COLUMN count            bigint NOT NULL DEFAULT 1,  -- times received
    ADD COLUMN last_received_at timestamptz;
UPDATE dead_letters SET last_received_at = received_at;
ALTER TABLE dead_letters ALTER COLUMN last_received_at SET NOT NULL,
                         ALTER COLUMN last_received_at SET DEFAULT now();

WITH groups AS (
    SELECT min(id) AS keep, count(*) AS n, max(received_at) AS last
    FROM dead_letters GROUP BY source, topic, payload_hash, item HAVING count(*) > 1)
UPDATE dead_letters d SET count = g.n, last_received_at = g.last
FROM groups g WHERE d.id = g.keep;
DELETE FROM dead_letters d USING dead_letters k
WHERE k.source = d.source AND k.topic = d.topic AND k.payload_hash = d.payload_hash
  AND k.item IS NOT DISTINCT FROM d.item AND k.id < d.id;

CREATE UNIQUE INDEX dead_letters_key ON dead_letters (source, topic, payload_hash, item)
    NULLS NOT DISTINCT;
CREATE INDEX dead_letters_last_received_idx ON dead_letters (last_received_at, id);
