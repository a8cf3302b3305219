-- Named queries: a runner's writes: checkpoint, events, service states.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: record_service_state
-- The lifecycle's rules live in the database (sql/0006): a service's state, its history row,
-- and the task's overall state derived from its required services and applied.
SELECT overall::text AS overall, reason
FROM otf_record_service_state(%(task_id)s, %(service)s, %(state)s::task_state, %(attempt)s,
                              %(detail)s, %(source)s);

-- name: lock_started_task
SELECT task_id FROM tasks
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
FOR UPDATE;

-- name: save_checkpoint
-- The poll write's fence: STARTED, at the writer's attempt, and its runner's (the run id its
-- start recorded: of two runners of one attempt, the later started owns it; NULL before any
-- runner started). Events, follow-ups and the poll row are written only after this matched.
UPDATE tasks
SET checkpoint = %(checkpoint)s, heartbeat_at = now(), run_id = coalesce(%(run_id)s, run_id),
    updated_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
  AND (run_id IS NULL OR run_id = %(run_id)s)
  AND (%(expected_seq)s::int IS NULL
       OR coalesce((checkpoint ->> 'next_seq')::int, 1) = %(expected_seq)s::int)
RETURNING task_id, task_type;

-- name: lock_events
-- Held to commit: seq numbers are drawn in commit order, so "seq > cursor" never skips a row.
SELECT pg_advisory_xact_lock(%(key)s);
