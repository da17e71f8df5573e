-- Inventory never lost to one answer, and jobs looked up without reading them all.
-- Keep in step with ../sqlite/0008_inventory_and_jobs.sql.

-- A server or vSwitch its provider account no longer lists is marked missing instead of being
-- deleted at once: when it was first missed (NULL while listed) and how many syncs in a row
-- missed it. Sync deletes it only after SYNC_MISSING_SYNCS misses and SYNC_MISSING_GRACE.
ALTER TABLE servers ADD COLUMN missing_since TIMESTAMPTZ;
ALTER TABLE servers ADD COLUMN missing_syncs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vswitches ADD COLUMN missing_since TIMESTAMPTZ;
ALTER TABLE vswitches ADD COLUMN missing_syncs INTEGER NOT NULL DEFAULT 0;

-- The periodic sync asks whether a sync job is queued or running, and the retention deletes
-- finished jobs by age: both without reading the whole table.
CREATE INDEX jobs_kind_status ON jobs (kind, status);
CREATE INDEX jobs_finished_at ON jobs (finished_at);
