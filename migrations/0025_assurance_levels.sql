-- Assurance levels at work (docs/passkeys.md): each level's own timeouts in the lookup's
-- write, a confirmation with a passkey, and the level each confirmation was made at.

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

-- The lookup's occasional write of last-seen (migration 0018), now with the `aal2` window: a
-- session at `aal2` is touched while inside its level's idle timeout and lifetime
-- (`aal2_seen_after`, `aal2_created_after`) rather than `aal1`'s (`seen_after`); an
-- administrator's window still applies on top of either. Nothing else changes.
DROP FUNCTION touch_session(bytea, timestamptz, text, timestamptz, timestamptz, timestamptz, timestamptz);

CREATE FUNCTION touch_session(
    session_key bytea, seen_at timestamptz, session_kind text, seen_before timestamptz,
    seen_after timestamptz, aal2_seen_after timestamptz, aal2_created_after timestamptz,
    admin_seen_after timestamptz, admin_created_after timestamptz
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    UPDATE sessions s SET last_seen_at = seen_at
    FROM users u
    WHERE s.key = session_key AND u.id = s.user_id AND s.kind = session_kind AND s.revoked_at IS NULL
      AND s.expires_at > seen_at AND (s.access_expires_at IS NULL OR s.access_expires_at > seen_at)
      AND (s.bound_until IS NULL OR s.bound_until > seen_at)
      AND s.last_seen_at <= seen_before
      AND (seen_after IS NULL OR s.aal <> 'aal1' OR s.last_seen_at > seen_after)
      AND (aal2_seen_after IS NULL OR s.aal <> 'aal2'
           OR (s.last_seen_at > aal2_seen_after AND s.created_at > aal2_created_after))
      AND (admin_seen_after IS NULL OR u.role <> 'admin'
           OR (s.last_seen_at > admin_seen_after AND s.created_at > admin_created_after));
    RETURN FOUND;
END;
$$;
