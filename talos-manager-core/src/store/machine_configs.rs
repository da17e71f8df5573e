//! Machine configs: the binding of one server to a config, with its per-node values.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::ids::{ConfigId, MachineConfigId, ServerId};
use crate::node_identity::machine_type_for;
use crate::talos::MachineType;

/// A server's machine config binding: what `/config` renders for it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServerMachineConfig {
    /// Its id.
    pub id: MachineConfigId,
    /// The server it configures (one binding per server).
    pub server_id: ServerId,
    /// The per-node values.
    #[sqlx(flatten)]
    pub fields: MachineConfigFields,
    /// Control plane or worker: recorded when the machine config is created (from the server's
    /// name then, unless given), kept when it is replaced, changed only when an admin gives
    /// one ([`Store::put_machine_config_as`]). Renaming the server never changes it.
    #[sqlx(try_from = "String")]
    pub machine_type: MachineType,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a machine config is created or replaced with.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MachineConfigFields {
    /// The config template.
    pub config_id: ConfigId,
    /// The node's hostname (`[a-z-]+-N`), for `${hostname}`.
    pub hostname: String,
    /// The node's private IP (`10.0.x.N`), for `${private_ip}`.
    pub private_ip: String,
    /// The disk Talos installs to, e.g. `/dev/nvme0n1`.
    pub install_disk: String,
    /// The disk for the EPHEMERAL volume: `wwid:<wwid>` or `uuid:<md uuid>`.
    pub ephemeral_disk_identifier: Option<String>,
}

const COLUMNS: &str = "id, server_id, config_id, hostname, private_ip, install_disk, \
                       ephemeral_disk_identifier, machine_type, created_at, updated_at";

impl Store {
    /// Binds a server to a config, replacing its previous binding if it had one. A new
    /// binding records the machine type the server's name gives now
    /// ([`machine_type_for`]); a replaced one keeps its recorded type.
    pub async fn put_machine_config(
        &self,
        server_id: ServerId,
        fields: &MachineConfigFields,
    ) -> Result<ServerMachineConfig, StoreError> {
        self.put_machine_config_as(server_id, fields, None).await
    }

    /// [`Store::put_machine_config`] with an explicit machine type (an admin's choice), which
    /// is recorded whether the binding is new or replaced; `None` as `put_machine_config`.
    pub async fn put_machine_config_as(
        &self,
        server_id: ServerId,
        fields: &MachineConfigFields,
        machine_type: Option<MachineType>,
    ) -> Result<ServerMachineConfig, StoreError> {
        let _changed = self.config_inputs_change();
        let initial = match machine_type {
            Some(machine_type) => machine_type,
            None => {
                let sql = sql!("SELECT name FROM servers WHERE id = $1");
                let name: Option<String> = on_pool!(self, |pool| sqlx::query_scalar(sql)
                    .bind(server_id)
                    .fetch_optional(pool)
                    .await)
                .map_err(StoreError::query("get server name"))?;
                // No such server: the insert fails on its reference.
                name.map_or(MachineType::Worker, |name| machine_type_for(&name))
            }
        };
        let sql = sql!(
            "INSERT INTO machine_configs (server_id, config_id, hostname, private_ip, \
             install_disk, ephemeral_disk_identifier, machine_type, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (server_id) DO UPDATE SET config_id = $2, hostname = $3, \
             private_ip = $4, install_disk = $5, ephemeral_disk_identifier = $6, \
             machine_type = COALESCE($9, machine_configs.machine_type), updated_at = $8 \
             RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(server_id)
            .bind(fields.config_id)
            .bind(&fields.hostname)
            .bind(&fields.private_ip)
            .bind(&fields.install_disk)
            .bind(&fields.ephemeral_disk_identifier)
            .bind(initial.as_str())
            .bind(now())
            .bind(machine_type.map(MachineType::as_str))
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("machine config", "put machine config", e))
    }

    /// Every machine config, by hostname.
    pub async fn list_machine_configs(&self) -> Result<Vec<ServerMachineConfig>, StoreError> {
        self.list_rows("machine_configs", COLUMNS, "hostname, id")
            .await
    }

    /// The machine config of a server, if it has one.
    pub async fn machine_config_for_server(
        &self,
        server_id: ServerId,
    ) -> Result<Option<ServerMachineConfig>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM machine_configs WHERE server_id = $1");
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(server_id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get machine config of server"))
    }

    /// One machine config.
    pub async fn get_machine_config(
        &self,
        id: MachineConfigId,
    ) -> Result<ServerMachineConfig, StoreError> {
        self.get_row("machine_configs", COLUMNS, "machine config", id.0)
            .await
    }

    /// Deletes a machine config: the server waits for a new one at its next boot.
    pub async fn delete_machine_config(&self, id: MachineConfigId) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        self.delete_row("machine_configs", "machine config", id.0)
            .await
    }
}
