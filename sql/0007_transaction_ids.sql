-- 0007: each time-series row carries the id of the transaction that wrote it.
--
-- A task's timeline keeps the rows of one transaction together (a runner's last poll writes its
-- final events and the task's FINISHED state at once). It used to tell them by the system
-- column xmin, which TimescaleDB cannot read from a compressed chunk ("transparent
-- decompression only supports tableoid system column") and which compression rewrites anyway
-- (a decompressed row's xmin is the decompressing transaction's). txid is an ordinary column,
-- written once by its default and kept through compression.
--
-- bigint rather than xid8: the same number (pg_current_xact_id(), epoch included), read by
-- every client as an integer and compressed by TimescaleDB's delta encoding.
--
-- Rows written before this migration get their xmin (the same number while the server's
-- transaction epoch is 0, and in any case equal for rows of one transaction), except rows in
-- chunks that TimescaleDB had already compressed, whose xmin was lost with the compression:
-- they keep NULL, and the timeline places such a state at its own time.
-- Idempotent and runnable by plain psql, like every migration here.

ALTER TABLE task_events ADD COLUMN IF NOT EXISTS txid bigint;
ALTER TABLE task_events ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint;
ALTER TABLE task_states ADD COLUMN IF NOT EXISTS txid bigint;
ALTER TABLE task_states ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint;

DO $$
DECLARE
    v_table text;
    v_part  regclass;
    v_hyper boolean;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['task_events', 'task_states'] LOOP
        v_hyper := false;
        IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
            EXECUTE $q$SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                                      WHERE hypertable_name = $1
                                        AND hypertable_schema = current_schema())$q$
                INTO v_hyper USING v_table;
        END IF;
        IF v_hyper THEN
            -- Chunk by chunk, the uncompressed ones only: xmin is readable there.
            FOR v_part IN
                EXECUTE $q$SELECT format('%I.%I', c.chunk_schema, c.chunk_name)::regclass
                           FROM timescaledb_information.chunks c
                           WHERE c.hypertable_name = $1 AND c.hypertable_schema = current_schema()
                             AND NOT c.is_compressed$q$ USING v_table
            LOOP
                EXECUTE format('UPDATE %s SET txid = xmin::text::bigint WHERE txid IS NULL', v_part);
            END LOOP;
        ELSE
            EXECUTE format('UPDATE %I SET txid = xmin::text::bigint WHERE txid IS NULL', v_table);
        END IF;
    END LOOP;
END $$;

INSERT INTO otf_schema_migrations (version, name)
VALUES (7, '0007_transaction_ids') ON CONFLICT (version) DO NOTHING;
