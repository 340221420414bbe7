-- Passkeys (WebAuthn credentials), the ceremonies that make and use them, and the assurance
-- level each session was signed in at (docs/passkeys.md).

-- The user handle a passkey stores and gives back at a username-less sign-in: random, so it
-- says nothing about the account (not its id, not its name).
ALTER TABLE users ADD COLUMN passkey_handle UUID NOT NULL DEFAULT gen_random_uuid() UNIQUE;

-- One row per passkey. `passkey` is webauthn-rs's serialized `Passkey` (public key, counter,
-- flags); `counter` and `last_used_at` are written with it at every sign-in, in the sign-in's
-- transaction, and the update requires the counter it read, so two sign-ins with one
-- assertion cannot both pass.
CREATE TABLE passkeys (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA       NOT NULL UNIQUE,
    name          TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    passkey       JSONB       NOT NULL,
    counter       BIGINT      NOT NULL CHECK (counter >= 0),
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ
);

CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- A registration or sign-in ceremony in progress: the challenge state webauthn-rs needs to
-- check the answer, kept here and never in the browser. A registration belongs to the session
-- that asked (`session_public_id`), a sign-in to the browser that asked (`browser_digest`: a
-- digest of its sealed pre-session cookie). Taken once (deleted as it is read), refused after
-- `expires_at`, and reaped after it.
CREATE TABLE passkey_ceremonies (
    id                UUID        PRIMARY KEY,
    kind              TEXT        NOT NULL CHECK (kind IN ('register', 'sign_in')),
    session_public_id UUID,
    browser_digest    BYTEA,
    state             JSONB       NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'register') = (session_public_id IS NOT NULL)),
    CHECK ((kind = 'sign_in') = (browser_digest IS NOT NULL))
);

CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);

-- NIST SP 800-63B-4's authentication assurance level of the sign-in that made the session:
-- `aal1` a password, `aal2` a passkey with user verification. Nothing lowers or raises it later.
ALTER TABLE sessions ADD COLUMN aal TEXT NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));

ALTER TABLE security_events
    DROP CONSTRAINT security_events_kind_check,
    ADD CONSTRAINT security_events_kind_check CHECK (kind IN (
        'sign_in', 'sign_in_failed', 'sign_out', 'idle_timeout', 'session_expired',
        'fingerprint_mismatch', 'network_changed', 'registered', 'new_device', 'session_revoked',
        'session_limit', 'password_changed', 'confirmed', 'confirm_failed', 'account_secured',
        'account_disabled', 'account_enabled', 'sessions_revoked_by_admin', 'api_token_issued',
        'api_sign_out', 'refresh_reuse', 'session_bound', 'binding_proof_refused',
        'network_alternation', 'refresh_too_fast', 'suspicious_sign_in',
        'passkey_sign_in', 'passkey_added', 'passkey_removed'));
