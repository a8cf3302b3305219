-- 0004: services and consumers.
--
-- * otf_report(): the ONE place where a service's progress report is validated and applied
--   (its own state, the task's state history, the task's derived overall state). psql callers,
--   the `otf report` CLI and otf_dagster.services.report() all go through it. It runs as its
--   owner (SECURITY DEFINER, pinned search_path) so the NOLOGIN role otf_reporter may call it
--   while holding no table privilege at all.
-- * Event delivery: every INSERT/COPY into task_events takes the events advisory lock before its
--   rows draw seq numbers (so seq order is commit order for every writer, psql included) and
--   NOTIFYs channel otf_events when it commits; consumer_cursors holds each consumer's durable
--   position ("every event with seq <= position was processed").
-- Idempotent and runnable by plain psql, like every migration here; works unchanged when
-- task_events is a TimescaleDB hypertable (statement-level triggers without transition tables
-- are supported there and fire for COPY too).

CREATE TABLE IF NOT EXISTS consumer_cursors (
    consumer    text PRIMARY KEY
                CONSTRAINT consumer_cursors_consumer_format CHECK (consumer ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    position    bigint NOT NULL DEFAULT 0
                CONSTRAINT consumer_cursors_position_nonnegative CHECK (position >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- seq order equals commit order only if each nextval() hands out the next number: a session
-- cache (CACHE > 1) would let a session hold back a block of smaller numbers. 0002 creates it
-- with CACHE 1; say so explicitly.
ALTER SEQUENCE task_events_seq CACHE 1;

-- A consumer reads "seq > cursor of its subscribed types, by seq".
CREATE INDEX IF NOT EXISTS task_events_type_seq_idx ON task_events (task_type, seq);

-- --- the task's overall state from its required services (same rule as aggregate.py) -----------

-- Any required service FAILED -> FAILED naming them (in the type's order); all FINISHED ->
-- FINISHED; otherwise STARTED. Services a type does not require never decide.
CREATE OR REPLACE FUNCTION otf_overall_state(p_task_id text, p_required text[],
                                             OUT state task_state, OUT reason text)
LANGUAGE sql STABLE
SET search_path = public, pg_temp
AS $fn$
    WITH req AS (
        SELECT r.service, r.ord, ss.state
        FROM unnest(p_required) WITH ORDINALITY AS r (service, ord)
        LEFT JOIN task_service_states ss ON ss.task_id = p_task_id AND ss.service = r.service
    ), failed AS (
        SELECT string_agg(service, ', ' ORDER BY ord) AS names FROM req WHERE state = 'FAILED'
    )
    SELECT CASE
               WHEN failed.names IS NOT NULL THEN 'FAILED'::task_state
               WHEN NOT EXISTS (SELECT 1 FROM req WHERE state IS DISTINCT FROM 'FINISHED') THEN 'FINISHED'::task_state
               ELSE 'STARTED'::task_state
           END,
           CASE WHEN failed.names IS NOT NULL THEN 'required service(s) failed: ' || failed.names END
    FROM failed
$fn$;

-- --- progress reports ----------------------------------------------------------------------------

-- Errors carry SQLSTATE OTF01 (no such task) or OTF02 (report refused); the message says what
-- was wrong, with which value, and what is allowed.
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
    v_required text[];
    v_overall  task_state;
    v_why      text;
    v_error    text;
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

    IF v_prev IN ('FINISHED', 'FAILED') THEN
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

    INSERT INTO task_service_states (task_id, service, state, attempt, detail, updated_at)
    VALUES (p_task_id, v_service, v_state, v_task.attempt, p_detail, now())
    ON CONFLICT (task_id, service) DO UPDATE SET
        state = EXCLUDED.state, attempt = EXCLUDED.attempt, detail = EXCLUDED.detail, updated_at = now();
    INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source, detail)
    VALUES (now(), p_task_id, v_task.attempt, v_service, v_state, v_prev, v_service, p_detail);

    SELECT tt.required_services INTO v_required FROM task_types tt WHERE tt.name = v_task.task_type;
    SELECT o.state, o.reason INTO v_overall, v_why FROM otf_overall_state(p_task_id, v_required) o;
    IF v_overall IN ('FINISHED', 'FAILED') THEN
        -- As store._finish_service: a failed task's error names the services, then the reason
        -- the failing reporter gave (detail.reason), if any.
        IF v_overall = 'FAILED' AND v_state = 'FAILED' THEN
            v_error := concat_ws('; ', v_why, nullif(p_detail ->> 'reason', ''));
        ELSE
            v_error := v_why;
        END IF;
        UPDATE tasks t SET state = v_overall, updated_at = now(), last_error = v_error, finished_at = now()
        WHERE t.task_id = p_task_id;
        INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source, detail)
        VALUES (now(), p_task_id, v_task.attempt, 'task', v_overall, 'STARTED', 'task_manager',
                CASE WHEN v_why IS NOT NULL THEN jsonb_build_object('reason', v_why) END);
    END IF;
    overall := v_overall; outcome := 'applied'; reason := coalesce(v_error, v_why); previous := v_prev;
END
$fn$;

-- A SECURITY DEFINER function is executable by PUBLIC unless revoked: only its owner and
-- otf_reporter may call it.
REVOKE ALL ON FUNCTION otf_report(text, text, text, jsonb) FROM PUBLIC;

-- The reporter role is cluster-wide: create it once, whichever database migrates first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'otf_reporter') THEN
        BEGIN
            CREATE ROLE otf_reporter NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- another database won the race
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role otf_reporter (needs CREATEROLE): ask an admin to run CREATE ROLE otf_reporter NOLOGIN, then re-run this file';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'otf_reporter') THEN
        IF NOT has_schema_privilege('otf_reporter', current_schema(), 'USAGE') THEN
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO otf_reporter', current_schema());
        END IF;
        GRANT EXECUTE ON FUNCTION otf_report(text, text, text, jsonb) TO otf_reporter;
    END IF;
END $$;

-- --- event delivery ------------------------------------------------------------------------------

-- Same key as otf_dagster.store.EVENTS_LOCK_KEY (0x07F00002). store._copy_events already takes
-- it; this makes every other writer (psql, scripts) take it too, before any row draws its seq.
CREATE OR REPLACE FUNCTION otf_task_events_serialize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(133169154);
    RETURN NULL;
END
$fn$;

-- Delivered at commit (never for a rolled-back insert); one per transaction, however many rows.
CREATE OR REPLACE FUNCTION otf_task_events_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $fn$
BEGIN
    PERFORM pg_notify('otf_events', '');
    RETURN NULL;
END
$fn$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'task_events'::regclass AND tgname = 'task_events_serialize') THEN
        CREATE TRIGGER task_events_serialize BEFORE INSERT ON task_events
            FOR EACH STATEMENT EXECUTE FUNCTION otf_task_events_serialize();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'task_events'::regclass AND tgname = 'task_events_notify') THEN
        CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
            FOR EACH STATEMENT EXECUTE FUNCTION otf_task_events_notify();
    END IF;
END $$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (4, '0004_services') ON CONFLICT (version) DO NOTHING;
