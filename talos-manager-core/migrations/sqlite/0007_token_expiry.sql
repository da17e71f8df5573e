-- API tokens can carry an expiry: after `expires_at` the token authenticates nothing (it is
-- still listed until revoked). NULL: the token does not expire.
-- Keep in step with ../postgres/0007_token_expiry.sql.

ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
