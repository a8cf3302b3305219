-- 0001: what a task IS (the structure store): mutable, lockable, rarely changing rows.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'task_state') THEN
        -- The lifecycle: SCHEDULED -> STARTED -> FINISHED | FAILED, or CANCELLED before it starts.
        -- Services' own progress (runner, photo, caption...) uses the same values.
        CREATE TYPE task_state AS ENUM ('SCHEDULED', 'STARTED', 'FINISHED', 'FAILED', 'CANCELLED');
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS task_types (
    name                    text PRIMARY KEY
                            CONSTRAINT task_types_name_format CHECK (name ~ '^[A-Z][A-Z0-9_]{1,62}$'),
    handler                 text NOT NULL
                            CONSTRAINT task_types_handler_format CHECK (handler ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    -- Path (relative to the feed's base URL) or absolute URL to poll; {key} is the external key.
    url_template            text NOT NULL
                            CONSTRAINT task_types_url_has_key CHECK (position('{key}' IN url_template) > 0),
    poll_interval_seconds   double precision NOT NULL
                            CONSTRAINT task_types_poll_interval_positive CHECK (poll_interval_seconds > 0),
    -- How long after it starts a runner may go on before it gives up (FAILED: deadline).
    deadline_seconds        integer NOT NULL DEFAULT 21600
                            CONSTRAINT task_types_deadline_positive CHECK (deadline_seconds > 0),
    max_attempts            integer NOT NULL DEFAULT 3
                            CONSTRAINT task_types_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    max_consecutive_errors  integer NOT NULL DEFAULT 10
                            CONSTRAINT task_types_max_errors_positive CHECK (max_consecutive_errors > 0),
    -- A heartbeat older than this marks a STARTED task's runner as lost.
    stale_after_seconds     integer NOT NULL DEFAULT 300
                            CONSTRAINT task_types_stale_after_positive CHECK (stale_after_seconds > 0),
    -- The services whose reports decide the task's overall state; the runner is one of them.
    required_services       text[] NOT NULL DEFAULT ARRAY['runner']
                            CONSTRAINT task_types_required_services_nonempty CHECK (cardinality(required_services) >= 1),
    params                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    description             text NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);

CREATE TABLE IF NOT EXISTS tasks (
    -- Also the Dagster partition key: only [A-Za-z0-9_:.-], never '...'.
    task_id         text PRIMARY KEY
                    CONSTRAINT tasks_task_id_format CHECK (task_id ~ '^[A-Za-z0-9_:.-]{1,200}$' AND position('...' IN task_id) = 0),
    task_type       text NOT NULL REFERENCES task_types (name),
    external_key    text NOT NULL
                    CONSTRAINT tasks_external_key_length CHECK (length(external_key) BETWEEN 1 AND 200),
    scheduled_at    timestamptz NOT NULL,
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           task_state NOT NULL DEFAULT 'SCHEDULED',
    -- The fencing token: bumped at every claim or re-launch; writers must quote it.
    attempt         integer NOT NULL DEFAULT 0
                    CONSTRAINT tasks_attempt_nonnegative CHECK (attempt >= 0),
    run_id          text,
    heartbeat_at    timestamptz,
    checkpoint      jsonb,
    last_error      text,
    parent_task_id  text REFERENCES tasks (task_id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT tasks_type_key_unique UNIQUE (task_type, external_key)
);

-- The claim reads only this: ready tasks by time.
CREATE INDEX IF NOT EXISTS tasks_ready_idx ON tasks (scheduled_at, task_id) WHERE state = 'SCHEDULED';
-- Reconciliation reads only this: running tasks.
CREATE INDEX IF NOT EXISTS tasks_started_idx ON tasks (heartbeat_at) WHERE state = 'STARTED';
CREATE INDEX IF NOT EXISTS tasks_state_idx ON tasks (state, scheduled_at);

-- Each service's own current state for a task (the runner is the service 'runner').
CREATE TABLE IF NOT EXISTS task_service_states (
    task_id     text NOT NULL REFERENCES tasks (task_id),
    service     text NOT NULL
                CONSTRAINT task_service_states_service_format CHECK (service ~ '^[a-z][a-z0-9_-]{0,62}$'),
    state       task_state NOT NULL,
    attempt     integer NOT NULL DEFAULT 0,
    detail      jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, service)
);

-- Owners (consumers, services) subscribe to task types; soft-deletable.
CREATE TABLE IF NOT EXISTS subscriptions (
    owner       text NOT NULL
                CONSTRAINT subscriptions_owner_format CHECK (owner ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    task_type   text NOT NULL REFERENCES task_types (name),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (owner, task_type)
);

INSERT INTO otf_schema_migrations (version, name)
VALUES (1, '0001_structure') ON CONFLICT (version) DO NOTHING;
