-- Named queries: durable consumers: cursors and event reads.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

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
