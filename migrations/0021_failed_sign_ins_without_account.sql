-- A refused sign-in for a name no account has is recorded as one for a real account is: by the
-- same statement, writing one row, only without an account. Before, the statement wrote a row
-- for a real account and nothing for an unknown name, and the time to the answer told them
-- apart (README, "Threats"). Only a failed sign-in may lack an account.
ALTER TABLE security_events
    ALTER COLUMN user_id DROP NOT NULL,
    ADD CONSTRAINT security_events_account CHECK (user_id IS NOT NULL OR kind = 'sign_in_failed');
