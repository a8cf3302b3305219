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
-- STARTED tasks whose runner has not reported an end, that the given deployment watches: its
-- own, hand-run ones (no deployment), and those of deployments whose lease has expired (or
-- that never registered). No deployment given: every STARTED task. With each, its pool.
SELECT t.task_id, t.task_type, t.attempt, t.run_id, t.heartbeat_at, t.started_at,
       t.deployment_id, t.pool_id, t.lane,
       tt.max_attempts, tt.stale_after_seconds, tt.deadline_seconds, tt.runner,
       tt.poll_interval_seconds,
       p.state AS pool_state, p.heartbeat_at AS pool_heartbeat_at,
       p.created_at AS pool_created_at, p.run_id AS pool_run_id,
       d.name AS deployment_name, d.lease_expires_at
FROM tasks t
JOIN task_types tt ON tt.name = t.task_type
LEFT JOIN task_service_states ss ON ss.task_id = t.task_id AND ss.service = 'runner'
     AND ss.attempt = t.attempt
LEFT JOIN runner_pools p ON p.pool_id = t.pool_id
LEFT JOIN deployments d ON d.deployment_id = t.deployment_id
WHERE t.state = 'STARTED'
  AND (ss.state IS NULL OR ss.state = 'STARTED')
  AND (%(deployment)s::text IS NULL
       OR t.deployment_id IS NULL
       OR t.deployment_id = %(deployment)s::text
       OR d.deployment_id IS NULL
       OR d.lease_expires_at < now())
ORDER BY t.heartbeat_at NULLS FIRST
LIMIT %(limit)s;

-- name: launch_params
-- Each task's handler and params, for the labels of run-mode launches (the handler names a
-- task: manager.label_launches); one statement per tick, for the tasks launched as runs only.
SELECT t.task_id, tt.handler, t.params
FROM tasks t JOIN task_types tt ON tt.name = t.task_type
WHERE t.task_id = ANY (%(task_ids)s::text[]);

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
