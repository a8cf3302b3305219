-- 0015: backfills that never delay live work (issue 20).
--
-- * tasks.lane: 'live' (a game to follow as it happens: the default) or 'backfill' (a game the
--   feed already reports final when it is ingested: polled once for its final state and the
--   events its feed still gives). The claim takes due live tasks first and gives backfill
--   tasks only what is left of each tick's claim limit, up to a cap of backfill tasks
--   STARTED at once (core/manager.py Settings.backfill_max_started). A follow-up task
--   inherits its parent's lane; the lane of an existing task never changes.
-- * tasks_ready_idx now leads with the lane, so each lane's claim is one index range scan in
--   (scheduled_at, task_id) order: 5,000 overdue backfill tasks are not scanned past to find
--   tonight's games. Still partial on SCHEDULED, so it stays as small as the ready set.
-- * backfill_pace: one row per feed host, the next free slot of the backfill's request pace
--   (OTF_BACKFILL_RPS requests per second per host). Every backfill request, from whichever
--   process or deployment, reserves the next slot in one UPDATE and waits for it.

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS lane text NOT NULL DEFAULT 'live';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'tasks_lane_known'
                   AND conrelid = 'tasks'::regclass) THEN
        ALTER TABLE tasks ADD CONSTRAINT tasks_lane_known CHECK (lane IN ('live', 'backfill'));
    END IF;
END $$;

DO $$
BEGIN
    -- Re-made only while it is still 0001's (scheduled_at, task_id) index: re-running this
    -- file changes nothing.
    IF EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()
               AND indexname = 'tasks_ready_idx'
               AND indexdef NOT LIKE '%(lane, scheduled_at, task_id)%') THEN
        DROP INDEX tasks_ready_idx;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS tasks_ready_idx ON tasks (lane, scheduled_at, task_id)
    WHERE state = 'SCHEDULED';
-- The cap reads the number of STARTED backfill tasks each tick.
CREATE INDEX IF NOT EXISTS tasks_started_lane_idx ON tasks (lane) WHERE state = 'STARTED';

CREATE TABLE IF NOT EXISTS backfill_pace (
    host     text PRIMARY KEY
             CONSTRAINT backfill_pace_host_length CHECK (length(host) BETWEEN 1 AND 255),
    next_at  timestamptz NOT NULL
);

INSERT INTO otf_schema_migrations (version, name)
VALUES (15, '0015_backfill_lane') ON CONFLICT (version) DO NOTHING;
