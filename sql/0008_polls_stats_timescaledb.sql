-- 0008: poll records, per-minute stats, and the TimescaleDB set-up in one re-runnable function.
--
-- * task_polls: one row per poll a runner makes (written in the poll's own transaction by
--   otf_dagster.core.store.pollstats.log_poll): how late it went out, how many events it wrote,
--   its error if it failed.
-- * task_poll_stats_1m / task_event_stats_1m: polls, errors, events and poll lateness per task
--   type per minute. Plain views here; with TimescaleDB, continuous aggregates of the same
--   names and columns (real-time: the newest minutes are computed on the fly), refreshed by a
--   policy every minute. `otf stats` reads them either way.
-- * otf_time_bucket(width, time): time_bucket() with TimescaleDB, date_bin() with the same
--   origin (2000-01-03, a Monday, TimescaleDB's) without it: the same buckets on both.
-- * otf_timescaledb_enable(): everything TimescaleDB adds, idempotent, safe to call any time.
--   It converts plain task_events / task_states / task_polls into hypertables with their rows
--   (migrate_data), sets compression (segmented by task_id; events ordered by seq, states and
--   polls by time), compression and retention policies, and replaces the plain stats views by
--   continuous aggregates. It returns one line per thing it did, or one line saying why it did
--   nothing (extension not available, or available but not preloaded, with the fix).
--   0003 records itself even where TimescaleDB was absent, so a server that gets TimescaleDB
--   later needs this: `otf db migrate` calls it every time, after the numbered files; a DBA
--   applying the files with psql runs `SELECT * FROM otf_timescaledb_enable();` again instead.
-- Idempotent and runnable by plain psql, like every migration here.

CREATE TABLE IF NOT EXISTS task_polls (
    time              timestamptz NOT NULL DEFAULT now(),
    task_id           text NOT NULL,
    task_type         text NOT NULL,
    attempt           integer NOT NULL,
    task_runner_id    text NOT NULL,
    -- Seconds after the poll was due that it went out (negative: early).
    lateness_seconds  double precision NOT NULL,
    events            integer NOT NULL DEFAULT 0
                      CONSTRAINT task_polls_events_nonnegative CHECK (events >= 0),
    error             text
);
CREATE INDEX IF NOT EXISTS task_polls_task_time_idx ON task_polls (task_id, time DESC);
CREATE INDEX IF NOT EXISTS task_polls_time_idx ON task_polls (time DESC);

CREATE OR REPLACE FUNCTION otf_time_bucket(p_width interval, p_time timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$ SELECT date_bin(p_width, p_time, TIMESTAMPTZ '2000-01-03 00:00:00+00') $fn$;

-- The plain stats views (a continuous aggregate of the same name, once there, stays).
DO $$
BEGIN
    IF to_regclass('task_poll_stats_1m') IS NULL THEN
        CREATE VIEW task_poll_stats_1m AS
        SELECT otf_time_bucket(INTERVAL '1 minute', time) AS bucket, task_type,
               count(*) AS polls, count(error) AS errors, sum(events) AS events,
               avg(lateness_seconds) AS lateness_avg_seconds,
               max(lateness_seconds) AS lateness_max_seconds
        FROM task_polls GROUP BY 1, 2;
    END IF;
    IF to_regclass('task_event_stats_1m') IS NULL THEN
        CREATE VIEW task_event_stats_1m AS
        SELECT otf_time_bucket(INTERVAL '1 minute', time) AS bucket, task_type, count(*) AS events
        FROM task_events GROUP BY 1, 2;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION otf_timescaledb_enable() RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    t        record;
    v_rows   bigint;
    v_chunks bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        RETURN NEXT 'timescaledb: not available on this server; task_events, task_states and task_polls are plain tables with time indexes, the stats plain views';
        RETURN;
    END IF;
    -- Preloaded? pg_settings, not current_setting: a role without pg_read_all_settings finds
    -- no row there (current_setting refuses it), and then the library's own settings tell.
    IF NOT coalesce((SELECT setting LIKE '%timescaledb%' FROM pg_settings
                     WHERE name = 'shared_preload_libraries'),
                    EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%')) THEN
        RETURN NEXT 'timescaledb: installed on this server but not preloaded, so the tables stay plain; run ALTER SYSTEM SET shared_preload_libraries = ''timescaledb'' (or add it to postgresql.conf), restart the server, then run `otf db migrate` again';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE EXTENSION timescaledb;
        RETURN NEXT 'timescaledb: extension created';
    END IF;

    FOR t IN
        SELECT * FROM (VALUES
            -- table, chunk interval, compression orderby, compress after, drop after (see 0003)
            ('task_events', INTERVAL '1 day',  'seq',  INTERVAL '7 days',  INTERVAL '400 days'),
            ('task_states', INTERVAL '7 days', 'time', INTERVAL '30 days', INTERVAL '800 days'),
            ('task_polls',  INTERVAL '1 day',  'time', INTERVAL '7 days',  INTERVAL '400 days')
        ) AS v (name, chunk, orderby, compress_after, drop_after)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                       WHERE h.hypertable_name = t.name AND h.hypertable_schema = current_schema()) THEN
            EXECUTE format('SELECT count(*) FROM %I', t.name) INTO v_rows;
            PERFORM create_hypertable(t.name::regclass, 'time', chunk_time_interval => t.chunk,
                                      migrate_data => true);
            SELECT count(*) INTO v_chunks FROM show_chunks(t.name::regclass);
            RETURN NEXT format('timescaledb: %s is now a hypertable (%s rows kept, in %s chunks of %s)',
                               t.name, v_rows, v_chunks, t.chunk);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                       WHERE h.hypertable_name = t.name AND h.hypertable_schema = current_schema()
                         AND h.compression_enabled) THEN
            EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, timescaledb.compress_orderby = %L)',
                           t.name, 'task_id', t.orderby);
            RETURN NEXT format('timescaledb: %s compression on (segment by task_id, order by %s)',
                               t.name, t.orderby);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs j
                       WHERE j.hypertable_name = t.name AND j.proc_name = 'policy_compression') THEN
            PERFORM add_compression_policy(t.name::regclass, t.compress_after);
            RETURN NEXT format('timescaledb: %s chunks compress after %s', t.name, t.compress_after);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs j
                       WHERE j.hypertable_name = t.name AND j.proc_name = 'policy_retention') THEN
            PERFORM add_retention_policy(t.name::regclass, t.drop_after);
            RETURN NEXT format('timescaledb: %s chunks are dropped after %s', t.name, t.drop_after);
        END IF;
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname = 'otf_time_bucket'
                     AND p.pronamespace = current_schema()::regnamespace
                     AND p.prosrc LIKE '%time_bucket(%') THEN
        CREATE OR REPLACE FUNCTION otf_time_bucket(p_width interval, p_time timestamptz)
        RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $body$ SELECT time_bucket(p_width, p_time) $body$;
        RETURN NEXT 'timescaledb: otf_time_bucket() uses time_bucket()';
    END IF;

    FOR t IN
        SELECT * FROM (VALUES
            ('task_poll_stats_1m', $q$
                SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, task_type,
                       count(*) AS polls, count(error) AS errors, sum(events) AS events,
                       avg(lateness_seconds) AS lateness_avg_seconds,
                       max(lateness_seconds) AS lateness_max_seconds
                FROM task_polls GROUP BY 1, 2$q$),
            ('task_event_stats_1m', $q$
                SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, task_type,
                       count(*) AS events
                FROM task_events GROUP BY 1, 2$q$)
        ) AS v (name, body)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates c
                       WHERE c.view_name = t.name AND c.view_schema = current_schema()) THEN
            EXECUTE format('DROP VIEW IF EXISTS %I', t.name);
            EXECUTE format('CREATE MATERIALIZED VIEW %I WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS %s WITH NO DATA',
                           t.name, t.body);
            -- start_offset NULL: a late row in any old minute is picked up by the next refresh.
            PERFORM add_continuous_aggregate_policy(t.name::regclass, start_offset => NULL,
                                                    end_offset => INTERVAL '1 minute',
                                                    schedule_interval => INTERVAL '1 minute');
            RETURN NEXT format('timescaledb: %s is a continuous aggregate, refreshed every minute',
                               t.name);
        END IF;
    END LOOP;
END
$fn$;

SELECT otf_timescaledb_enable();

INSERT INTO otf_schema_migrations (version, name)
VALUES (8, '0008_polls_stats_timescaledb') ON CONFLICT (version) DO NOTHING;
