-- Named queries: retention (sql/0016; core/retention.py).
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: history_task_batch
-- The next ended tasks (oldest first, after the keyset) whose partition and runs this
-- deployment's Dagster storage may still hold. Locked until the batch commits: a retry
-- (FOR UPDATE on the task) waits, so every task removed is still ended when it is removed;
-- one locked by someone else is left for the next prune.
SELECT t.task_id, t.attempt, t.finished_at
FROM tasks t
WHERE t.finished_at IS NOT NULL AND t.finished_at < %(cutoff)s
  AND otf_state_is_terminal(t.state)
  AND (t.finished_at, t.task_id) > (%(after_time)s::timestamptz, %(after_id)s::text)
  AND NOT EXISTS (SELECT 1 FROM history_dagster_pruned p
                  WHERE p.deployment_id = %(deployment)s AND p.kind = 'task'
                    AND p.key = t.task_id AND p.attempt >= t.attempt)
ORDER BY t.finished_at, t.task_id
LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED;

-- name: history_pool_batch
-- Ended runner pools of this deployment whose run this storage may still hold, none of whose
-- tasks still runs.
SELECT p.pool_id, p.ended_at
FROM runner_pools p
WHERE p.deployment_id = %(deployment)s AND p.state IN ('ENDED', 'FAILED')
  AND p.ended_at IS NOT NULL AND p.ended_at < %(cutoff)s
  AND (p.ended_at, p.pool_id) > (%(after_time)s::timestamptz, %(after_id)s::text)
  AND NOT EXISTS (SELECT 1 FROM history_dagster_pruned m
                  WHERE m.deployment_id = %(deployment)s AND m.kind = 'pool' AND m.key = p.pool_id)
  AND NOT EXISTS (SELECT 1 FROM tasks t
                  WHERE t.pool_id = p.pool_id AND NOT otf_state_is_terminal(t.state))
ORDER BY p.ended_at, p.pool_id
LIMIT %(limit)s
FOR NO KEY UPDATE OF p SKIP LOCKED;

-- name: history_mark_pruned
INSERT INTO history_dagster_pruned (deployment_id, kind, key, attempt, partitions, runs)
SELECT %(deployment)s, %(kind)s, u.key, u.attempt, u.partitions, u.runs
FROM unnest(%(keys)s::text[], %(attempts)s::integer[], %(partitions)s::integer[],
            %(runs)s::integer[]) AS u (key, attempt, partitions, runs)
ON CONFLICT (deployment_id, kind, key) DO UPDATE SET
    attempt = EXCLUDED.attempt,
    partitions = history_dagster_pruned.partitions + EXCLUDED.partitions,
    runs = history_dagster_pruned.runs + EXCLUDED.runs,
    pruned_at = now();

-- name: history_tasks_due
-- How many ended tasks are old enough for the Dagster side of a prune (deployment NULL: not
-- yet pruned from any Dagster storage).
SELECT count(*) AS tasks
FROM tasks t
WHERE t.finished_at IS NOT NULL AND t.finished_at < %(cutoff)s
  AND otf_state_is_terminal(t.state)
  AND NOT EXISTS (SELECT 1 FROM history_dagster_pruned p
                  WHERE (%(deployment)s::text IS NULL OR p.deployment_id = %(deployment)s)
                    AND p.kind = 'task' AND p.key = t.task_id AND p.attempt >= t.attempt);

-- name: history_polls_count
SELECT count(*) AS rows FROM task_polls WHERE time < %(cutoff)s;

-- name: history_polls_delete_batch
-- Plain PostgreSQL only (a ctid names a row within one table, not across chunks).
DELETE FROM task_polls
WHERE ctid = ANY (ARRAY(SELECT ctid FROM task_polls WHERE time < %(cutoff)s LIMIT %(limit)s));

-- name: history_timescaledb
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed;

-- name: history_hypertables
-- Only where TimescaleDB is installed: which of this schema's tables are hypertables.
SELECT hypertable_name FROM timescaledb_information.hypertables
WHERE hypertable_schema = current_schema();

-- name: history_chunks_before
-- A hypertable's chunks wholly older than the cutoff, oldest first.
SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name) AS chunk, c.range_start, c.range_end,
       c.is_compressed
