-- 0003: TimescaleDB, when the server has it; plain tables otherwise (nothing else changes).
--
-- Chunk intervals: task_events gets 1-day chunks. A busy day (a full NBA slate polled every
-- few seconds, plus other task types) is a few million rows, so one chunk plus its indexes fits
-- comfortably in memory while the day is live, and consumers and dashboards read the newest
-- chunk. task_states is two orders of magnitude smaller (a handful of rows per task), so 7-day
-- chunks keep the chunk count low.
-- Compression: segmented by task_id (every read is "the events of a task" or "after seq N"),
-- ordered by seq; chunks older than 7 days compress (a game's stream is final by then).
-- Retention: raw events are kept 400 days (a season and its playoffs), state history 800 days.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       -- preloaded: read from pg_settings, where a role without pg_read_all_settings finds no
       -- row (current_setting would refuse it); the library's own settings then tell.
       AND coalesce((SELECT setting LIKE '%timescaledb%' FROM pg_settings
                     WHERE name = 'shared_preload_libraries'),
                    EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%')) THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE $q$SELECT create_hypertable('task_events', 'time',
                     chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE, migrate_data => TRUE)$q$;
        EXECUTE $q$SELECT create_hypertable('task_states', 'time',
                     chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE, migrate_data => TRUE)$q$;
        EXECUTE $q$ALTER TABLE task_events SET (timescaledb.compress,
                     timescaledb.compress_segmentby = 'task_id', timescaledb.compress_orderby = 'seq')$q$;
        EXECUTE $q$ALTER TABLE task_states SET (timescaledb.compress,
                     timescaledb.compress_segmentby = 'task_id', timescaledb.compress_orderby = 'time')$q$;
        EXECUTE $q$SELECT add_compression_policy('task_events', INTERVAL '7 days', if_not_exists => TRUE)$q$;
        EXECUTE $q$SELECT add_compression_policy('task_states', INTERVAL '30 days', if_not_exists => TRUE)$q$;
        EXECUTE $q$SELECT add_retention_policy('task_events', INTERVAL '400 days', if_not_exists => TRUE)$q$;
        EXECUTE $q$SELECT add_retention_policy('task_states', INTERVAL '800 days', if_not_exists => TRUE)$q$;
    ELSE
        RAISE NOTICE 'TimescaleDB is not available on this server: task_events and task_states stay plain tables with time indexes';
    END IF;
END $$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (3, '0003_timescaledb') ON CONFLICT (version) DO NOTHING;
