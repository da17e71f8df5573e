-- Lifecycle jobs (reset, rolling upgrades and reboots): where a run stands, so that a job
-- resumed after a restart continues where it stopped; and which Image Factory schematic a
-- server's Talos was last installed or upgraded with, so that an upgrade skips nodes already
-- at the target version and schematic.
-- Keep in step with ../postgres/0006_lifecycle.sql.

-- JSON written by the job as it goes (per-node phases of a rolling upgrade); NULL until then.
ALTER TABLE jobs ADD COLUMN state TEXT;

-- The factory id (64 hex characters) of the schematic of the installer last applied to the
-- server by talos-manager; NULL when not known.
ALTER TABLE servers ADD COLUMN installed_schematic TEXT;

-- Jobs that must not run beside another of the same scope: a reset, rolling upgrade or rolling
-- reboot of one cluster (`cluster:<id>`) while another is queued or running would take down
-- two nodes at once. The second enqueue fails; NULL for every other job.
ALTER TABLE jobs ADD COLUMN exclusive_scope TEXT;
CREATE UNIQUE INDEX jobs_one_active_per_scope ON jobs (exclusive_scope)
    WHERE exclusive_scope IS NOT NULL AND status IN ('queued', 'running');
