-- 0016: retention (issue 20). What is old may go, and what a reader still needs never does.
--
-- * history_prunes: one row per prune (`otf history prune`, the history_prune job): what it was
--   asked, what it removed so far (updated in the same transaction as each batch it commits),
--   when it ended. finished_at NULL and no error: still running, or killed (the next prune
--   carries on: nothing it removed is counted again).
-- * history_dagster_pruned: what a Dagster storage (one deployment) no longer holds: a task's
--   partition and runs, or an ended runner pool's run. The attempt recorded is the task's at
--   the time: a task retried afterwards (a higher attempt) is pruned again once it ends and ages.
-- * otf_event_holders(forced): who holds old events back: every consumer cursor, every
--   delivery endpoint not removed, and every event in delivery_pending (dead letters too: a
--   replay needs the event), lowest first. An event with seq <= the lowest position is one
--   every reader has passed; `--force-consumer NAME` (a consumer, or endpoint:ID) leaves one out.
-- * TimescaleDB: task_events and task_states lose their time-based retention policies (0003 /
--   0008 dropped events after 400 days whether delivered or not); task_polls keeps 30 days
--   (`otf history prune --older-than N` sets N). otf_timescaledb_enable() is redefined so a
--   later `otf db migrate` does not put the old policies back.
-- Idempotent and runnable by plain psql, like every migration here.

CREATE TABLE IF NOT EXISTS history_prunes (
    prune_id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source                  text NOT NULL,
    deployment_id           text,
    older_than_days         integer NOT NULL
                            CONSTRAINT history_prunes_older_than_positive CHECK (older_than_days > 0),
    events_older_than_days  integer
                            CONSTRAINT history_prunes_events_older_than_positive
                            CHECK (events_older_than_days IS NULL OR events_older_than_days > 0),
    forced                  text[] NOT NULL DEFAULT '{}',
    removed                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    held_back_by            text,
    error                   text,
    started_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    finished_at             timestamptz
);

CREATE TABLE IF NOT EXISTS history_dagster_pruned (
    deployment_id   text NOT NULL,
    kind            text NOT NULL
                    CONSTRAINT history_dagster_pruned_kind CHECK (kind IN ('task', 'pool')),
    key             text NOT NULL,
    attempt         integer NOT NULL DEFAULT 0,
    partitions      integer NOT NULL DEFAULT 0,
    runs            integer NOT NULL DEFAULT 0,
    pruned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, kind, key)
);

-- The prune walks ended tasks oldest first (finished_at is set by every terminal transition
-- and cleared by a retry).
CREATE INDEX IF NOT EXISTS tasks_finished_idx ON tasks (finished_at, task_id)
    WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runner_pools_ended_idx ON runner_pools (ended_at, pool_id)
    WHERE ended_at IS NOT NULL;

CREATE OR REPLACE FUNCTION otf_event_holders(p_forced text[] DEFAULT '{}')
RETURNS TABLE (held_at bigint, holder text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT h.held_at, h.holder FROM (
        SELECT c.position AS held_at, 'consumer ' || c.consumer AS holder
        FROM public.consumer_cursors c
        WHERE c.consumer <> ALL (coalesce(p_forced, '{}'))
        UNION ALL
        SELECT e.position, format('endpoint:%s (owner %s, %s)', e.endpoint_id, e.owner, e.sink)
        FROM public.delivery_endpoints e
        WHERE e.state <> 'removed'
          AND ('endpoint:' || e.endpoint_id) <> ALL (coalesce(p_forced, '{}'))
        UNION ALL
        SELECT min(p.seq) - 1, format('endpoint:%s (owner %s, %s): pending event %s',
                                      e.endpoint_id, e.owner, e.sink, min(p.seq))
        FROM public.delivery_pending p JOIN public.delivery_endpoints e ON e.endpoint_id = p.endpoint_id
        WHERE ('endpoint:' || e.endpoint_id) <> ALL (coalesce(p_forced, '{}'))
        GROUP BY e.endpoint_id, e.owner, e.sink
    ) h
    ORDER BY h.held_at, h.holder
$fn$;

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
            -- table, chunk interval, compression orderby, compress after, drop after (0016:
            -- events and states are kept; `otf history prune` drops delivered events on request)
            ('task_events', INTERVAL '1 day',  'seq',  INTERVAL '7 days',  NULL::interval),
            ('task_states', INTERVAL '7 days', 'time', INTERVAL '30 days', NULL::interval),
            ('task_polls',  INTERVAL '1 day',  'time', INTERVAL '7 days',  INTERVAL '30 days')
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
        IF t.drop_after IS NULL THEN
            -- A time-based policy would drop events no consumer or endpoint has read yet.
            IF EXISTS (SELECT 1 FROM timescaledb_information.jobs j
                       WHERE j.hypertable_name = t.name AND j.proc_name = 'policy_retention') THEN
                PERFORM remove_retention_policy(t.name::regclass);
                RETURN NEXT format('timescaledb: %s retention policy removed (rows are kept; `otf history prune` removes old ones on request)', t.name);
            END IF;
        ELSIF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs j
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

-- Databases converted before this file: 0008's events / states policies go (above, in the
-- function), and task_polls' 400 days become 30 (a prune with --older-than sets its own N).
DO $$
BEGIN
    IF to_regclass('timescaledb_information.jobs') IS NOT NULL THEN
        PERFORM alter_job(j.job_id, config => jsonb_set(j.config, '{drop_after}', '"30 days"'))
        FROM timescaledb_information.jobs j
        WHERE j.hypertable_name = 'task_polls' AND j.hypertable_schema = current_schema()
          AND j.proc_name = 'policy_retention' AND j.config ->> 'drop_after' = '400 days';
    END IF;
END $$;

SELECT otf_timescaledb_enable();

INSERT INTO otf_schema_migrations (version, name)
VALUES (16, '0016_retention') ON CONFLICT (version) DO NOTHING;
