-- Named queries: reads of tasks, their history and events.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: get_task
SELECT * FROM tasks WHERE task_id = %(task_id)s;

-- name: list_tasks
SELECT * FROM tasks
WHERE (%(state)s::task_state IS NULL OR state = %(state)s::task_state)
  AND (%(task_type)s::text IS NULL OR task_type = %(task_type)s::text)
ORDER BY scheduled_at DESC, task_id
LIMIT %(limit)s;

-- name: running_tasks
-- STARTED tasks whose runner has not reported an end: what reconciliation looks at.
SELECT t.task_id, t.task_type, t.attempt, t.run_id, t.heartbeat_at, t.started_at,
       tt.max_attempts, tt.stale_after_seconds, tt.deadline_seconds
FROM tasks t
JOIN task_types tt ON tt.name = t.task_type
LEFT JOIN task_service_states ss ON ss.task_id = t.task_id AND ss.service = 'runner'
     AND ss.attempt = t.attempt
WHERE t.state = 'STARTED'
  AND (ss.state IS NULL OR ss.state = 'STARTED')
ORDER BY t.heartbeat_at NULLS FIRST
LIMIT %(limit)s;

-- name: service_states
SELECT service, state, attempt, detail, updated_at
FROM task_service_states WHERE task_id = %(task_id)s ORDER BY service;

-- name: state_history
SELECT time, attempt, service, state, previous_state, source, detail
FROM task_states WHERE task_id = %(task_id)s
ORDER BY time, id;

-- name: task_events
SELECT seq, time, task_id, task_runner_id, task_type, task_seq, kind, payload
FROM task_events WHERE task_id = %(task_id)s
ORDER BY task_seq, seq;

-- name: state_enum_values
SELECT unnest(enum_range(NULL::task_state))::text AS value;
