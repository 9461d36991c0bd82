-- People's logins (issue 12): users with argon2id password hashes, their sessions, and the
-- failed-login counters of client addresses and of user names that name no user.

CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash   text NOT NULL,          -- argon2id, PHC string; never the password
    role            text NOT NULL
        CHECK (role IN ('admin', 'supervisor', 'engineer', 'frontdesk', 'guard', 'viewer')),
    site_id         ident REFERENCES sites ON DELETE CASCADE,  -- null: every site
    guard_id        ident,                  -- a guard user's guard id
    language        text CHECK (language IN ('zh-CN', 'en')),  -- null: the site's
    disabled        boolean NOT NULL DEFAULT false,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    last_failed_at  timestamptz,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz,
    CHECK (guard_id IS NULL OR role = 'guard')
);
-- "Demo" and "demo" are one user.
CREATE UNIQUE INDEX users_name_idx ON users (lower(name));

CREATE TABLE sessions (
    id_hash      text PRIMARY KEY,          -- sha256 of the cookie's value; never the value
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_token   text NOT NULL,             -- unsafe requests on this session must carry it
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,      -- idle timeout counts from here
    expires_at   timestamptz NOT NULL       -- absolute timeout
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Failed logins of a client address ('address') or of a user name that is no user ('name'),
-- so an unknown name is locked out exactly as a known one is (the same answer for both).
CREATE TABLE login_throttle (
    kind            text NOT NULL CHECK (kind IN ('address', 'name')),
    key             text NOT NULL,
    failures        integer NOT NULL CHECK (failures >= 0),
    last_failed_at  timestamptz NOT NULL,
    locked_until    timestamptz,
    PRIMARY KEY (kind, key)
);
CREATE INDEX login_throttle_age_idx ON login_throttle (last_failed_at);
