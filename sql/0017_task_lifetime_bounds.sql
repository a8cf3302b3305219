-- 0017: a task's lifetime bounds its events (issue 20: the timeline of a year-old game).
--
-- The timeline reads a task's events and states with `time BETWEEN created_at AND finished_at`, passed as
-- parameters, so TimescaleDB plans against the chunks of the task's lifetime only, not every
-- daily chunk of task_events. That is right only if no event of a task is older than its
-- created_at or later than its finished_at. Every event is written by a runner's poll
-- (store.polls.record_poll: one transaction, fenced by an UPDATE of the task's row, STARTED
-- with the runner's attempt and run id) and carries that transaction's now():
-- * created_at: the poll's transaction starts after the claim that made the task STARTED
--   committed, and the claim after the insert that set created_at: time >= created_at.
-- * finished_at was now() of the transaction that ended the task. A service's report
--   (otf_report -> otf_record_service_state) or a cancel that started before a runner's poll
--   but reached the task's row after it (waiting on the poll's row lock) set finished_at
--   earlier than the poll's events. Now every terminal transition sets finished_at to
--   clock_timestamp(), read when its UPDATE holds the row lock: after any poll that wrote
--   events committed (time = that poll's start <= its commit), and a poll that comes later is
--   refused by the fence. A poll that ends the task itself writes its events with the same
--   transaction's now(), <= clock_timestamp(). (queries/tasks.sql `transition` likewise.)
-- * task_states, read by the timeline with the same bounds: every state row is written by a
--   transaction holding the task's row (the insert that sets created_at, or an UPDATE or
--   SELECT ... FOR UPDATE of a task that is not terminal: claim, transition, relaunch, adopt,
--   retry, otf_record_service_state), with that transaction's now(): the same argument.
--   A retry clears finished_at (no upper bound until the task ends again).
-- * Rows written before this migration: created_at is lowered and finished_at raised to the
--   task's first and last event or state row where they are not already outside them (one
--   pass over task_events and task_states; nothing changes on a database the runtime alone
--   wrote, but for the race above).
-- Idempotent and runnable by plain psql, like every migration here.

CREATE OR REPLACE FUNCTION public.otf_record_service_state(p_task_id text, p_service text,
                                                           p_state public.task_state,
                                                           p_attempt integer, p_detail jsonb,
                                                           p_source text,
                                                           OUT overall public.task_state,
                                                           OUT reason text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_prev     public.task_state;
    v_required text[];
    v_why      text;
    v_error    text;
BEGIN
    SELECT ss.state INTO v_prev FROM public.task_service_states ss
    WHERE ss.task_id = p_task_id AND ss.service = p_service;

    INSERT INTO public.task_service_states (task_id, service, state, attempt, detail, updated_at)
    VALUES (p_task_id, p_service, p_state, p_attempt, p_detail, now())
    ON CONFLICT (task_id, service) DO UPDATE SET
        state = EXCLUDED.state, attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, updated_at = now();
    INSERT INTO public.task_states (time, task_id, attempt, service, state, previous_state, source, detail)
    VALUES (now(), p_task_id, p_attempt, p_service, p_state, v_prev, p_source, p_detail);

    SELECT tt.required_services INTO v_required
    FROM public.tasks t JOIN public.task_types tt ON tt.name = t.task_type
    WHERE t.task_id = p_task_id;
    SELECT o.state, o.reason INTO overall, v_why FROM public.otf_overall_state(p_task_id, v_required) o;

    IF public.otf_state_is_terminal(overall) THEN
        -- A failed task's error names the failed services, then the reason the failing
        -- service gave (detail.reason), if any.
        IF overall = 'FAILED'::public.task_state THEN
            v_error := concat_ws('; ', v_why, nullif(p_detail ->> 'reason', ''));
        ELSE
            v_error := v_why;
        END IF;
        -- clock_timestamp(), not now(): this UPDATE may have waited for the row lock of a runner's
        -- poll whose events carry a later now() than this transaction's start (0017).
        UPDATE public.tasks t SET state = overall, updated_at = now(), last_error = v_error,
                                  finished_at = clock_timestamp()
        WHERE t.task_id = p_task_id AND t.state = 'STARTED'::public.task_state AND t.attempt = p_attempt;
        IF FOUND THEN
            INSERT INTO public.task_states (time, task_id, attempt, service, state, previous_state, source, detail)
            VALUES (now(), p_task_id, p_attempt, 'task', overall, 'STARTED'::public.task_state, 'task_manager',
                    CASE WHEN v_why IS NOT NULL THEN jsonb_build_object('reason', v_why) END);
        END IF;
    END IF;
    reason := coalesce(v_error, v_why);
END
$fn$;

REVOKE ALL ON FUNCTION public.otf_record_service_state(text, text, public.task_state, integer, jsonb, text) FROM PUBLIC;

UPDATE tasks t
SET created_at = least(t.created_at, e.first_time),
    finished_at = CASE WHEN t.finished_at IS NULL THEN NULL
                       ELSE greatest(t.finished_at, e.last_time) END
FROM (SELECT task_id, min(first_time) AS first_time, max(last_time) AS last_time
      FROM (SELECT task_id, min(time) AS first_time, max(time) AS last_time
            FROM task_events GROUP BY task_id
            UNION ALL
            SELECT task_id, min(time), max(time) FROM task_states GROUP BY task_id) AS r
      GROUP BY task_id) AS e
WHERE e.task_id = t.task_id
  AND (e.first_time < t.created_at OR e.last_time > t.finished_at);

INSERT INTO otf_schema_migrations (version, name)
VALUES (17, '0017_task_lifetime_bounds') ON CONFLICT (version) DO NOTHING;
