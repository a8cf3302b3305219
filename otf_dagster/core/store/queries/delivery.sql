-- Named queries: delivery of events to endpoints (sql/0013). The relay's writes for an endpoint
-- all quote its lease (lease_holder = %(holder)s AND lease_until > now()): the fence.

-- name: delivery_insert_endpoint
INSERT INTO delivery_endpoints (owner, sink, url, secret_envs, nats_subject, kinds, batch_size,
                                rate_per_s, allow_link_local, position)
VALUES (%(owner)s, %(sink)s, %(url)s, %(secret_envs)s, %(nats_subject)s, %(kinds)s,
        %(batch_size)s, %(rate_per_s)s, %(allow_link_local)s,
        CASE WHEN %(from_start)s THEN 0 ELSE (SELECT coalesce(max(seq), 0) FROM task_events) END)
RETURNING *;

-- name: delivery_get_endpoint
SELECT * FROM delivery_endpoints WHERE endpoint_id = %(endpoint_id)s;

-- name: delivery_list_endpoints
SELECT * FROM delivery_endpoints
WHERE (%(include_removed)s OR state <> 'removed')
  AND (%(owner)s::text IS NULL OR owner = %(owner)s::text)
ORDER BY endpoint_id;

-- name: delivery_set_state
-- A person's change (pause, resume, remove): a resumed endpoint starts afresh (no hold, and its
-- failing clock restarts); the lease is left alone, the relay re-reads the state every cycle.
UPDATE delivery_endpoints
SET state = %(state)s, state_reason = %(reason)s, updated_at = now(),
    hold_until = CASE WHEN %(state)s = 'active' THEN NULL ELSE hold_until END,
    failing_since = CASE WHEN %(state)s = 'active' THEN NULL ELSE failing_since END
WHERE endpoint_id = %(endpoint_id)s AND state <> 'removed'
RETURNING *;

-- name: delivery_lag
-- Events the endpoint has not been sent yet (past its position, of its owner's types and its
-- kinds), and the ones it still owes (pending: retrying or held; dead ones apart).
SELECT
    (SELECT count(*) FROM task_events ev
     WHERE ev.seq > e.position
       AND ev.task_type = ANY (ARRAY(SELECT s.task_type FROM subscriptions s
                                     WHERE s.owner = e.owner AND s.deleted_at IS NULL))
       AND (e.kinds IS NULL OR ev.kind = ANY (e.kinds))) AS unsent,
    (SELECT count(*) FROM delivery_pending p WHERE p.endpoint_id = e.endpoint_id AND NOT p.dead) AS pending,
    (SELECT count(*) FROM delivery_pending p WHERE p.endpoint_id = e.endpoint_id AND p.dead) AS dead
FROM delivery_endpoints e
WHERE e.endpoint_id = %(endpoint_id)s;

-- name: delivery_failed_attempts
SELECT a.seq, a.attempt, a.at, a.status, a.error, a.response_start, ev.task_id, ev.kind
FROM delivery_attempts a
LEFT JOIN task_events ev ON ev.seq = a.seq
WHERE a.endpoint_id = %(endpoint_id)s
ORDER BY a.at DESC, a.attempt_id DESC
LIMIT %(limit)s;

-- name: delivery_replay
-- Put already-passed events back in the endpoint's pending list (same ids), due now. Events
-- past the position are not touched: the relay sends them anyway.
INSERT INTO delivery_pending (endpoint_id, seq, task_id, attempts, next_attempt_at)
SELECT e.endpoint_id, ev.seq, ev.task_id, 0, now()
FROM delivery_endpoints e
JOIN task_events ev
  ON ev.seq <= e.position
 AND ev.task_type = ANY (ARRAY(SELECT s.task_type FROM subscriptions s
                               WHERE s.owner = e.owner AND s.deleted_at IS NULL))
 AND (e.kinds IS NULL OR ev.kind = ANY (e.kinds))
WHERE e.endpoint_id = %(endpoint_id)s
  AND (%(from_seq)s::bigint IS NULL OR ev.seq >= %(from_seq)s::bigint)
  AND (%(since)s::timestamptz IS NULL OR ev.time >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR ev.time < %(until)s::timestamptz)
ON CONFLICT (endpoint_id, seq) DO UPDATE
SET attempts = 0, dead = false, next_attempt_at = now(), last_status = NULL, last_error = NULL;

-- --- the relay ------------------------------------------------------------------------------------

