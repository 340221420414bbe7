-- Device Bound Session Credentials (DBSC, DESIGN section 13): a browser binds its session to a
-- private key it cannot export, and renews its short-lived cookie by signing server challenges.
--
-- The binding lives on the session row, so the per-request lookup reads it in the statement it
-- already runs: `bound_until` is the deadline of the current token, after which the server
-- refuses it even if a thief presents it before the browser has refreshed.
ALTER TABLE sessions
    ADD COLUMN dbsc_key        BYTEA,        -- the bound P-256 public key (SEC1, uncompressed)
    ADD COLUMN bound_until     TIMESTAMPTZ,  -- the current token is refused from this moment
    ADD COLUMN bound_csrf      BYTEA,        -- the forms' CSRF token, stable across DBSC refreshes
    ADD COLUMN dbsc_offer      TEXT,         -- the registration challenge on offer, single use
    ADD COLUMN dbsc_offered_at TIMESTAMPTZ,
    ADD CONSTRAINT sessions_dbsc_binding
        CHECK ((dbsc_key IS NULL) = (bound_until IS NULL) AND (dbsc_key IS NULL) = (bound_csrf IS NULL)
               AND (dbsc_key IS NULL OR length(dbsc_key) = 65) AND (bound_csrf IS NULL OR length(bound_csrf) = 32)),
    ADD CONSTRAINT sessions_dbsc_offer CHECK ((dbsc_offer IS NULL) = (dbsc_offered_at IS NULL));

-- Refresh challenges: several may be outstanding for one session (a signature over an older one
-- can arrive after a newer was issued), each accepted once, only while recent, and only to
-- replace the token it was issued under. In PostgreSQL, so any app instance can check a
-- challenge another issued.
CREATE TABLE dbsc_challenges (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- issue order
    challenge  TEXT        NOT NULL UNIQUE,
    session_id UUID        NOT NULL REFERENCES sessions (public_id) ON DELETE CASCADE,
    -- The session's key (its token's SHA-256) when the challenge was issued: a proof over it may
    -- replace that token only, so of refreshes answering challenges issued together, one wins.
    session_key BYTEA      NOT NULL CHECK (length(session_key) = 32),
    issued_at  TIMESTAMPTZ NOT NULL
);

-- Issuing prunes a session's oldest challenges; the reaper deletes stale ones by age.
CREATE INDEX dbsc_challenges_session ON dbsc_challenges (session_id, id);
CREATE INDEX dbsc_challenges_issued_at ON dbsc_challenges (issued_at);
