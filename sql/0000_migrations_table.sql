-- 0000: the table that records which migrations ran.
-- Every migration in sql/ is idempotent and records itself at its end, so the files can be
-- applied by `otf db migrate` or by plain psql, in name order, as often as you like:
--   for f in sql/0*.sql; do psql "$OTF_DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f "$f"; done
CREATE TABLE IF NOT EXISTS otf_schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO otf_schema_migrations (version, name)
VALUES (0, '0000_migrations_table') ON CONFLICT (version) DO NOTHING;
