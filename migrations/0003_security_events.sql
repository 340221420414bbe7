-- Append-only security activity, written in the same transaction as the change it records.
CREATE TABLE security_events (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              TEXT        NOT NULL,
    session_public_id UUID,                         -- the device the event is about
    actor_public_id   UUID,                         -- the device that caused it, when another
    ip                TEXT        NOT NULL,
    user_agent        TEXT        NOT NULL,
    detail            TEXT        NOT NULL DEFAULT '',
    occurred_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX security_events_user ON security_events (user_id, occurred_at DESC, id DESC);
