-- Browser sessions and API token families: one row per signed-in device.
-- The browser holds a random token; this table keeps only its SHA-256, so a leaked
-- table holds no usable token.
CREATE TABLE sessions (
    key               BYTEA       PRIMARY KEY CHECK (length(key) = 32),
    public_id         UUID        NOT NULL UNIQUE,  -- the only id that appears in URLs
    user_id           BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              TEXT        NOT NULL CHECK (kind IN ('browser', 'api')),
    created_at        TIMESTAMPTZ NOT NULL,         -- authentication time
    last_seen_at      TIMESTAMPTZ NOT NULL,         -- written at most once per touch interval
    expires_at        TIMESTAMPTZ NOT NULL,         -- absolute expiry, never extended
    confirmed_until   TIMESTAMPTZ,                  -- privileged ("sudo") mode
    fingerprint_bind  BYTEA       NOT NULL,         -- a change ends the session
    fingerprint_watch BYTEA       NOT NULL,         -- a change is recorded, the session kept
    ip                TEXT        NOT NULL,
    user_agent        TEXT        NOT NULL,
    revoked_at        TIMESTAMPTZ,                  -- tombstone: set once, never cleared
    revoke_reason     TEXT,
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);

-- The device list and the per-user cap read a user's live sessions.
CREATE INDEX sessions_user_live ON sessions (user_id, last_seen_at) WHERE revoked_at IS NULL;
-- The reaper walks rows by absolute expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
