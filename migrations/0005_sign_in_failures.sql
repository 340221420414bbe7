-- Sign-in throttling (DESIGN section 6): one row per failed (or still unverified) sign-in attempt,
-- counted per account and per client address over a sliding window.
--
-- A row per attempt rather than a counter per subject: the window slides exactly (a failure
-- counts for the window after it, no sooner or later), the growing delay is read from the same
-- rows, and inserting never contends on a hot counter row. Rows are few by construction: a
-- throttled attempt writes nothing, and the reaper deletes rows older than the window.
--
-- `subject` is the SHA-256 of the lower-cased username or of the address (network), never the
-- value itself: people sometimes type their password into the username field.
CREATE TABLE sign_in_failures (
    id        BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope     TEXT        NOT NULL CHECK (scope IN ('account', 'ip')),
    subject   BYTEA       NOT NULL CHECK (length(subject) = 32),
    failed_at TIMESTAMPTZ NOT NULL
);

-- The throttle counts a subject's recent failures; the reaper walks rows by age.
CREATE INDEX sign_in_failures_subject ON sign_in_failures (scope, subject, failed_at);
CREATE INDEX sign_in_failures_failed_at ON sign_in_failures (failed_at);
