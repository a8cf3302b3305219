-- Named queries: what a task type is: create, read, soft delete.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: upsert_task_type
INSERT INTO task_types AS tt (name, handler, url_template, base_url, poll_interval_seconds,
                              min_poll_interval_seconds, max_poll_interval_seconds,
                              deadline_seconds, max_attempts, max_consecutive_errors,
                              stale_after_seconds, required_services, params, spawn, runner, description)
VALUES (%(name)s, %(handler)s, %(url_template)s, %(base_url)s, %(poll_interval_seconds)s,
        %(min_poll_interval_seconds)s, %(max_poll_interval_seconds)s, %(deadline_seconds)s,
        %(max_attempts)s, %(max_consecutive_errors)s, %(stale_after_seconds)s,
        %(required_services)s, %(params)s, %(spawn)s, %(runner)s, %(description)s)
ON CONFLICT (name) DO UPDATE SET
    handler = EXCLUDED.handler,
    url_template = EXCLUDED.url_template,
    base_url = EXCLUDED.base_url,
    poll_interval_seconds = EXCLUDED.poll_interval_seconds,
    min_poll_interval_seconds = EXCLUDED.min_poll_interval_seconds,
    max_poll_interval_seconds = EXCLUDED.max_poll_interval_seconds,
    deadline_seconds = EXCLUDED.deadline_seconds,
    max_attempts = EXCLUDED.max_attempts,
    max_consecutive_errors = EXCLUDED.max_consecutive_errors,
    stale_after_seconds = EXCLUDED.stale_after_seconds,
    required_services = EXCLUDED.required_services,
    params = EXCLUDED.params,
    spawn = EXCLUDED.spawn,
    runner = EXCLUDED.runner,
    description = EXCLUDED.description,
    deleted_at = NULL,
    updated_at = now()
RETURNING *, (xmax = 0) AS inserted;

-- name: get_task_type
SELECT name, handler, url_template, base_url, poll_interval_seconds, min_poll_interval_seconds,
       max_poll_interval_seconds, deadline_seconds, max_attempts, max_consecutive_errors,
       stale_after_seconds, required_services, params, spawn, runner, description,
       created_at, updated_at, deleted_at
FROM task_types WHERE name = %(name)s;

-- name: lock_live_task_type
SELECT name, url_template FROM task_types WHERE name = %(name)s AND deleted_at IS NULL FOR SHARE;

-- name: get_task_types
SELECT name, handler, url_template, base_url, poll_interval_seconds, min_poll_interval_seconds,
       max_poll_interval_seconds, deadline_seconds, max_attempts, max_consecutive_errors,
       stale_after_seconds, required_services, params, spawn, runner, description,
       created_at, updated_at, deleted_at
FROM task_types WHERE name = ANY (%(names)s);

-- name: list_task_types
SELECT name, handler, url_template, base_url, poll_interval_seconds, min_poll_interval_seconds,
       max_poll_interval_seconds, deadline_seconds, max_attempts, max_consecutive_errors,
       stale_after_seconds, required_services, params, spawn, runner, description,
       created_at, updated_at, deleted_at
FROM task_types
WHERE %(include_deleted)s OR deleted_at IS NULL
ORDER BY name;

-- name: soft_delete_task_type
UPDATE task_types SET deleted_at = now(), updated_at = now()
WHERE name = %(name)s AND deleted_at IS NULL
RETURNING name;
