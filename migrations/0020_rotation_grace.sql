-- The token a session rotated away from (confirmation, password change), kept for a few seconds so a
-- request the browser sent before it received the new cookie is recognised as the same session: a
-- sign-out then ends the session, and no other request clears the new cookie. Only the SHA-256 of
-- the old token is kept, like the key itself, and it is accepted only while previous_key_until is
-- in the future (the next rotation replaces both).
ALTER TABLE sessions ADD COLUMN previous_key bytea, ADD COLUMN previous_key_until timestamptz,
    ADD CONSTRAINT sessions_previous_key_until CHECK ((previous_key IS NULL) = (previous_key_until IS NULL));

-- Looked up only when no session has the presented token as its key.
CREATE INDEX sessions_previous_key ON sessions (previous_key) WHERE previous_key IS NOT NULL;
