-- Named queries: services' reports and subscriptions.
-- Each starts with "-- name: NAME"; parameters are psycopg's %(name)s placeholders, always
-- bound, never formatted into the text. Names are unique across this folder.

-- name: services_report
SELECT overall, outcome, reason, previous FROM otf_report(%s, %s, %s, %s);

-- name: services_subscribe
INSERT INTO subscriptions AS s (owner, task_type)
SELECT %(owner)s, tt.name FROM task_types tt WHERE tt.name = %(task_type)s AND tt.deleted_at IS NULL
ON CONFLICT (owner, task_type) DO UPDATE SET deleted_at = NULL, created_at = now()
WHERE s.deleted_at IS NOT NULL
RETURNING (xmax = 0) AS inserted;

-- name: services_subscription_exists
SELECT 1 FROM subscriptions
WHERE owner = %(owner)s AND task_type = %(task_type)s AND deleted_at IS NULL;

-- name: services_unsubscribe
UPDATE subscriptions SET deleted_at = now()
WHERE owner = %(owner)s AND task_type = %(task_type)s AND deleted_at IS NULL
RETURNING owner;

-- name: services_list_subscriptions
SELECT owner, task_type, created_at, deleted_at FROM subscriptions
WHERE (%(owner)s::text IS NULL OR owner = %(owner)s::text)
  AND (%(include_deleted)s OR deleted_at IS NULL)
ORDER BY owner, task_type;
