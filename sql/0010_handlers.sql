-- 0010: task types that users define (the handler seam).
--
-- * base_url: where a relative url_template is resolved (NULL: the deployment's feed base URL,
--   then the handler's own default, e.g. https://cdn.nba.com).
-- * min/max_poll_interval_seconds: the bounds within which a handler may ask for its next poll
--   sooner or later than poll_interval_seconds (NULL: poll_interval_seconds itself).
-- * spawn: follow-up tasks found in each poll's response (JMESPath items/key/at/params,
--   checked when the type is applied).
-- * url_template no longer needs {key}: a type may poll one URL for any key (a scoreboard of
--   a day named in the task's params, say). Its placeholders ({key}, {params.NAME}) are
--   checked when the type is applied.
ALTER TABLE task_types ADD COLUMN IF NOT EXISTS base_url text;
ALTER TABLE task_types ADD COLUMN IF NOT EXISTS min_poll_interval_seconds double precision;
ALTER TABLE task_types ADD COLUMN IF NOT EXISTS max_poll_interval_seconds double precision;
ALTER TABLE task_types ADD COLUMN IF NOT EXISTS spawn jsonb;

ALTER TABLE task_types DROP CONSTRAINT IF EXISTS task_types_url_has_key;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'task_types_poll_bounds'
                   AND conrelid = 'task_types'::regclass) THEN
        ALTER TABLE task_types ADD CONSTRAINT task_types_poll_bounds CHECK (
            coalesce(min_poll_interval_seconds, poll_interval_seconds) > 0
            AND coalesce(min_poll_interval_seconds, poll_interval_seconds) <= poll_interval_seconds
            AND poll_interval_seconds <= coalesce(max_poll_interval_seconds, poll_interval_seconds));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'task_types_spawn_object'
                   AND conrelid = 'task_types'::regclass) THEN
        ALTER TABLE task_types ADD CONSTRAINT task_types_spawn_object
            CHECK (spawn IS NULL OR jsonb_typeof(spawn) = 'object');
    END IF;
END $$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (10, '0010_handlers') ON CONFLICT (version) DO NOTHING;
