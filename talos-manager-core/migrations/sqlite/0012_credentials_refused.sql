-- When the provider last refused a provider account's credentials (401). The periodic sync
-- skips such an account until its credentials change (Robot blocks the client address for
-- every account after three failed logins); updating the secret clears it. NULL when the
-- credentials were accepted, or never refused.
-- Keep in step with ../postgres/0012_credentials_refused.sql.
ALTER TABLE provider_accounts ADD COLUMN credentials_refused_at TEXT;
