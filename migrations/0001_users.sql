-- Accounts. Role and the disabled flag are read on every request, in the same statement
-- that looks the session up, so a demotion or a ban takes effect on the next click.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

-- "Alice" and "alice" are the same account.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
