-- etcd bootstrap of a cluster, which happens at most once (see lifecycle::cluster_bootstrap):
-- bootstrapped_at is when the cluster was recorded as bootstrapped (etcd and the Kubernetes API
-- answered after Bootstrap, or the cluster was imported with its secrets bundle). While a
-- bootstrap runs, bootstrap_claimed_by names who runs it (`job:<id>`) and bootstrap_claimed_at
-- since when: a second caller (another replica) is refused, the same job run again after a
-- crash goes on.
-- Clusters that already have a configured server were bootstrapped by hand (talosctl): they are
-- recorded as bootstrapped at their creation.
-- Keep in step with ../sqlite/0011_cluster_bootstrap.sql.
ALTER TABLE clusters ADD COLUMN bootstrapped_at TIMESTAMPTZ;
ALTER TABLE clusters ADD COLUMN bootstrap_claimed_by TEXT;
ALTER TABLE clusters ADD COLUMN bootstrap_claimed_at TIMESTAMPTZ;
UPDATE clusters SET bootstrapped_at = created_at
WHERE EXISTS (
    SELECT 1 FROM servers
    WHERE servers.cluster_id = clusters.id AND servers.last_configured_at IS NOT NULL
);
