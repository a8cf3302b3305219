-- Named queries: per-minute stats (`otf stats`) and the database's state (`otf db status`).
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: minute_stats
-- Polls, errors, events and poll lateness per task type per minute, from the two per-minute
-- relations of sql/0008 (plain views, or TimescaleDB continuous aggregates of the same shape).
-- Events come from task_events itself, polls from task_polls: a minute may have either.
SELECT coalesce(p.bucket, e.bucket) AS bucket, coalesce(p.task_type, e.task_type) AS task_type,
       coalesce(p.polls, 0) AS polls, coalesce(p.errors, 0) AS errors,
       coalesce(e.events, 0) AS events,
       p.lateness_avg_seconds, p.lateness_max_seconds
FROM (SELECT * FROM task_poll_stats_1m
      WHERE bucket >= %(since)s AND (%(task_type)s::text IS NULL OR task_type = %(task_type)s)) AS p
FULL JOIN (SELECT * FROM task_event_stats_1m
           WHERE bucket >= %(since)s AND (%(task_type)s::text IS NULL OR task_type = %(task_type)s)) AS e
       ON e.bucket = p.bucket AND e.task_type = p.task_type
ORDER BY 1, 2;

-- The status_* queries take no parameters: they are sent as written (their percent signs literal).

-- name: status_migrations
SELECT version, name, applied_at FROM otf_schema_migrations ORDER BY version;

-- name: status_timescaledb
SELECT current_setting('server_version') AS server_version,
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
       -- A role without pg_read_all_settings may not read shared_preload_libraries (the row is
       -- hidden); the library's own settings, registered when the server preloads it, tell.
       coalesce((SELECT setting LIKE '%timescaledb%' FROM pg_settings
                 WHERE name = 'shared_preload_libraries'),
                EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%'))
           AS preloaded;

-- name: status_hypertables
-- Only when TimescaleDB is installed and loaded: this schema's hypertables, their chunks and
-- compression (settings, and the sizes before and after once a chunk is compressed).
SELECT h.hypertable_name, d.time_interval AS chunk_interval, h.num_chunks,
       (SELECT count(*) FROM timescaledb_information.chunks c
        WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
          AND c.is_compressed) AS compressed_chunks,
       h.compression_enabled, s.segmentby AS compress_segmentby, s.orderby AS compress_orderby,
       hypertable_size(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass)
           AS total_bytes,
       cs.before_compression_total_bytes, cs.after_compression_total_bytes
FROM timescaledb_information.hypertables h
LEFT JOIN timescaledb_information.dimensions d
       ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name
      AND d.dimension_number = 1
LEFT JOIN timescaledb_information.hypertable_compression_settings s
       ON s.hypertable = format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass
LEFT JOIN LATERAL hypertable_compression_stats(
       format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) cs ON true
WHERE h.hypertable_schema = current_schema()
ORDER BY h.hypertable_name;

-- name: status_aggregates
SELECT view_name FROM timescaledb_information.continuous_aggregates
WHERE view_schema = current_schema() ORDER BY view_name;

-- name: status_jobs
-- Every background job of this database (policies and user jobs; TimescaleDB's own below
-- id 1000 left out), its last run, and the error of its latest failed run.
SELECT j.job_id, j.application_name AS job, j.hypertable_name AS relation, j.schedule_interval,
       j.scheduled,
       -- -infinity (never run) reads as NULL: clients cannot hold an infinite timestamp
       CASE WHEN isfinite(st.last_run_started_at) THEN st.last_run_started_at END
           AS last_run_started_at,
       st.last_run_status,
       CASE WHEN isfinite(st.next_start) THEN st.next_start END AS next_start,
       st.total_runs, st.total_failures, err.err_message AS last_error, err.finish_time AS last_error_at
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats st ON st.job_id = j.job_id
LEFT JOIN LATERAL (
    SELECT e.err_message, e.finish_time FROM timescaledb_information.job_errors e
    WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC NULLS LAST LIMIT 1
) err ON true
WHERE j.job_id >= 1000
ORDER BY j.job_id;
