-- API tokens expire, can be revoked by their listed prefix, and record when they were last used.
ALTER TABLE api_tokens
    ADD COLUMN expires_at   timestamptz,   -- null: never (tokens made before this migration)
    ADD COLUMN last_used_at timestamptz,   -- updated at most once a minute per token
    ADD COLUMN prefix       text;          -- first 8 characters after "ct_": not a secret
CREATE INDEX api_tokens_prefix_idx ON api_tokens (prefix);
