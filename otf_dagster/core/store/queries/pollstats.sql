-- Named queries: the runners' poll records (task_polls, sql/0008).
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: log_poll
-- time is the column default now(): the poll transaction's time on the database clock, as for
-- the events and state rows the same transaction writes.
INSERT INTO task_polls (task_id, task_type, attempt, task_runner_id, lateness_seconds, events, error)
VALUES (%(task_id)s, %(task_type)s, %(attempt)s, %(task_runner_id)s, %(lateness_seconds)s,
        %(events)s, %(error)s);

-- name: task_polls
SELECT time, attempt, task_runner_id, lateness_seconds, events, error
FROM task_polls WHERE task_id = %(task_id)s
ORDER BY time;
