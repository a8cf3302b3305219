-- Named queries: a task's timeline.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: timeline_states
-- Bounded like timeline_events (below): every state row is written by a transaction that holds
-- the task's row (inserted, updated or locked FOR UPDATE while it is not terminal), sql/0017.
SELECT id, time, attempt, service, state::text AS state, previous_state::text AS previous_state,
       source, detail, txid
FROM task_states
WHERE task_id = %(task_id)s
  AND time >= %(since)s::timestamptz
  AND time <= coalesce(%(until)s::timestamptz, 'infinity'::timestamptz);

-- name: timeline_events
-- Bounded by the task's lifetime, passed as values (the task's created_at and finished_at, NULL
-- while it runs): TimescaleDB then plans against the chunks of those days only, not all of
-- task_events' daily chunks. No event of a task is outside its lifetime (sql/0017).
SELECT seq, time, task_runner_id, task_seq, kind, payload, txid
FROM task_events
WHERE task_id = %(task_id)s
  AND time >= %(since)s::timestamptz
  AND time <= coalesce(%(until)s::timestamptz, 'infinity'::timestamptz);

-- name: score_timeline
-- A game's events per time bucket (otf_time_bucket: TimescaleDB's time_bucket() where it is
-- installed, sql/0008) with the points scored in it and the score at its end: the last event of
-- the bucket that carries home_score and away_score (score_changed, lead_changed, game_final...).
-- A bucket with no scoring has NULL scores; the caller carries the score forward.
SELECT otf_time_bucket(%(bucket)s::interval, time) AS bucket,
       count(*) AS events,
       count(*) FILTER (WHERE kind = 'score_changed') AS score_changes,
       coalesce(sum((payload ->> 'points')::int) FILTER (WHERE kind = 'score_changed'
                                                          AND payload ->> 'side' = 'home'), 0)
           AS home_points,
       coalesce(sum((payload ->> 'points')::int) FILTER (WHERE kind = 'score_changed'
                                                          AND payload ->> 'side' = 'away'), 0)
           AS away_points,
       (array_agg((payload ->> 'home_score')::int ORDER BY seq DESC)
            FILTER (WHERE payload ? 'home_score' AND payload ? 'away_score'))[1] AS home_score,
       (array_agg((payload ->> 'away_score')::int ORDER BY seq DESC)
            FILTER (WHERE payload ? 'home_score' AND payload ? 'away_score'))[1] AS away_score
FROM task_events
WHERE task_id = %(task_id)s
  AND time >= %(since)s::timestamptz
  AND time <= coalesce(%(until)s::timestamptz, 'infinity'::timestamptz)  -- as timeline_events
GROUP BY 1
ORDER BY 1;
