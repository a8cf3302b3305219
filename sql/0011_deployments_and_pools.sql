-- 0011: deployments that cooperate on one task database, and runner pools.
--
-- * deployments: every Dagster deployment (one Dagster instance: its own storage, daemon and
--   Task Manager sensor) that manages tasks here holds a lease it renews each tick. A task
--   records the deployment that launched its current attempt (tasks.deployment_id); a
--   deployment reconciles its own tasks only, and takes over another's once that
--   deployment's lease has expired (with a new attempt, fencing any runner still alive).
-- * runner_pools: one Dagster run hosting many tasks (the seed's always-running TaskRunners).
--   The Task Manager assigns claimed tasks to a pool of its deployment with spare capacity
--   (tasks.pool_id; NOTIFY otf_pools wakes the pool), or launches a new pool. A pool
--   heartbeats; it ends itself when it has had no task for a grace period.
-- * task_types.runner: 'run' (one Dagster run per task: a run page and logs per game) or
--   'pool' (scale); NULL takes the deployment's default (OTF_RUNNER_MODE).

CREATE TABLE IF NOT EXISTS deployments (
    deployment_id    text PRIMARY KEY
                     CONSTRAINT deployments_id_format CHECK (deployment_id ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    name             text NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL DEFAULT now(),
    renewed_at       timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL
);

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS deployment_id text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS pool_id text;
CREATE INDEX IF NOT EXISTS tasks_pool_idx ON tasks (pool_id) WHERE state = 'STARTED';
CREATE INDEX IF NOT EXISTS tasks_started_deployment_idx ON tasks (deployment_id) WHERE state = 'STARTED';

ALTER TABLE task_types ADD COLUMN IF NOT EXISTS runner text;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'task_types_runner_mode'
                   AND conrelid = 'task_types'::regclass) THEN
        ALTER TABLE task_types ADD CONSTRAINT task_types_runner_mode
            CHECK (runner IS NULL OR runner IN ('run', 'pool'));
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS runner_pools (
    pool_id        text PRIMARY KEY
                   CONSTRAINT runner_pools_id_format CHECK (pool_id ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    deployment_id  text NOT NULL,
    capacity       integer NOT NULL
                   CONSTRAINT runner_pools_capacity_range CHECK (capacity BETWEEN 1 AND 100000),
    state          text NOT NULL DEFAULT 'LAUNCHING'
                   CONSTRAINT runner_pools_state_values CHECK (state IN ('LAUNCHING', 'RUNNING', 'ENDED', 'FAILED')),
    run_id         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    heartbeat_at   timestamptz,
    ended_at       timestamptz,
    detail         text
);
CREATE INDEX IF NOT EXISTS runner_pools_live_idx ON runner_pools (deployment_id)
    WHERE state IN ('LAUNCHING', 'RUNNING');

INSERT INTO otf_schema_migrations (version, name)
VALUES (11, '0011_deployments_and_pools') ON CONFLICT (version) DO NOTHING;
