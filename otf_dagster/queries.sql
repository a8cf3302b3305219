-- Named queries of the task store. Each starts with "-- name: NAME"; parameters are psycopg's
-- %(name)s placeholders, always bound, never formatted into the text.

-- name: upsert_task_type
INSERT INTO task_types AS tt (name, handler, url_template, poll_interval_seconds, deadline_seconds,
                              max_attempts, max_consecutive_errors, stale_after_seconds,
                              required_services, params, description)
VALUES (%(name)s, %(handler)s, %(url_template)s, %(poll_interval_seconds)s, %(deadline_seconds)s,
        %(max_attempts)s, %(max_consecutive_errors)s, %(stale_after_seconds)s,
        %(required_services)s, %(params)s, %(description)s)
ON CONFLICT (name) DO UPDATE SET
    handler = EXCLUDED.handler,
    url_template = EXCLUDED.url_template,
    poll_interval_seconds = EXCLUDED.poll_interval_seconds,
    deadline_seconds = EXCLUDED.deadline_seconds,
    max_attempts = EXCLUDED.max_attempts,
    max_consecutive_errors = EXCLUDED.max_consecutive_errors,
    stale_after_seconds = EXCLUDED.stale_after_seconds,
    required_services = EXCLUDED.required_services,
    params = EXCLUDED.params,
    description = EXCLUDED.description,
    deleted_at = NULL,
    updated_at = now()
RETURNING *, (xmax = 0) AS inserted;

-- name: get_task_type
SELECT name, handler, url_template, poll_interval_seconds, deadline_seconds, max_attempts,
       max_consecutive_errors, stale_after_seconds, required_services, params, description,
       created_at, updated_at, deleted_at
FROM task_types WHERE name = %(name)s;

-- name: lock_live_task_type
SELECT name FROM task_types WHERE name = %(name)s AND deleted_at IS NULL FOR SHARE;

-- name: get_task_types
SELECT name, handler, url_template, poll_interval_seconds, deadline_seconds, max_attempts,
       max_consecutive_errors, stale_after_seconds, required_services, params, description,
       created_at, updated_at, deleted_at
FROM task_types WHERE name = ANY (%(names)s);

-- name: list_task_types
SELECT name, handler, url_template, poll_interval_seconds, deadline_seconds, max_attempts,
       max_consecutive_errors, stale_after_seconds, required_services, params, description,
       created_at, updated_at, deleted_at
FROM task_types
WHERE %(include_deleted)s OR deleted_at IS NULL
ORDER BY name;

-- name: soft_delete_task_type
UPDATE task_types SET deleted_at = now(), updated_at = now()
WHERE name = %(name)s AND deleted_at IS NULL
RETURNING name;

-- name: schedule_task
-- Insert, or move a still-SCHEDULED task's time; a task past SCHEDULED is left as it is.
INSERT INTO tasks AS t (task_id, task_type, external_key, scheduled_at, params, parent_task_id)
VALUES (%(task_id)s, %(task_type)s, %(external_key)s, %(scheduled_at)s, %(params)s, %(parent_task_id)s)
ON CONFLICT (task_type, external_key) DO UPDATE SET
    scheduled_at = EXCLUDED.scheduled_at,
    params = t.params || EXCLUDED.params,
    updated_at = now()
WHERE t.state = 'SCHEDULED'
  AND (t.scheduled_at IS DISTINCT FROM EXCLUDED.scheduled_at OR NOT t.params @> EXCLUDED.params)
RETURNING task_id, state, scheduled_at, (xmax = 0) AS inserted;

-- name: find_task_by_key
SELECT task_id, state, scheduled_at FROM tasks
WHERE task_type = %(task_type)s AND external_key = %(external_key)s;

