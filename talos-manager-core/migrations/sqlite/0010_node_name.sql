-- The names a node really has, read from it through the Talos API before a lifecycle operation
-- acts on it: its Kubernetes node name (Talos's Nodename), which is also its etcd member name.
-- Drain, uncordon, etcd member removal and the label job use it; the machine config's hostname
-- is what it is expected to be. NULL until read; cleared by a reset.
-- Keep in step with ../postgres/0010_node_name.sql.
ALTER TABLE servers ADD COLUMN node_name TEXT;