-- name: delivery_claim_endpoints
-- Take (or keep) the leases of active endpoints nobody else holds live; returns every endpoint
-- this relay holds after the statement. SKIP LOCKED: two relays claiming at once never wait on
-- each other, and never both take one endpoint.
WITH free AS (
    SELECT endpoint_id FROM delivery_endpoints
    WHERE state = 'active'
      AND (lease_holder IS NULL OR lease_until < now() OR lease_holder = %(holder)s)
    ORDER BY endpoint_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE delivery_endpoints e
SET lease_holder = %(holder)s, lease_until = now() + make_interval(secs => %(lease_seconds)s)
FROM free
WHERE e.endpoint_id = free.endpoint_id
RETURNING e.*;

-- name: delivery_release_endpoints
UPDATE delivery_endpoints SET lease_holder = NULL, lease_until = NULL
WHERE lease_holder = %(holder)s;

-- name: delivery_read_endpoint
-- The endpoint as its lease holder sees it now (NULL when the lease is gone).
SELECT * FROM delivery_endpoints
WHERE endpoint_id = %(endpoint_id)s AND lease_holder = %(holder)s AND lease_until > now();

-- name: delivery_new_events
-- Events past the position, of the owner's types and the endpoint's kinds, in seq order, with
-- the horizon (largest seq committed in this snapshot: every smaller seq is final, so after a
-- short batch the position may jump to it; see consumer_subscribed_events).
SELECT h.horizon, ev.*
FROM (SELECT coalesce(max(seq), 0) AS horizon FROM task_events) AS h
LEFT JOIN LATERAL (
    SELECT x.seq, x.time, x.task_id, x.task_runner_id, x.task_type, x.task_seq, x.kind, x.payload,
           t.external_key
    FROM task_events x
    LEFT JOIN tasks t ON t.task_id = x.task_id
    WHERE x.seq > %(after)s
      AND x.task_type = ANY (ARRAY(SELECT s.task_type FROM subscriptions s
                                   WHERE s.owner = %(owner)s AND s.deleted_at IS NULL))
      AND (%(kinds)s::text[] IS NULL OR x.kind = ANY (%(kinds)s::text[]))
    ORDER BY x.seq
    LIMIT %(limit)s
) AS ev ON true
ORDER BY ev.seq;

-- name: delivery_due_pending
-- Each task's first owed event (its lowest non-dead pending seq) when it is due: a task's later
-- events wait behind it; other tasks' do not.
SELECT p.seq, p.attempts, p.task_id, x.time, x.task_runner_id, x.task_type, x.task_seq, x.kind,
       x.payload, t.external_key
FROM (
    SELECT DISTINCT ON (task_id) seq, task_id, attempts, next_attempt_at
    FROM delivery_pending
    WHERE endpoint_id = %(endpoint_id)s AND NOT dead
    ORDER BY task_id, seq
) AS p
JOIN task_events x ON x.seq = p.seq
LEFT JOIN tasks t ON t.task_id = p.task_id
WHERE p.next_attempt_at <= %(now)s
ORDER BY p.seq
LIMIT %(limit)s;

-- name: delivery_next_due
SELECT min(next_attempt_at) AS next_due FROM delivery_pending
WHERE endpoint_id = %(endpoint_id)s AND NOT dead;

-- name: delivery_blocked_tasks
SELECT DISTINCT task_id FROM delivery_pending
WHERE endpoint_id = %(endpoint_id)s AND NOT dead AND task_id = ANY (%(task_ids)s);

-- name: delivery_fence
-- First statement of every relay commit: locks the endpoint row and proves the lease.
SELECT position FROM delivery_endpoints
WHERE endpoint_id = %(endpoint_id)s AND lease_holder = %(holder)s AND lease_until > now()
FOR UPDATE;

-- name: delivery_delete_pending
DELETE FROM delivery_pending WHERE endpoint_id = %(endpoint_id)s AND seq = ANY (%(seqs)s);

-- name: delivery_upsert_pending
INSERT INTO delivery_pending (endpoint_id, seq, task_id, attempts, next_attempt_at, dead,
                              last_status, last_error)
VALUES (%(endpoint_id)s, %(seq)s, %(task_id)s, %(attempts)s, %(next_attempt_at)s, %(dead)s,
        %(last_status)s, %(last_error)s)
ON CONFLICT (endpoint_id, seq) DO UPDATE
SET attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at,
    dead = EXCLUDED.dead, last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error;

-- name: delivery_insert_attempt
INSERT INTO delivery_attempts (endpoint_id, seq, attempt, at, status, error, response_start)
VALUES (%(endpoint_id)s, %(seq)s, %(attempt)s, %(at)s, %(status)s, %(error)s, %(response_start)s);

-- name: delivery_advance
-- GREATEST: a position never moves back. The relay computes the failing clock (cleared by a
-- success, started by the first failure after one).
UPDATE delivery_endpoints
SET position = greatest(position, %(position)s),
    delivered = delivered + %(delivered)s,
    last_success_at = CASE WHEN %(succeeded)s THEN %(now)s ELSE last_success_at END,
    last_failure_at = CASE WHEN %(failed)s THEN %(now)s ELSE last_failure_at END,
    last_error = CASE WHEN %(failed)s THEN %(error)s ELSE last_error END,
    failing_since = %(failing_since)s,
    hold_until = %(hold_until)s,
    state = CASE WHEN %(disable)s THEN 'disabled' ELSE state END,
    state_reason = CASE WHEN %(disable)s THEN %(disable_reason)s ELSE state_reason END,
    updated_at = now()
WHERE endpoint_id = %(endpoint_id)s AND lease_holder = %(holder)s
RETURNING *;

-- name: delivery_relay_heartbeat
INSERT INTO delivery_relays (holder, deployment_id, run_id, endpoints, delivered)
VALUES (%(holder)s, %(deployment_id)s, %(run_id)s, %(endpoints)s, %(delivered)s)
ON CONFLICT (holder) DO UPDATE
SET heartbeat_at = now(), endpoints = EXCLUDED.endpoints, delivered = EXCLUDED.delivered;

-- name: delivery_relay_gone
DELETE FROM delivery_relays WHERE holder = %(holder)s OR heartbeat_at < now() - interval '1 day';

-- name: delivery_relay_age
-- Seconds since the relay of a run last renewed (NULL: it never did).
SELECT extract(epoch FROM now() - heartbeat_at)::float8 AS age FROM delivery_relays
WHERE run_id = %(run_id)s ORDER BY heartbeat_at DESC LIMIT 1;

-- name: delivery_active_count
SELECT count(*) AS n FROM delivery_endpoints WHERE state = 'active';

-- name: delivery_set_url
-- `otf dev`'s receiver listens on a new port each session: its webhook endpoint follows it.
UPDATE delivery_endpoints SET url = %(url)s, secret_envs = %(secret_envs)s, updated_at = now()
WHERE endpoint_id = %(endpoint_id)s AND state <> 'removed'
RETURNING *;
