-- Security activity a stranger can cause at will is counted, not written a row each
-- (README, "Threats"): a refused DBSC proof needs only a session's public id. Such an event is
-- one row per session and kind and window (`counted_from`, the window's start), whose
-- `repeats` goes up with each occurrence; every other event keeps `counted_from` NULL and
-- `repeats` 1.
ALTER TABLE security_events
    ADD COLUMN repeats      INTEGER NOT NULL DEFAULT 1 CHECK (repeats >= 1),
    ADD COLUMN counted_from TIMESTAMPTZ;

CREATE UNIQUE INDEX security_events_counted ON security_events (session_public_id, kind, counted_from)
    WHERE counted_from IS NOT NULL;

-- The account page lists a flagged event until the owner acts on it, however much came after:
-- it looks them up by user without walking the user's whole activity.
CREATE INDEX security_events_flagged ON security_events (user_id, id) WHERE kind = 'suspicious_sign_in';
