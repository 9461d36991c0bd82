-- MQTT credentials: one per device, guard handheld or service, stored as Mosquitto's own
-- PBKDF2-SHA512 hash ($7$) so the broker's password file is written straight from this table.
CREATE TABLE mqtt_credentials (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9_./-]{1,200}$'),  -- = client id
    kind          text NOT NULL CHECK (kind IN ('device', 'guard', 'service')),
    site_id       ident REFERENCES sites ON DELETE CASCADE,  -- NULL for services
    subject       ident NOT NULL,                   -- device id, guard id, or service role
    password_hash text NOT NULL CHECK (password_hash LIKE '$7$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK ((kind = 'service') = (site_id IS NULL)),
    CHECK (kind <> 'service' OR subject IN ('ingest', 'simulator'))
);
-- One live credential per user name (a device's or guard's name is fixed by its ids); revoked
-- ones stay for the record.
CREATE UNIQUE INDEX mqtt_credentials_live ON mqtt_credentials (username) WHERE revoked_at IS NULL;
