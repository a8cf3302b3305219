-- Named queries: a task's timeline.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: timeline_states
SELECT id, time, attempt, service, state::text AS state, previous_state::text AS previous_state,
       source, detail, txid
FROM task_states WHERE task_id = %(task_id)s;

-- name: timeline_events
SELECT seq, time, task_runner_id, task_seq, kind, payload, txid
FROM task_events WHERE task_id = %(task_id)s;
