-- The two writes the per-request session lookup makes now and then, as functions the lookup's
-- SELECT calls only when they are due (a CASE never evaluates a branch it does not take).
--
-- Why functions: a data-modifying CTE is planned and started on every execution even when it writes
-- nothing, and that made the lookup cost PostgreSQL half as much again as a plain SELECT (pgbench,
-- same rows: about 19k against 28k lookups a second on 2 cores). A function call in an untaken CASE
-- branch costs nothing, so the lookup stays one statement, one round trip and one implicit
-- transaction, at the price of a plain SELECT.
--
-- Each UPDATE runs with a snapshot of its own and re-checks every condition on the newest row: if
-- the session was revoked, rotated, bound or written by a concurrent request since the SELECT read
-- it, nothing is written and the function returns NULL. Neither ever brings a revoked session back.
-- The bodies are SQL-standard (BEGIN ATOMIC): parsed now, with their dependencies on the columns
-- recorded, so a migration cannot break them unnoticed.

-- Last seen, at most once per touch interval: for a session of `session_kind` that is neither
-- revoked nor past its absolute expiry (nor its access token's, nor a device-bound token's
-- deadline: a copied cookie must not keep a session alive), last seen at or before `seen_before`
-- and, when given, after `seen_after` (not idle past its timeout: such a session is ended, not
-- touched) and, for an account whose role is `admin` at that moment, last seen after
-- `admin_seen_after` and signed in after `admin_created_after` (the administrator's shorter
-- limits).
CREATE FUNCTION touch_session(
    session_key bytea, seen_at timestamptz, session_kind text, seen_before timestamptz,
    seen_after timestamptz, admin_seen_after timestamptz, admin_created_after timestamptz
) RETURNS boolean
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    UPDATE sessions s SET last_seen_at = seen_at
    FROM users u
    WHERE s.key = session_key AND u.id = s.user_id AND s.kind = session_kind AND s.revoked_at IS NULL
      AND s.expires_at > seen_at AND (s.access_expires_at IS NULL OR s.access_expires_at > seen_at)
      AND (s.bound_until IS NULL OR s.bound_until > seen_at)
      AND s.last_seen_at <= seen_before AND (seen_after IS NULL OR s.last_seen_at > seen_after)
      AND (admin_seen_after IS NULL OR u.role <> 'admin'
           OR (s.last_seen_at > admin_seen_after AND s.created_at > admin_created_after))
    RETURNING true;
END;

-- A new device-binding registration challenge on offer for a live, unbound session of
-- `session_kind` whose offer is missing or stale (offered at or before `stale_from`, or after
-- `offered_at`: the clock went back). Returns the challenge now on offer; NULL when a concurrent
-- request renewed the offer first, or the session ended or was bound meanwhile.
CREATE FUNCTION offer_dbsc_challenge(
    session_key bytea, challenge text, offered_at timestamptz, session_kind text, stale_from timestamptz
) RETURNS text
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    UPDATE sessions s SET dbsc_offer = challenge, dbsc_offered_at = offered_at
    WHERE s.key = session_key AND s.kind = session_kind AND s.revoked_at IS NULL AND s.dbsc_key IS NULL
      AND (s.dbsc_offered_at IS NULL OR s.dbsc_offered_at <= stale_from OR s.dbsc_offered_at > offered_at)
    RETURNING s.dbsc_offer;
END;
