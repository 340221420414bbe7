-- Step-up (docs/passkeys.md): a confirmation with a passkey, and the level each confirmation
-- was made at.

-- The level of the confirmation that `confirmed_until` records: `aal1` the password, `aal2` a
-- passkey with user verification. Written with `confirmed_until`, read only while it is in force.
ALTER TABLE sessions ADD COLUMN confirmed_aal TEXT CHECK (confirmed_aal IN ('aal1', 'aal2'));

-- A confirmation with a passkey is a ceremony of its own, owned like a registration by the
-- session that asked.
ALTER TABLE passkey_ceremonies
    DROP CONSTRAINT passkey_ceremonies_kind_check,
    DROP CONSTRAINT passkey_ceremonies_check,
    ADD CONSTRAINT passkey_ceremonies_kind_check CHECK (kind IN ('register', 'sign_in', 'confirm')),
    ADD CONSTRAINT passkey_ceremonies_check
        CHECK ((kind IN ('register', 'confirm')) = (session_public_id IS NOT NULL));

ALTER TABLE security_events
    DROP CONSTRAINT security_events_kind_check,
    ADD CONSTRAINT security_events_kind_check CHECK (kind IN (
        'sign_in', 'sign_in_failed', 'sign_out', 'idle_timeout', 'session_expired',
        'fingerprint_mismatch', 'network_changed', 'registered', 'new_device', 'session_revoked',
        'session_limit', 'password_changed', 'confirmed', 'confirm_failed', 'account_secured',
        'account_disabled', 'account_enabled', 'sessions_revoked_by_admin', 'api_token_issued',
        'api_sign_out', 'refresh_reuse', 'session_bound', 'binding_proof_refused',
        'network_alternation', 'refresh_too_fast', 'suspicious_sign_in',
        'passkey_sign_in', 'passkey_added', 'passkey_removed', 'passkey_confirmed'));
