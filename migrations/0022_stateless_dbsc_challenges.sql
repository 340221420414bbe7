-- DBSC refresh challenges are no longer stored (README, "Device-bound sessions"). Anyone who
-- knows a session's public id can ask for them, so a table of outstanding challenges either
-- grows without bound or, capped, lets a stranger push out the one the owner's browser is
-- signing. A challenge now carries its own issue time and an HMAC over it, the session and the
-- token it was issued under, with the key below: asking for one writes nothing, and any number
-- of them leave the owner's valid.
DROP TABLE dbsc_challenges;

-- The HMAC key, shared by every app instance through the database. The app writes it once, from
-- the operating system's random number generator, when the first challenge needs it; deleting
-- the row replaces it, and only challenges outstanding at that moment stop working.
CREATE TABLE dbsc_challenge_key (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    key      BYTEA   NOT NULL CHECK (length(key) = 32)
);
