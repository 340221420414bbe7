-- Anomaly detection (README: "Anomalies"): what it keeps, and the codes it writes.
--
-- A session used from two networks by turns within minutes is a cookie in two places, the
-- owner's and a copy. A change of the watched fingerprint (the network) is written by one
-- statement that also keeps the network before it and counts quick returns to it, and at the
-- limit tombstones the session, so the request path needs no statement of its own to notice.
ALTER TABLE sessions
    ADD COLUMN previous_watch   BYTEA,                     -- the watched fingerprint before the latest change
    ADD COLUMN watch_changed_at TIMESTAMPTZ,               -- when it last changed
    ADD COLUMN network_returns  INTEGER NOT NULL DEFAULT 0; -- back to the network just left, each within the window

-- The reason such a session ends with (`session::Reason::NetworkAlternation`), and the events the
-- three detections record (`events::EventKind`), added to the lists of migrations/0013 and 0012.
ALTER TABLE sessions
    DROP CONSTRAINT sessions_revoke_reason_check,
    ADD CONSTRAINT sessions_revoke_reason_check CHECK (revoke_reason IN (
        'login_required', 'signed_out', 'idle_timeout', 'session_expired', 'fingerprint_mismatch',
        'revoked', 'password_changed', 'session_limit', 'bound_cookie_expired',
        'network_alternation'));
ALTER TABLE security_events
    DROP CONSTRAINT security_events_kind_check,
    ADD CONSTRAINT security_events_kind_check CHECK (kind IN (
        'sign_in', 'sign_in_failed', 'sign_out', 'idle_timeout', 'session_expired',
        'fingerprint_mismatch', 'network_changed', 'registered', 'new_device', 'session_revoked',
        'session_limit', 'password_changed', 'confirmed', 'confirm_failed', 'account_secured',
        'account_disabled', 'account_enabled', 'sessions_revoked_by_admin', 'api_token_issued',
        'api_sign_out', 'refresh_reuse', 'session_bound', 'binding_proof_refused',
        'network_alternation', 'refresh_too_fast', 'suspicious_sign_in'));