-- name: claim_ready
-- One statement, one transaction: pick ready tasks no other claimer holds (SKIP LOCKED), move
-- them to STARTED with the next attempt, and write their STARTED history rows.
WITH ready AS (
    SELECT t.task_id
    FROM tasks t
    JOIN task_types tt ON tt.name = t.task_type AND tt.deleted_at IS NULL
    WHERE t.state = 'SCHEDULED' AND t.scheduled_at <= %(now)s
    ORDER BY t.scheduled_at, t.task_id
    LIMIT %(limit)s
    FOR UPDATE OF t SKIP LOCKED
), claimed AS (
    UPDATE tasks t
    SET state = 'STARTED', attempt = t.attempt + 1, started_at = now(), heartbeat_at = now(),
        run_id = NULL, last_error = NULL, updated_at = now()
    WHERE t.task_id = ANY (ARRAY(SELECT task_id FROM ready))  -- index lookups, not a hash join over all tasks
    -- Only what a launch needs: no JSON to decode on the hot path (params stay unread: None).
    RETURNING t.task_id, t.task_type, t.external_key, t.scheduled_at, t.state, t.attempt
), history AS (
    INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source)
    SELECT now(), task_id, attempt, 'task', 'STARTED', 'SCHEDULED', %(source)s FROM claimed
)
SELECT * FROM claimed ORDER BY scheduled_at, task_id;

-- name: get_task
SELECT * FROM tasks WHERE task_id = %(task_id)s;

-- name: list_tasks
SELECT * FROM tasks
WHERE (%(state)s::task_state IS NULL OR state = %(state)s::task_state)
  AND (%(task_type)s::text IS NULL OR task_type = %(task_type)s::text)
ORDER BY scheduled_at DESC, task_id
LIMIT %(limit)s;

-- name: transition
-- Guarded by the state and attempt the writer expects: a stale writer matches no row.
UPDATE tasks
SET state = %(to_state)s, updated_at = now(), last_error = %(error)s,
    finished_at = CASE WHEN %(to_state)s::task_state IN ('FINISHED', 'FAILED', 'CANCELLED')
                       THEN now() ELSE finished_at END
WHERE task_id = %(task_id)s AND state = %(from_state)s AND attempt = %(attempt)s
RETURNING *;

-- name: relaunch
-- A STARTED task whose runner was lost gets the next attempt (a new fencing token); never one
-- whose runner already reported its end (it may wait for other services).
UPDATE tasks t
SET attempt = t.attempt + 1, run_id = NULL, heartbeat_at = now(), started_at = now(),
    last_error = %(reason)s, updated_at = now()
WHERE t.task_id = %(task_id)s AND t.state = 'STARTED' AND t.attempt = %(attempt)s
  AND NOT EXISTS (SELECT 1 FROM task_service_states ss
                  WHERE ss.task_id = t.task_id AND ss.service = 'runner'
                    AND ss.attempt = t.attempt AND ss.state <> 'STARTED')
RETURNING t.*;

-- name: adopt
-- A runner launched by hand (no attempt tag) takes the task: a SCHEDULED task starts now, a
-- STARTED one moves to the next attempt so any earlier runner is fenced out.
UPDATE tasks t
SET state = 'STARTED', attempt = t.attempt + 1, run_id = %(run_id)s, heartbeat_at = now(),
    started_at = now(), updated_at = now()
FROM task_types tt
WHERE t.task_id = %(task_id)s AND tt.name = t.task_type AND tt.deleted_at IS NULL
  AND (t.state = 'SCHEDULED'
       OR (t.state = 'STARTED' AND NOT EXISTS (
             SELECT 1 FROM task_service_states ss
             WHERE ss.task_id = t.task_id AND ss.service = 'runner'
               AND ss.attempt = t.attempt AND ss.state <> 'STARTED')))
RETURNING t.*, (SELECT state FROM tasks WHERE task_id = %(task_id)s) AS previous_state;

-- name: insert_state
INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source, detail)
VALUES (now(), %(task_id)s, %(attempt)s, %(service)s, %(state)s, %(previous_state)s, %(source)s, %(detail)s);

-- name: upsert_service_state
INSERT INTO task_service_states (task_id, service, state, attempt, detail, updated_at)
VALUES (%(task_id)s, %(service)s, %(state)s, %(attempt)s, %(detail)s, now())
ON CONFLICT (task_id, service) DO UPDATE SET
    state = EXCLUDED.state, attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, updated_at = now();

-- name: set_run_id
UPDATE tasks SET run_id = %(run_id)s, heartbeat_at = now(), updated_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
RETURNING task_id;

-- name: heartbeat
UPDATE tasks SET heartbeat_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
RETURNING task_id;

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

