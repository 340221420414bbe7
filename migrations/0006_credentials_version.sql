-- The credentials version: a password check proves something only while the account's credentials
-- are still what it checked. A password change, a disable and "sign out everywhere" bump it, under
-- the user's row lock; a sign-in commits its session or API token family only if the version it
-- read with the password hash is still current and the account still enabled, checked under the
-- same lock (`users::store::lock_if_current`). So a sign-in racing such a change either commits
-- first (and the change ends what it created) or finds the version moved on and creates nothing.
ALTER TABLE users ADD COLUMN credentials_version BIGINT NOT NULL DEFAULT 0;
