-- Named queries: a runner's writes: checkpoint, events, service states.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: upsert_service_state
INSERT INTO task_service_states (task_id, service, state, attempt, detail, updated_at)
VALUES (%(task_id)s, %(service)s, %(state)s, %(attempt)s, %(detail)s, now())
ON CONFLICT (task_id, service) DO UPDATE SET
    state = EXCLUDED.state, attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, updated_at = now();

-- name: save_checkpoint
UPDATE tasks
SET checkpoint = %(checkpoint)s, heartbeat_at = now(), run_id = coalesce(%(run_id)s, run_id),
    updated_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
  AND (%(expected_seq)s::int IS NULL
       OR coalesce((checkpoint ->> 'next_seq')::int, 1) = %(expected_seq)s::int)
RETURNING task_id, task_type;

-- name: lock_events
-- Held to commit: seq numbers are drawn in commit order, so "seq > cursor" never skips a row.
SELECT pg_advisory_xact_lock(%(key)s);
