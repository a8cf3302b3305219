-- Named queries: service tokens for the reports API (sql/0014). Only hashes are stored.

-- name: tokens_owner_known
SELECT 1 FROM subscriptions WHERE owner = %(owner)s AND deleted_at IS NULL LIMIT 1;

-- name: tokens_insert
INSERT INTO service_tokens (owner, token_hash, prefix)
VALUES (%(owner)s, %(token_hash)s, %(prefix)s)
RETURNING token_id, owner, prefix, created_at;

-- name: tokens_authenticate
UPDATE service_tokens SET last_used_at = now()
WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
RETURNING owner;

-- name: tokens_list
SELECT owner, prefix, created_at, last_used_at, revoked_at FROM service_tokens
WHERE (%(owner)s::text IS NULL OR owner = %(owner)s::text)
ORDER BY owner, created_at;

-- name: tokens_revoke
UPDATE service_tokens SET revoked_at = now()
WHERE prefix = %(prefix)s AND revoked_at IS NULL
RETURNING owner, prefix;