FROM timescaledb_information.chunks c
WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = %(table)s
  AND c.range_end <= %(cutoff)s
ORDER BY c.range_start;

-- name: history_drop_chunk
-- Exactly the chunk [start, end) (drop_chunks with both bounds).
SELECT drop_chunks(%(table)s::regclass, older_than => %(range_end)s::timestamptz,
                   newer_than => %(range_start)s::timestamptz) AS chunk;

-- name: history_polls_policy
SELECT job_id, config ->> 'drop_after' AS drop_after
FROM timescaledb_information.jobs
WHERE hypertable_schema = current_schema() AND hypertable_name = 'task_polls'
  AND proc_name = 'policy_retention';

-- name: history_polls_policy_set
SELECT alter_job(%(job_id)s, config => jsonb_set(j.config, '{drop_after}', to_jsonb(%(days)s::text)))
FROM timescaledb_information.jobs j WHERE j.job_id = %(job_id)s;

-- name: history_polls_policy_add
SELECT add_retention_policy('task_polls'::regclass, make_interval(days => %(days)s)) AS job_id;

-- name: history_event_holders
SELECT held_at, holder FROM otf_event_holders(%(forced)s::text[]);

-- name: history_known_readers
SELECT 'consumer' AS kind, consumer AS name FROM consumer_cursors
UNION ALL
SELECT 'endpoint', 'endpoint:' || endpoint_id FROM delivery_endpoints
ORDER BY 1, 2;

-- name: history_events_counts
-- Events older than the cutoff: those every reader has passed (removable) and those kept
-- because a reader has not.
SELECT count(*) FILTER (WHERE e.seq <= g.held_at OR g.held_at IS NULL) AS removable,
       count(*) FILTER (WHERE e.seq > g.held_at) AS held
FROM task_events e,
     (SELECT min(held_at) AS held_at FROM otf_event_holders(%(forced)s::text[])) g
WHERE e.time < %(cutoff)s;

-- name: history_events_delete_batch
-- The guard is read again by every batch: a reader that appears or stays behind meanwhile
-- still holds its events.
DELETE FROM task_events
WHERE time < %(cutoff)s
  AND seq = ANY (ARRAY(
      SELECT e.seq FROM task_events e
      WHERE e.time < %(cutoff)s
        AND e.seq <= coalesce((SELECT min(held_at) FROM otf_event_holders(%(forced)s::text[])),
                              9223372036854775807)
      ORDER BY e.seq
      LIMIT %(limit)s));

-- name: history_events_guard_now
SELECT min(held_at) AS held_at FROM otf_event_holders(%(forced)s::text[]);

-- name: history_prune_start
INSERT INTO history_prunes (source, deployment_id, older_than_days, events_older_than_days, forced)
VALUES (%(source)s, %(deployment)s, %(older_than_days)s, %(events_older_than_days)s, %(forced)s)
RETURNING prune_id;

-- name: history_prune_progress
UPDATE history_prunes
SET removed = %(removed)s, held_back_by = %(held_back_by)s, updated_at = now()
WHERE prune_id = %(prune_id)s;

-- name: history_prune_finish
-- A prune that failed keeps the counts its committed batches wrote (removed NULL).
UPDATE history_prunes
SET removed = coalesce(%(removed)s, removed), held_back_by = %(held_back_by)s, error = %(error)s,
    updated_at = now(), finished_at = now()
WHERE prune_id = %(prune_id)s;

-- name: history_last_prunes
SELECT prune_id, source, deployment_id, older_than_days, events_older_than_days, forced,
       removed, held_back_by, error, started_at, finished_at
FROM history_prunes ORDER BY prune_id DESC LIMIT %(limit)s;

-- name: history_table_size_plain
SELECT pg_total_relation_size(to_regclass(%(table)s)) AS bytes,
       NULL::bigint AS chunks, NULL::bigint AS compressed_chunks;

-- name: history_table_size_hyper
SELECT hypertable_size(to_regclass(%(table)s)) AS bytes,
       (SELECT count(*) FROM timescaledb_information.chunks c
        WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = %(table)s) AS chunks,
       (SELECT count(*) FROM timescaledb_information.chunks c
        WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = %(table)s
          AND c.is_compressed) AS compressed_chunks;
