-- A tombstone's reason is one of `session::Reason`'s codes (the `/login?reason=` contract), and
-- only those, checked as migrations/0012 checks event kinds and for the same reasons.
--
-- Every existing row passes: the app has only ever written these codes.
ALTER TABLE sessions
    ADD CONSTRAINT sessions_revoke_reason_check CHECK (revoke_reason IN (
        'login_required', 'signed_out', 'idle_timeout', 'session_expired', 'fingerprint_mismatch',
        'revoked', 'password_changed', 'session_limit', 'bound_cookie_expired'));
