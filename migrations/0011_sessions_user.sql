-- Every session row of a user, live or not. Sign-in asks whether the account has rows at all and
-- whether any has this browser ("new device?"), and deleting a user cascades to its rows: without
-- this index each of those scans the whole table, so a sign-in grew slower as rows piled up
-- (two sequential scans per sign-in at 1,000,000 rows). `sessions_user_live` cannot serve them:
-- it holds live rows only.
CREATE INDEX sessions_user ON sessions (user_id);
