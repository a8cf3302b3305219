-- 0012: otf_report safe on any server, whoever may create objects in schema public.
--
-- otf_report runs as its owner (SECURITY DEFINER). Before this migration it and the functions
-- it calls ran with search_path = public, pg_temp. PostgreSQL always searches pg_catalog, but
-- it weighs an operator or function in public whose argument types match EXACTLY above
-- pg_catalog's polymorphic one: a role allowed to CREATE in public (PostgreSQL 14 and older by
-- default, or an explicit grant) could define `=`(task_state, task_state) or
-- public.unnest(text[]) and have it run with the owner's rights (it made otf_reporter a
-- superuser). Pinning pg_catalog first would not help, for the same reason.
--
-- The fix, for every SECURITY DEFINER function and every function it calls, and for the
-- trigger functions that run as whoever inserts events:
-- * search_path = pg_catalog, pg_temp: no schema anyone else can write is searched, so an
--   unqualified operator, function or type can only be pg_catalog's (pg_temp is listed last so
--   it is not searched first for tables, and it is never searched for operators or functions);
-- * every object of the project named with its schema (public.tasks, public.task_state,
--   public.otf_overall_state(...)), so nothing depends on the search path.
-- Behaviour is otherwise identical to 0004/0006 (same checks, same messages, same writes).
--
-- And where PUBLIC may still create in public (PostgreSQL 14 and older), that is revoked when
-- this role may (the secure schema usage pattern the PostgreSQL manual recommends, and the
-- default since 15); otherwise a WARNING names the command an administrator should run. A
-- role granted CREATE on purpose keeps it: the pinned functions are safe regardless.
-- Idempotent and runnable by plain psql, like every migration here.

CREATE OR REPLACE FUNCTION public.otf_state_is_terminal(p_state public.task_state) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT p_state IN ('FINISHED'::public.task_state, 'FAILED'::public.task_state,
                       'CANCELLED'::public.task_state)
$fn$;

CREATE OR REPLACE FUNCTION public.otf_overall_state(p_task_id text, p_required text[],
                                                    OUT state public.task_state, OUT reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH req AS (
        SELECT r.service, r.ord, ss.state
        FROM unnest(p_required) WITH ORDINALITY AS r (service, ord)
        LEFT JOIN public.task_service_states ss ON ss.task_id = p_task_id AND ss.service = r.service
    ), failed AS (
        SELECT string_agg(service, ', ' ORDER BY ord) AS names FROM req
        WHERE state = 'FAILED'::public.task_state
    )
    SELECT CASE
               WHEN failed.names IS NOT NULL THEN 'FAILED'::public.task_state
               WHEN NOT EXISTS (SELECT 1 FROM req
                                WHERE state IS DISTINCT FROM 'FINISHED'::public.task_state)
                   THEN 'FINISHED'::public.task_state
               ELSE 'STARTED'::public.task_state
           END,
           CASE WHEN failed.names IS NOT NULL THEN 'required service(s) failed: ' || failed.names END
    FROM failed
$fn$;

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
        UPDATE public.tasks t SET state = overall, updated_at = now(), last_error = v_error, finished_at = now()
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

CREATE OR REPLACE FUNCTION public.otf_report(p_task_id text, p_service text, p_state text,
                                             p_detail jsonb DEFAULT NULL,
                                             OUT overall text, OUT outcome text, OUT reason text,
                                             OUT previous text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_service  text := lower(btrim(p_service));
    v_state    public.task_state;
    v_task     public.tasks%ROWTYPE;
    v_prev     public.task_state;
    v_overall  public.task_state;
    v_reason   text;
BEGIN
    IF p_state IS NULL OR upper(btrim(p_state)) NOT IN ('STARTED', 'FINISHED', 'FAILED') THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: unknown state %s; a service reports one of STARTED, FINISHED, FAILED',
            coalesce(quote_literal(p_state), 'NULL'));
    END IF;
    v_state := upper(btrim(p_state))::public.task_state;
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
    SELECT * INTO v_task FROM public.tasks t WHERE t.task_id = p_task_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF01', MESSAGE = format(
            'task %s does not exist; see `otf tasks list`', coalesce(quote_literal(p_task_id), 'NULL'));
    END IF;

    SELECT ss.state INTO v_prev FROM public.task_service_states ss
    WHERE ss.task_id = p_task_id AND ss.service = v_service;

    IF public.otf_state_is_terminal(v_prev) THEN
        IF v_prev = v_state THEN  -- an idempotent repeat (a retried call): nothing to write
            overall := v_task.state; outcome := 'repeat'; reason := v_task.last_error; previous := v_prev;
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: service %L already reported %s for task %L; a finished or failed service cannot move to %s',
            v_service, v_prev, p_task_id, v_state);
    END IF;
    IF v_task.state <> 'STARTED'::public.task_state THEN
        RAISE EXCEPTION USING ERRCODE = 'OTF02', MESSAGE = format(
            'report refused: task %L is %s; services report on STARTED tasks only (a repeat of a service''s final report is accepted)',
            p_task_id, v_task.state);
    END IF;

    SELECT r.overall, r.reason INTO v_overall, v_reason
    FROM public.otf_record_service_state(p_task_id, v_service, v_state, v_task.attempt, p_detail, v_service) r;
    overall := v_overall; outcome := 'applied'; reason := v_reason; previous := v_prev;
END
$fn$;

REVOKE ALL ON FUNCTION public.otf_report(text, text, text, jsonb) FROM PUBLIC;

-- The trigger functions on task_events run as whoever inserts events (the runners' role): the
-- same hijack would run as that role, so they are pinned too.
CREATE OR REPLACE FUNCTION public.otf_task_events_serialize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(133169154::bigint);
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION public.otf_task_events_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_notify('otf_events', '');
    RETURN NULL;
END
$fn$;

-- PUBLIC may create in public (PostgreSQL 14 and older, or an upgraded cluster): revoke it if
-- this role can, else say who should.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
               WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
                   WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE') THEN
            RAISE WARNING 'every role may create objects in schema public of database %, so its queries can be hijacked; ask its owner to run: REVOKE CREATE ON SCHEMA public FROM PUBLIC',
                current_database();
        END IF;
    END IF;
END $$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (12, '0012_report_safety') ON CONFLICT (version) DO NOTHING;
