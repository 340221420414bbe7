-- The lookup's two occasional writes (migration 0017), made cheap. With pgbench calling
-- touch_session on live rows of a 1,000,000-row table, four clients, every call writing, a write
-- took about 500 µs of the server's time; after this migration, about 140 µs. The 1,000 sessions
-- of the benchmark come due within the same tenth of a second, once a minute, so the old cost
-- showed as a stall in whichever run the wave fell in.
--
-- 1. PL/pgSQL bodies. A SQL-language function plans its statement afresh on every call (the plan
--    lives only as long as the statement that calls it), and planning this UPDATE cost more than
--    running it. PL/pgSQL keeps each statement's plan for the life of the connection. The price:
--    PL/pgSQL checks a body's columns when it runs, not when it is created, so a migration that
--    broke one would not fail; the integration tests run both functions.
-- 2. HOT updates. A write that changes no indexed column stores the new row version in the same
--    page and adds no index entries (five, before, each into a 1,000,000-entry index).
--    `sessions_user_live` no longer holds last_seen_at: the device list and the per-user cap sort a
--    user's few live rows themselves. New pages of `sessions` keep 10 % free for the new versions
--    (pages written before this migration fill up as they are).

-- Same conditions, same arguments and same result as migration 0017 (see there).
CREATE OR REPLACE FUNCTION touch_session(
    session_key bytea, seen_at timestamptz, session_kind text, seen_before timestamptz,
    seen_after timestamptz, admin_seen_after timestamptz, admin_created_after timestamptz
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    UPDATE sessions s SET last_seen_at = seen_at
    FROM users u
    WHERE s.key = session_key AND u.id = s.user_id AND s.kind = session_kind AND s.revoked_at IS NULL
      AND s.expires_at > seen_at AND (s.access_expires_at IS NULL OR s.access_expires_at > seen_at)
      AND (s.bound_until IS NULL OR s.bound_until > seen_at)
      AND s.last_seen_at <= seen_before AND (seen_after IS NULL OR s.last_seen_at > seen_after)
      AND (admin_seen_after IS NULL OR u.role <> 'admin'
           OR (s.last_seen_at > admin_seen_after AND s.created_at > admin_created_after));
    RETURN FOUND;
END;
$$;

CREATE OR REPLACE FUNCTION offer_dbsc_challenge(
    session_key bytea, challenge text, offered_at timestamptz, session_kind text, stale_from timestamptz
) RETURNS text
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    on_offer text;
BEGIN
    UPDATE sessions s SET dbsc_offer = challenge, dbsc_offered_at = offered_at
    WHERE s.key = session_key AND s.kind = session_kind AND s.revoked_at IS NULL AND s.dbsc_key IS NULL
      AND (s.dbsc_offered_at IS NULL OR s.dbsc_offered_at <= stale_from OR s.dbsc_offered_at > offered_at)
    RETURNING s.dbsc_offer INTO on_offer;
    RETURN on_offer;
END;
$$;

DROP INDEX sessions_user_live;
CREATE INDEX sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;

ALTER TABLE sessions SET (fillfactor = 90);
