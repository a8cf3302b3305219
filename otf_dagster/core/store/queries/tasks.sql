-- Named queries: scheduling, the claim and every fenced state change of a task.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: schedule_task
-- Insert, or move a still-SCHEDULED task's time; a task past SCHEDULED is left as it is. A new
-- task's lane is the one given, else its parent's (a follow-up of backfill work is backfill
-- work), else live; an existing task keeps its lane.
INSERT INTO tasks AS t (task_id, task_type, external_key, scheduled_at, params, parent_task_id, lane)
VALUES (%(task_id)s, %(task_type)s, %(external_key)s, %(scheduled_at)s, %(params)s, %(parent_task_id)s,
        coalesce(%(lane)s::text,
                 (SELECT p.lane FROM tasks p WHERE p.task_id = %(parent_task_id)s::text),
                 'live'))
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

-- name: scheduled_between
SELECT task_id, external_key, state, scheduled_at FROM tasks
WHERE task_type = %(task_type)s AND scheduled_at >= %(start)s AND scheduled_at < %(end)s
ORDER BY scheduled_at, task_id;

-- name: claim_ready
-- One statement: pick one lane's ready tasks no other claimer holds (SKIP LOCKED), move them
-- to STARTED with the next attempt for the claiming deployment, and write their STARTED
-- history rows. The live lane is claimed first, the backfill lane with what is left
-- (store.claim_ready, one transaction).
WITH ready AS (
    SELECT t.task_id
    FROM tasks t
    JOIN task_types tt ON tt.name = t.task_type AND tt.deleted_at IS NULL
    WHERE t.state = 'SCHEDULED' AND t.lane = %(lane)s AND t.scheduled_at <= %(now)s
    ORDER BY t.scheduled_at, t.task_id
    LIMIT %(limit)s
    FOR UPDATE OF t SKIP LOCKED
), claimed AS (
    UPDATE tasks t
    SET state = 'STARTED', attempt = t.attempt + 1, started_at = now(), heartbeat_at = now(),
        run_id = NULL, last_error = NULL, updated_at = now(),
        deployment_id = %(deployment)s, pool_id = NULL
    WHERE t.task_id = ANY (ARRAY(SELECT task_id FROM ready))  -- index lookups, not a hash join over all tasks
    -- Only what a launch needs: no JSON to decode on the hot path (params stay unread: None;
    -- a run's label is the handler's, read for run-mode launches alone: manager.label_launches)
    RETURNING t.task_id, t.task_type, t.external_key, t.scheduled_at, t.state, t.attempt, t.lane
), history AS (
    INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source)
    SELECT now(), task_id, attempt, 'task', 'STARTED', 'SCHEDULED', %(source)s FROM claimed
)
-- type_version names the task type's row version (a new one on any UPDATE): the store reads a
-- type again only when it changed, not once per claim (issue 19)
SELECT c.*, tt.xmin::text || tt.ctid::text AS type_version
FROM claimed c JOIN task_types tt ON tt.name = c.task_type
ORDER BY c.scheduled_at, c.task_id;

-- name: started_in_lane
-- How many tasks of a lane are STARTED now (the backfill's cap reads it before its claim).
SELECT count(*) AS n FROM tasks WHERE state = 'STARTED' AND lane = %(lane)s;

-- name: reserve_pace_slot
-- The next free slot of a host's backfill pace, reserved: the slot is the later of the host's
-- next free time and now, and the host's next free time moves one gap past it. Returns how
-- many seconds to wait for the slot (0: go now). ``now`` is the clock's time when given (a
-- test's fake clock), else the database's clock_timestamp().
INSERT INTO backfill_pace AS p (host, next_at)
VALUES (%(host)s, coalesce(%(now)s::timestamptz, clock_timestamp()) + make_interval(secs => %(gap)s))
ON CONFLICT (host) DO UPDATE
SET next_at = greatest(p.next_at, coalesce(%(now)s::timestamptz, clock_timestamp()))
              + make_interval(secs => %(gap)s)
RETURNING greatest(0.0, extract(epoch FROM p.next_at - coalesce(%(now)s::timestamptz,
                                                                clock_timestamp()))
                        - %(gap)s)::float8 AS wait,
          p.next_at - make_interval(secs => %(gap)s) AS slot;

-- name: transition
-- Guarded by the state and attempt the writer expects: a stale writer matches no row.
-- finished_at is clock_timestamp() (read holding the row lock), never before an event of the
-- task: the timeline bounds its events by it (sql/0017).
UPDATE tasks
SET state = %(to_state)s, updated_at = now(), last_error = %(error)s,
    finished_at = CASE WHEN otf_state_is_terminal(%(to_state)s::task_state)
                       THEN clock_timestamp() ELSE finished_at END
WHERE task_id = %(task_id)s AND state = %(from_state)s AND attempt = %(attempt)s
RETURNING *;

-- name: relaunch
-- A STARTED task whose runner was lost gets the next attempt (a new fencing token) under the
-- re-launching deployment; never one whose runner already reported its end (it may wait for
-- other services).
UPDATE tasks t
SET attempt = t.attempt + 1, run_id = NULL, heartbeat_at = now(), started_at = now(),
    last_error = %(reason)s, updated_at = now(), deployment_id = %(deployment)s, pool_id = NULL
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
    started_at = now(), updated_at = now(), deployment_id = %(deployment)s, pool_id = NULL
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

-- name: set_run_id
UPDATE tasks SET run_id = %(run_id)s, heartbeat_at = now(), updated_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
RETURNING task_id;

-- name: heartbeat
-- Fenced as the poll write is: the attempt, and the runner when one is named.
UPDATE tasks SET heartbeat_at = now()
WHERE task_id = %(task_id)s AND state = 'STARTED' AND attempt = %(attempt)s
  AND (%(run_id)s::text IS NULL OR run_id IS NULL OR run_id = %(run_id)s::text)
RETURNING task_id;

-- name: retry
-- A FAILED or CANCELLED task scheduled again on purpose, now: its checkpoint is kept (the next
-- runner continues the event stream), its services start over (their history stays), and its
-- deadline counts from now. The claim gives it the next attempt.
WITH before AS (
    SELECT task_id, state FROM tasks
    WHERE task_id = %(task_id)s AND state IN ('FAILED', 'CANCELLED')
    FOR UPDATE
), moved AS (
    UPDATE tasks t
    SET state = 'SCHEDULED', scheduled_at = now(), run_id = NULL, last_error = NULL,
        finished_at = NULL, heartbeat_at = NULL, updated_at = now(),
        deployment_id = NULL, pool_id = NULL,
        -- the errors that failed it do not count against the retry
        checkpoint = t.checkpoint || jsonb_build_object('consecutive_errors', 0)
    FROM before b
    WHERE t.task_id = b.task_id
    RETURNING t.*, b.state AS previous_state
), cleared AS (
    DELETE FROM task_service_states ss USING moved m WHERE ss.task_id = m.task_id
)
SELECT * FROM moved;
