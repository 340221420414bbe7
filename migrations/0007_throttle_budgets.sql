-- Throttling budgets (DESIGN section 15): besides sign-in failures per account ('account') and per
-- client address ('ip'), the same table counts two budgets of their own, none draining another:
--
-- 'session'  wrong passwords given by a signed-in session when its password is checked again
--            (the confirmation, the password change), counted per session, so neither strangers
--            failing to sign in nor a thief guessing on a stolen cookie can lock the owner's own
--            session out of signing the thief out;
-- 'sign_up'  sign-ups per client address (network), every one let through, whether or not its
--            username was free: each costs an argon2 hash.
--
-- The rows keep their shape: one per counted event, `subject` a SHA-256, `failed_at` the moment
-- it was counted, from the app's clock.
ALTER TABLE sign_in_failures
    DROP CONSTRAINT sign_in_failures_scope_check,
    ADD CONSTRAINT sign_in_failures_scope_check CHECK (scope IN ('account', 'ip', 'session', 'sign_up'));
