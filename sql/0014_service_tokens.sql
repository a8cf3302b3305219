-- 0014: tokens that let a service report over HTTP (`otf api`) under its own owner name.
--
-- Only a SHA-256 hash of each token is kept: tokens are 256 random bits made by the project
-- (`otf services token create`), not passwords people choose, so a fast hash is as strong as a
-- slow KDF against guessing and keeps each request's check cheap. `prefix` is the token's first
-- characters, not secret, for people to tell tokens apart (`otf services token list|revoke`).

CREATE TABLE IF NOT EXISTS service_tokens (
    token_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner         text NOT NULL
                  CONSTRAINT service_tokens_owner_format CHECK (owner ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    token_hash    bytea NOT NULL
                  CONSTRAINT service_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    prefix        text NOT NULL
                  CONSTRAINT service_tokens_prefix_format CHECK (prefix ~ '^[A-Za-z0-9_-]{8,20}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS service_tokens_hash_idx ON service_tokens (token_hash);
CREATE UNIQUE INDEX IF NOT EXISTS service_tokens_prefix_idx ON service_tokens (prefix);

INSERT INTO otf_schema_migrations (version, name)
VALUES (14, '0014_service_tokens') ON CONFLICT (version) DO NOTHING;
