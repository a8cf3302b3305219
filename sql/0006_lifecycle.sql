-- 0006: the lifecycle's rules in one home.
--
-- Before this migration the rules that end a task lived twice: in otf_report (plpgsql, for
-- services) and in the Python store (for the runner). Now both call these functions:
-- * otf_state_is_terminal(state): FINISHED, FAILED and CANCELLED end a task
--   (models.TaskState.terminal is held equal to it by a test);
-- * otf_overall_state(task, required services) (0004): the task's state from its services';
-- * otf_record_service_state(...): a service's state on a task, its history row, and the
--   task's overall state re-derived and applied, fenced by the attempt. The caller has checked
--   what it must (otf_report: the report's validity; the runner: its fenced checkpoint write)
--   and holds the task's row lock.
-- Idempotent and runnable by plain psql, like every migration here.

CREATE OR REPLACE FUNCTION otf_state_is_terminal(p_state task_state) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = public, pg_temp
AS $fn$
    SELECT p_state IN ('FINISHED'::task_state, 'FAILED'::task_state, 'CANCELLED'::task_state)
$fn$;

CREATE OR REPLACE FUNCTION otf_record_service_state(p_task_id text, p_service text,
                                                    p_state task_state, p_attempt integer,
                                                    p_detail jsonb, p_source text,
                                                    OUT overall task_state, OUT reason text)
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_prev     task_state;
    v_required text[];
    v_why      text;
    v_error    text;
BEGIN
    SELECT ss.state INTO v_prev FROM task_service_states ss
    WHERE ss.task_id = p_task_id AND ss.service = p_service;

    INSERT INTO task_service_states (task_id, service, state, attempt, detail, updated_at)
    VALUES (p_task_id, p_service, p_state, p_attempt, p_detail, now())
    ON CONFLICT (task_id, service) DO UPDATE SET
        state = EXCLUDED.state, attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, updated_at = now();
    INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source, detail)
    VALUES (now(), p_task_id, p_attempt, p_service, p_state, v_prev, p_source, p_detail);

    SELECT tt.required_services INTO v_required
    FROM tasks t JOIN task_types tt ON tt.name = t.task_type
    WHERE t.task_id = p_task_id;
    SELECT o.state, o.reason INTO overall, v_why FROM otf_overall_state(p_task_id, v_required) o;

    IF otf_state_is_terminal(overall) THEN
        -- A failed task's error names the failed services, then the reason the failing
        -- service gave (detail.reason), if any.
        IF overall = 'FAILED' THEN
            v_error := concat_ws('; ', v_why, nullif(p_detail ->> 'reason', ''));
        ELSE
            v_error := v_why;
        END IF;
        UPDATE tasks t SET state = overall, updated_at = now(), last_error = v_error, finished_at = now()
        WHERE t.task_id = p_task_id AND t.state = 'STARTED' AND t.attempt = p_attempt;
        IF FOUND THEN
            INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source, detail)
            VALUES (now(), p_task_id, p_attempt, 'task', overall, 'STARTED', 'task_manager',
                    CASE WHEN v_why IS NOT NULL THEN jsonb_build_object('reason', v_why) END);
        END IF;
    END IF;
    reason := coalesce(v_error, v_why);
END
$fn$;

-- Not for direct callers: the runner (the table owner) and otf_report use it.
REVOKE ALL ON FUNCTION otf_record_service_state(text, text, task_state, integer, jsonb, text) FROM PUBLIC;

-- otf_report keeps its checks and hands the rest to otf_record_service_state.
CREATE OR REPLACE FUNCTION otf_report(p_task_id text, p_service text, p_state text,
                                      p_detail jsonb DEFAULT NULL,
                                      OUT overall text, OUT outcome text, OUT reason text,
                                      OUT previous text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
DECLARE
    v_service  text := lower(btrim(p_service));
    v_state    task_state;
    v_task     tasks%ROWTYPE;
    v_prev     task_state;
    v_overall  task_state;
    v_reason   text;
BEGIN
    IF p_state IS NULL OR upper(btrim(p_state)) NOT IN ('STARTED', 'FINISHED', 'FAILED') THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: unknown state %s; a service reports one of STARTED, FINISHED, FAILED',
            coalesce(quote_literal(p_state), 'NULL'));
    END IF;
    v_state := upper(btrim(p_state))::task_state;
    IF v_service IS NULL OR v_service !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: bad service name %s; use 1 to 63 characters: a lowercase letter, then lowercase letters, digits, _ or -',
            coalesce(quote_literal(p_service), 'NULL'));
    END IF;
    IF v_service IN ('task', 'runner') THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: service name %L is reserved (the task''s own lifecycle and its TaskRunner write it); report under your service''s own name',
            v_service);
    END IF;
    IF p_detail IS NOT NULL AND jsonb_typeof(p_detail) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: detail must be a JSON object, not %s', jsonb_typeof(p_detail));
    END IF;

    -- The row lock serializes reports (and runner writes) on one task, so two services
    -- finishing at once cannot both miss each other when the overall state is derived.
    SELECT * INTO v_task FROM tasks t WHERE t.task_id = p_task_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF01', MESSAGE = format(
            'task %s does not exist; see `otf tasks list`', coalesce(quote_literal(p_task_id), 'NULL'));
    END IF;

    SELECT ss.state INTO v_prev FROM task_service_states ss
    WHERE ss.task_id = p_task_id AND ss.service = v_service;

    IF otf_state_is_terminal(v_prev) THEN
        IF v_prev = v_state THEN  -- an idempotent repeat (a retried call): nothing to write
            overall := v_task.state; outcome := 'repeat'; reason := v_task.last_error; previous := v_prev;
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: service %L already reported %s for task %L; a finished or failed service cannot move to %s',
            v_service, v_prev, p_task_id, v_state);
    END IF;
    IF v_task.state <> 'STARTED' THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: task %L is %s; services report on STARTED tasks only (a repeat of a service''s final report is accepted)',
            p_task_id, v_task.state);
    END IF;

    SELECT r.overall, r.reason INTO v_overall, v_reason
    FROM otf_record_service_state(p_task_id, v_service, v_state, v_task.attempt, p_detail, v_service) r;
    overall := v_overall; outcome := 'applied'; reason := v_reason; previous := v_prev;
END
$fn$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (6, '0006_lifecycle') ON CONFLICT (version) DO NOTHING;
