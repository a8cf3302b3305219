-- 0002: what HAPPENED to tasks (the time-series store): append-only rows.
-- These stay plain tables with time indexes unless 0003 finds TimescaleDB.
-- No unique key on an event id: a hypertable's unique indexes must contain its time column,
-- so runners de-duplicate through the task checkpoint instead (see store.record_poll).

CREATE TABLE IF NOT EXISTS task_states (
    time            timestamptz NOT NULL DEFAULT now(),
    -- Insertion order within equal times (not unique by itself: hypertables allow no such key).
    id              bigint GENERATED ALWAYS AS IDENTITY,
    task_id         text NOT NULL,
    attempt         integer NOT NULL DEFAULT 0,
    -- 'task' for the task's own lifecycle; otherwise the reporting service ('runner', 'photo'...).
    service         text NOT NULL DEFAULT 'task'
                    CONSTRAINT task_states_service_format CHECK (service ~ '^[a-z][a-z0-9_-]{0,62}$'),
    state           task_state NOT NULL,
    previous_state  task_state,
    source          text,
    detail          jsonb
);
CREATE INDEX IF NOT EXISTS task_states_task_time_idx ON task_states (task_id, time DESC);
CREATE INDEX IF NOT EXISTS task_states_time_idx ON task_states (time DESC);

-- seq is the commit-order position of an event: appenders take a transaction-scoped advisory
-- lock before drawing from this sequence, so seq order equals commit order and a consumer
-- reading "seq > cursor" can never skip a row that commits later with a smaller number.
CREATE SEQUENCE IF NOT EXISTS task_events_seq AS bigint;

CREATE TABLE IF NOT EXISTS task_events (
    time            timestamptz NOT NULL DEFAULT now(),
    seq             bigint NOT NULL DEFAULT nextval('task_events_seq'),
    task_id         text NOT NULL,
    task_runner_id  text NOT NULL,
    task_type       text NOT NULL,
    -- The n-th event of its task (1, 2, ...): a runner resumed from its checkpoint continues the
    -- numbering, so the stream of a killed-and-resumed game equals an uninterrupted one.
    task_seq        integer NOT NULL
                    CONSTRAINT task_events_task_seq_positive CHECK (task_seq > 0),
    kind            text NOT NULL
                    CONSTRAINT task_events_kind_format CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS task_events_seq_idx ON task_events (seq);
CREATE INDEX IF NOT EXISTS task_events_task_idx ON task_events (task_id, task_seq);
CREATE INDEX IF NOT EXISTS task_events_time_idx ON task_events (time DESC);

INSERT INTO otf_schema_migrations (version, name)
VALUES (2, '0002_timeseries') ON CONFLICT (version) DO NOTHING;
