-- The per-request lookup is a plain SELECT again, and its two occasional writes (last-seen, a new
-- device-binding offer) are statements of their own in crates/core/src/session/store.rs, sent only
-- when due: the functions of migrations 0017, 0018 and 0025, which let those writes share the
-- lookup's statement, have no caller left.
DROP FUNCTION touch_session(bytea, timestamptz, text, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz);
DROP FUNCTION offer_dbsc_challenge(bytea, text, timestamptz, text, timestamptz);
