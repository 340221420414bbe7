-- Security event kinds are `events::EventKind`'s codes, and only those: a row the app cannot
-- name would otherwise be dropped silently from /account. Text with a CHECK rather than an enum
-- type: a new kind is a new constraint in one transaction (an enum value can be added but never
-- removed, and not used in the transaction that adds it), and plain SQL keeps reading the column
-- as text. tests/integration/codes.rs fails when this list and the Rust enum disagree.
--
-- Every existing row passes: the app has only ever written these codes.
ALTER TABLE security_events
    ADD CONSTRAINT security_events_kind_check CHECK (kind IN (
        'sign_in', 'sign_in_failed', 'sign_out', 'idle_timeout', 'session_expired',
        'fingerprint_mismatch', 'network_changed', 'registered', 'new_device', 'session_revoked',
        'session_limit', 'password_changed', 'confirmed', 'confirm_failed', 'account_secured',
        'account_disabled', 'account_enabled', 'sessions_revoked_by_admin', 'api_token_issued',
        'api_sign_out', 'refresh_reuse', 'session_bound', 'binding_proof_refused'));
