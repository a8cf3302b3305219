-- Named queries: deployments' leases and runner pools.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: renew_lease
INSERT INTO deployments AS d (deployment_id, name, lease_expires_at)
VALUES (%(deployment)s, %(name)s, now() + make_interval(secs => %(lease_seconds)s))
ON CONFLICT (deployment_id) DO UPDATE SET
    name = EXCLUDED.name, renewed_at = now(), lease_expires_at = EXCLUDED.lease_expires_at
RETURNING deployment_id, lease_expires_at;

-- name: list_deployments
SELECT deployment_id, name, started_at, renewed_at, lease_expires_at,
       lease_expires_at >= now() AS alive,
       (SELECT count(*) FROM tasks t WHERE t.deployment_id = d.deployment_id
                                      AND t.state = 'STARTED') AS started_tasks
FROM deployments d ORDER BY started_at;

-- name: lock_live_pools
-- This deployment's pools that may take tasks, with their load; locked, so the pool's own
-- "end when idle" waits for this assignment (or this one sees it ended).
SELECT p.pool_id, p.capacity, p.state,
       (SELECT count(*) FROM tasks t WHERE t.pool_id = p.pool_id AND t.state = 'STARTED') AS load
FROM runner_pools p
WHERE p.deployment_id = %(deployment)s AND p.state IN ('LAUNCHING', 'RUNNING')
  AND (p.state = 'LAUNCHING' OR p.heartbeat_at > now() - make_interval(secs => %(stale_seconds)s))
ORDER BY p.created_at, p.pool_id
FOR UPDATE OF p;

-- name: insert_pool
INSERT INTO runner_pools (pool_id, deployment_id, capacity)
VALUES (%(pool_id)s, %(deployment)s, %(capacity)s);

-- name: assign_tasks
-- Fenced by the attempt: a task re-launched meanwhile is not assigned under its old attempt.
UPDATE tasks t SET pool_id = a.pool_id, updated_at = now()
FROM unnest(%(task_ids)s::text[], %(attempts)s::int[], %(pool_ids)s::text[])
     AS a (task_id, attempt, pool_id)
WHERE t.task_id = a.task_id AND t.attempt = a.attempt AND t.state = 'STARTED'
RETURNING t.task_id, t.pool_id;

-- name: notify_pools
SELECT pg_notify('otf_pools', pool_id) FROM unnest(%(pool_ids)s::text[]) AS p (pool_id);

-- name: fail_pool
UPDATE runner_pools SET state = 'FAILED', ended_at = now(), detail = %(detail)s
WHERE pool_id = %(pool_id)s AND state IN ('LAUNCHING', 'RUNNING')
RETURNING pool_id;

-- name: register_pool
-- A pool run starting (or a Dagster retry of it) takes its row; an ended or failed pool is
-- not revived (its tasks went elsewhere).
INSERT INTO runner_pools AS p (pool_id, deployment_id, capacity, state, run_id, started_at,
                               heartbeat_at)
VALUES (%(pool_id)s, %(deployment)s, %(capacity)s, 'RUNNING', %(run_id)s, now(), now())
ON CONFLICT (pool_id) DO UPDATE SET
    state = 'RUNNING', run_id = EXCLUDED.run_id, started_at = now(), heartbeat_at = now(),
    capacity = EXCLUDED.capacity
WHERE p.state IN ('LAUNCHING', 'RUNNING')
RETURNING pool_id, deployment_id;

-- name: pool_tasks
SELECT task_id, attempt FROM tasks
WHERE pool_id = %(pool_id)s AND state = 'STARTED'
ORDER BY scheduled_at, task_id;

-- name: heartbeat_pool
UPDATE runner_pools SET heartbeat_at = now()
WHERE pool_id = %(pool_id)s AND state = 'RUNNING'
RETURNING pool_id;

-- name: heartbeat_pool_tasks
-- The rows are locked in task_id order, the order the pool's group commit writes them in
-- (core/store/group_commit.py): a batch holding some of them never deadlocks with this.
UPDATE tasks SET heartbeat_at = now()
FROM (SELECT t.task_id
      FROM tasks t
      JOIN unnest(%(task_ids)s::text[], %(attempts)s::int[]) AS a (task_id, attempt)
        ON t.task_id = a.task_id AND t.attempt = a.attempt
      WHERE t.pool_id = %(pool_id)s AND t.state = 'STARTED'
      ORDER BY t.task_id
      FOR UPDATE OF t) AS l
WHERE tasks.task_id = l.task_id;

-- name: release_pool_tasks
-- A pool gives tasks back (more than its capacity): they stay STARTED at their attempt, and
-- the Task Manager assigns them to another pool on its next tick.
UPDATE tasks SET pool_id = NULL, updated_at = now()
WHERE pool_id = %(pool_id)s AND state = 'STARTED' AND task_id = ANY (%(task_ids)s::text[])
RETURNING task_id;

-- name: lock_pool
SELECT pool_id, state FROM runner_pools WHERE pool_id = %(pool_id)s FOR UPDATE;

-- name: pool_has_tasks
SELECT EXISTS (SELECT 1 FROM tasks WHERE pool_id = %(pool_id)s AND state = 'STARTED') AS busy;

-- name: end_pool
UPDATE runner_pools SET state = %(state)s, ended_at = now(), detail = %(detail)s
WHERE pool_id = %(pool_id)s AND state IN ('LAUNCHING', 'RUNNING')
RETURNING pool_id;

-- name: list_pools
SELECT p.pool_id, p.deployment_id, p.capacity, p.state, p.run_id, p.created_at, p.started_at,
       p.heartbeat_at, p.ended_at, p.detail,
       (SELECT count(*) FROM tasks t WHERE t.pool_id = p.pool_id AND t.state = 'STARTED') AS load
FROM runner_pools p
WHERE %(all)s OR p.state IN ('LAUNCHING', 'RUNNING')
ORDER BY p.created_at DESC
LIMIT %(limit)s;
