-- 0013: delivery of task events to services' endpoints (webhooks, NATS JetStream).
--
-- The outbox is task_events itself: each endpoint keeps a durable position over seq (commit
-- order, gap-free: 0004), "every matching event with seq <= position was accepted by the sink
-- or is in delivery_pending". The relay reads past the position, sends, and advances it in the
-- same transaction that records the events it could not deliver yet (delivery_pending), so a
-- relay killed at any point re-sends (same event id) and loses nothing. No WAL decoding.
--
-- An endpoint belongs to an owner (a service, as in subscriptions); it receives the events of
-- every task type the owner is subscribed to, optionally narrowed to some event kinds.
-- The webhook secret is never stored: secret_envs names the environment variables the relay
-- reads it from (several while a secret is rotated: each signs, space-separated signatures).
--
-- A relay holds a lease per endpoint (lease_holder, lease_until): two relays never deliver one
-- endpoint at once; every write a relay makes for an endpoint quotes its lease (the fence).

CREATE TABLE IF NOT EXISTS delivery_endpoints (
    endpoint_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner           text NOT NULL
                    CONSTRAINT delivery_endpoints_owner_format CHECK (owner ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    sink            text NOT NULL
                    CONSTRAINT delivery_endpoints_sink_kind CHECK (sink IN ('webhook', 'nats')),
    -- webhook: the URL; nats: the server URL (NULL: the relay's OTF_NATS_URL / embedded server)
    url             text,
    secret_envs     text[] NOT NULL DEFAULT '{}',
    nats_subject    text,
    kinds           text[],          -- NULL: every kind
    batch_size      integer NOT NULL DEFAULT 1
                    CONSTRAINT delivery_endpoints_batch_size CHECK (batch_size BETWEEN 1 AND 1000),
    rate_per_s      double precision
                    CONSTRAINT delivery_endpoints_rate_positive CHECK (rate_per_s IS NULL OR rate_per_s > 0),
    allow_link_local boolean NOT NULL DEFAULT false,
    -- active | paused (by a person) | disabled (410 Gone, or failing too long) | removed
    state           text NOT NULL DEFAULT 'active'
                    CONSTRAINT delivery_endpoints_state CHECK (state IN ('active', 'paused', 'disabled', 'removed')),
    state_reason    text,
    position        bigint NOT NULL
                    CONSTRAINT delivery_endpoints_position_nonnegative CHECK (position >= 0),
    hold_until      timestamptz,     -- Retry-After: send nothing to this endpoint before
    failing_since   timestamptz,     -- the first failure since the last success
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error      text,
    delivered       bigint NOT NULL DEFAULT 0,
    lease_holder    text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT delivery_endpoints_target CHECK (
        (sink = 'webhook' AND url ~ '^https?://' AND nats_subject IS NULL)
        OR (sink = 'nats' AND nats_subject IS NOT NULL)
    )
);
CREATE INDEX IF NOT EXISTS delivery_endpoints_owner_idx ON delivery_endpoints (owner);

-- Events an endpoint still owes: a failed one waiting for its next attempt, and the later events
-- of the same task held behind it (a task's events go in order; other tasks' are not held).
-- A row whose attempts are exhausted is 'dead' (the dead-letter view) and no longer holds its
-- task back; `otf endpoints replay` puts events back here.
CREATE TABLE IF NOT EXISTS delivery_pending (
    endpoint_id     bigint NOT NULL REFERENCES delivery_endpoints (endpoint_id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    task_id         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    dead            boolean NOT NULL DEFAULT false,
    last_status     integer,
    last_error      text,
    PRIMARY KEY (endpoint_id, seq)
);
CREATE INDEX IF NOT EXISTS delivery_pending_task_idx ON delivery_pending (endpoint_id, task_id, seq) WHERE NOT dead;

-- Every failed attempt (successes are counted on the endpoint, not kept row by row).
CREATE TABLE IF NOT EXISTS delivery_attempts (
    attempt_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     bigint NOT NULL REFERENCES delivery_endpoints (endpoint_id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL,
    status          integer,
    error           text,
    response_start  text
);
CREATE INDEX IF NOT EXISTS delivery_attempts_at_idx ON delivery_attempts (endpoint_id, at DESC);

-- Relays alive now: each renews its row every lease refresh (``otf relay`` and the Dagster
-- relay run alike); the Task Manager re-launches its deployment's relay run when the run's row
-- stops being renewed.
CREATE TABLE IF NOT EXISTS delivery_relays (
    holder          text PRIMARY KEY,
    deployment_id   text,
    run_id          text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    endpoints       integer NOT NULL DEFAULT 0,
    delivered       bigint NOT NULL DEFAULT 0
);

INSERT INTO otf_schema_migrations (version, name)
VALUES (13, '0013_delivery') ON CONFLICT (version) DO NOTHING;
