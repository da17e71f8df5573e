-- The machine type of a configured server (`controlplane` or `worker`), recorded when its
-- machine config is created and changed only by an explicit admin action: renaming the server
-- at its provider no longer turns it into a control plane (and hands it the cluster's CA keys).
-- Keep in step with ../sqlite/0009_machine_type.sql.
ALTER TABLE machine_configs ADD COLUMN machine_type TEXT NOT NULL DEFAULT 'worker';

-- Existing machine configs keep the type the naming convention gave them until now (a name
-- containing `control-plane`, case-sensitive).
UPDATE machine_configs SET machine_type = 'controlplane'
    WHERE server_id IN (SELECT id FROM servers WHERE strpos(name, 'control-plane') > 0);