-- name: scheduled_between
SELECT task_id, external_key, state, scheduled_at FROM tasks
WHERE task_type = %(task_type)s AND scheduled_at >= %(start)s AND scheduled_at < %(end)s
ORDER BY scheduled_at, task_id;

-- name: consumer_subscribed_events
-- Both consumer reads also return the horizon: the largest seq committed in the same snapshot.
-- Every smaller seq is then final (committed and visible, or never to be), so after a short
-- batch the position may jump to the horizon: a consumer of a rare task type does not rescan
-- the events of other types on its next read. The subscription array is an InitPlan, so the
-- plan walks the seq index in order and stops at the limit.
SELECT h.horizon, e.*
FROM (SELECT coalesce(max(seq), 0) AS horizon FROM task_events) AS h
LEFT JOIN LATERAL (
    SELECT ev.seq, ev.time, ev.task_id, ev.task_runner_id, ev.task_type, ev.task_seq, ev.kind,
           ev.payload
    FROM task_events ev
    WHERE ev.seq > %(after)s
      AND ev.task_type = ANY (ARRAY(SELECT s.task_type FROM subscriptions s
                                    WHERE s.owner = %(owner)s AND s.deleted_at IS NULL))
    ORDER BY ev.seq
    LIMIT %(limit)s
) AS e ON true
ORDER BY e.seq;

-- name: consumer_filtered_events
SELECT h.horizon, e.*
FROM (SELECT coalesce(max(seq), 0) AS horizon FROM task_events) AS h
LEFT JOIN LATERAL (
    SELECT ev.seq, ev.time, ev.task_id, ev.task_runner_id, ev.task_type, ev.task_seq, ev.kind,
           ev.payload
    FROM task_events ev
    WHERE ev.seq > %(after)s
      AND (%(types)s::text[] IS NULL OR ev.task_type = ANY (%(types)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR ev.time >= %(since)s::timestamptz)
    ORDER BY ev.seq
    LIMIT %(limit)s
) AS e ON true
ORDER BY e.seq;

-- name: consumer_open_cursor
INSERT INTO consumer_cursors (consumer, position)
VALUES (%(consumer)s,
        CASE WHEN %(from_end)s THEN coalesce((SELECT max(seq) FROM task_events), 0) ELSE 0 END)
ON CONFLICT (consumer) DO NOTHING;

-- name: consumer_read_cursor
SELECT position FROM consumer_cursors WHERE consumer = %(consumer)s;

-- name: consumer_ack
-- GREATEST: a late or repeated ack never moves a cursor back.
UPDATE consumer_cursors SET position = greatest(position, %(seq)s), updated_at = now()
WHERE consumer = %(consumer)s
RETURNING position;

-- name: services_report
SELECT overall, outcome, reason, previous FROM otf_report(%s, %s, %s, %s);

-- name: services_subscribe
INSERT INTO subscriptions AS s (owner, task_type)
SELECT %(owner)s, tt.name FROM task_types tt WHERE tt.name = %(task_type)s AND tt.deleted_at IS NULL
ON CONFLICT (owner, task_type) DO UPDATE SET deleted_at = NULL, created_at = now()
WHERE s.deleted_at IS NOT NULL
RETURNING (xmax = 0) AS inserted;

-- name: services_subscription_exists
SELECT 1 FROM subscriptions
WHERE owner = %(owner)s AND task_type = %(task_type)s AND deleted_at IS NULL;

-- name: services_unsubscribe
UPDATE subscriptions SET deleted_at = now()
WHERE owner = %(owner)s AND task_type = %(task_type)s AND deleted_at IS NULL
RETURNING owner;

-- name: services_list_subscriptions
SELECT owner, task_type, created_at, deleted_at FROM subscriptions
WHERE (%(owner)s::text IS NULL OR owner = %(owner)s::text)
  AND (%(include_deleted)s OR deleted_at IS NULL)
ORDER BY owner, task_type;

-- name: timeline_states
SELECT id, time, attempt, service, state::text AS state, previous_state::text AS previous_state,
       source, detail, xmin::text AS xid
FROM task_states WHERE task_id = %(task_id)s;

-- name: timeline_events
SELECT seq, time, task_runner_id, task_seq, kind, payload, xmin::text AS xid
FROM task_events WHERE task_id = %(task_id)s;
