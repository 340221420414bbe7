-- No two accounts whose names look alike: `aIice` (capital I), `a1ice` and `alice.` cannot be
-- registered beside `alice`. Each account keeps what its name looks like (`Username::look_alike_key`
-- in src/users/username.rs) under a unique index, so of two sign-ups racing for look-alike names
-- exactly one commits.
ALTER TABLE users ADD COLUMN look_alike_key TEXT;

-- The key of every existing account. Names are ASCII (`Username::parse`), where the Unicode TR39
-- skeleton maps `0` to `O`, `1` and `I` to `l` and `m` to `rn`, and nothing else; `.`, `_` and
-- `-` are dropped; then lower case (after the skeleton: `I` is gone by then, so no locale's
-- casing of it matters).
UPDATE users
SET look_alike_key = lower(replace(translate(username, '01I._-', 'Oll'), 'm', 'rn'));

-- Accounts that already look like an older one keep their names, and no key: the oldest holds
-- it, and refuses every new look-alike.
UPDATE users AS newer
SET look_alike_key = NULL
WHERE EXISTS (
    SELECT 1 FROM users AS older
    WHERE older.look_alike_key = newer.look_alike_key AND older.id < newer.id
);

CREATE UNIQUE INDEX users_look_alike_key ON users (look_alike_key);
