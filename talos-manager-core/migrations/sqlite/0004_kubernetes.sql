-- Kubernetes: the version a cluster runs, and the labels and taints talos-manager put on each
-- server's node, so that a rule changed or deleted removes exactly what it had added.
-- Keep in step with ../postgres/0004_kubernetes.sql.

-- The `gitVersion` the cluster's API server last reported (`1.33.1`), and when it was last
-- asked (answered or not): `GET /config` asks again only after a while.
ALTER TABLE clusters ADD COLUMN running_kubernetes_version TEXT;
ALTER TABLE clusters ADD COLUMN running_kubernetes_version_checked_at TEXT;

CREATE TABLE applied_labels_taints (
    server_id BIGINT PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    -- The Kubernetes node they were applied to (the machine config's hostname).
    node_name TEXT NOT NULL,
    -- What was applied, in the rules' own syntax: `key=value,…` and `key=value:Effect,…`.
    labels TEXT NOT NULL,
    taints TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
