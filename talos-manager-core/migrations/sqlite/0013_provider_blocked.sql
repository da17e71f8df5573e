-- Until when Robot blocks the client address (403 BLOCKED, 10 minutes after three failed
-- logins). The periodic sync sends no request for the account until then, or until its
-- credentials change (updating the secret clears it). NULL when not blocked.
-- Keep in step with ../postgres/0013_provider_blocked.sql.
ALTER TABLE provider_accounts ADD COLUMN blocked_until TEXT;
