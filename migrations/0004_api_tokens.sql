-- API token families (the token API of DESIGN section 7). One sessions row per family, so a
-- family is listed and revoked on /account like any device: `key` is the SHA-256 of the current
-- access token, `expires_at` the family's absolute expiry, which refreshing never extends.
ALTER TABLE sessions
    ADD COLUMN generation        INTEGER,      -- bumped by every refresh: the compare-and-swap counter
    ADD COLUMN access_expires_at TIMESTAMPTZ,  -- when the current access token stops working
    ADD CONSTRAINT sessions_api_columns
        CHECK ((kind = 'api') = (generation IS NOT NULL AND access_expires_at IS NOT NULL));

-- Every refresh token a family was ever given, by SHA-256. A used one stays (with `used_at`) until
-- the reaper deletes its family, so presenting it again is recognised as reuse: the sign of a
-- stolen token.
CREATE TABLE refresh_tokens (
    key        BYTEA       PRIMARY KEY CHECK (length(key) = 32),
    family     UUID        NOT NULL REFERENCES sessions (public_id) ON DELETE CASCADE,
    generation INTEGER     NOT NULL,           -- the family generation it refreshes from
    issued_at  TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ                     -- set once, by the refresh that consumed it
);

-- The reaper's cascade finds a family's tokens by this index.
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
