-- A sensitive action a session asked for while its password confirmation had lapsed ("sign out
-- this device", "sign out all other devices"), kept until the confirmation resumes it: at most
-- one per session, taken (and cleared) by the confirmation in the transaction that rotates the
-- token, so it runs once. The time lets a confirmation ignore one that was abandoned long ago.
ALTER TABLE sessions ADD COLUMN pending_action text, ADD COLUMN pending_action_at timestamptz;
