//! Servers: the fleet as synced from the providers, plus what talos-manager learnt about each.

use time::OffsetDateTime;

use super::provider_accounts::parse_provider_kind;
use super::{Pool, Store, StoreError, now, on_pool, sql};
use crate::ids::{ClusterId, ProviderAccountId, SchematicId, ServerId, VswitchId};
use crate::provider::{Architecture, ProviderKind};

fn parse_architecture(value: &str) -> Result<Architecture, StoreError> {
    match value {
        "amd64" => Ok(Architecture::Amd64),
        "arm64" => Ok(Architecture::Arm64),
        _ => Err(StoreError::Corrupt {
            column: "servers.architecture",
            value: value.to_owned(),
        }),
    }
}

/// What a provider reports about a server; sync writes it with [`Store::upsert_server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInventory {
    /// Robot or Cloud.
    pub provider: ProviderKind,
    /// The Robot server number or Cloud server id.
    pub provider_id: String,
    /// The name at the provider.
    pub name: String,
    /// The public IPv4 address, if it has one.
    pub ipv4: Option<String>,
    /// The public IPv6 network or address, if any.
    pub ipv6: Option<String>,
    /// The product or server type (`AX41-NVMe`, `cx22`).
    pub product: String,
    /// The data center or location (`FSN1-DC14`, `fsn1`).
    pub data_center: String,
    /// The provider's status (`ready`, `running`, …).
    pub status: String,
    /// Whether the server is cancelled at the provider.
    pub cancelled: bool,
    /// Its CPU architecture.
    pub architecture: Architecture,
    /// The Robot vSwitch it is attached to, if any.
    pub vswitch_id: Option<VswitchId>,
}

/// The operator's fields of a server to change with [`Store::update_server_fields`]: `None`
/// leaves the stored value as it is (another request or a sync may have changed it meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFieldChanges {
    /// A new name (already applied at the provider).
    pub name: Option<String>,
    /// A new cluster, or none.
    pub cluster_id: Option<Option<ClusterId>>,
    /// A new vSwitch, or none (already applied at the provider).
    pub vswitch_id: Option<Option<VswitchId>>,
    /// A new schematic, or the default.
    pub schematic_id: Option<Option<SchematicId>>,
}

/// What [`Store::upsert_server`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerUpsert {
    /// A server new to talos-manager.
    Inserted,
    /// A known server whose provider data was written again.
    Updated,
}

/// What probing a server over SSH found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether the server is in rescue and reachable.
    pub accessible: bool,
    /// The SMBIOS UUID (`dmidecode -s system-uuid`), when in rescue.
    pub uuid: Option<String>,
    /// The disks (`lsblk --json`), when in rescue.
    pub lsblk: Option<String>,
}

/// A server as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its id here.
    pub id: ServerId,
    /// The account it was synced from.
    pub provider_account_id: ProviderAccountId,
    /// What the provider reports.
    pub inventory: ServerInventory,
    /// The cluster it belongs to, if any.
    pub cluster_id: Option<ClusterId>,
    /// Whether it is in rescue and reachable over SSH (last probe).
    pub accessible: bool,
    /// Its SMBIOS UUID, recorded in rescue.
    pub uuid: Option<String>,
    /// Its disks as `lsblk --json` printed them in rescue.
    pub lsblk: Option<String>,
    /// The disk Talos was written to.
    pub bootstrap_disk: Option<String>,
    /// That disk's WWID, for `${bootstrap_disk_wwid}`.
    pub bootstrap_disk_wwid: Option<String>,
    /// The Image Factory schematic chosen for it, if not the default.
    pub schematic_id: Option<SchematicId>,
    /// When rescue was last activated through the provider.
    pub rescue_activated_at: Option<OffsetDateTime>,
    /// When it last asked for its config.
    pub last_request_for_configuration_at: Option<OffsetDateTime>,
    /// When it was last served a config.
    pub last_configured_at: Option<OffsetDateTime>,
    /// When its labels and taints were last applied.
    pub label_and_taint_job_completed_at: Option<OffsetDateTime>,
    /// The Image Factory id of the schematic its Talos was last upgraded to by talos-manager,
    /// when known: a rolling upgrade skips nodes at the target version and this schematic.
    pub installed_schematic: Option<String>,
    /// When its provider account first stopped listing it; `None` while it is listed. Sync
    /// deletes a server only after it has been missing for a while ([`crate::sync::SyncPolicy`]).
    pub missing_since: Option<OffsetDateTime>,
    /// How many syncs in a row did not find it at its provider account (0 while listed).
    pub missing_syncs: i32,
    /// The node's name as the node itself reported it (Talos's Nodename: its Kubernetes node
    /// and etcd member name), recorded by lifecycle operations before they act; `None` until
    /// read, and after a reset.
    pub node_name: Option<String>,
    /// When it was first synced.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: ServerId,
    provider: String,
    provider_id: String,
    provider_account_id: ProviderAccountId,
    name: String,
    ipv4: Option<String>,
    ipv6: Option<String>,
    product: String,
    data_center: String,
    status: String,
    cancelled: bool,
    architecture: String,
    vswitch_id: Option<VswitchId>,
    cluster_id: Option<ClusterId>,
    accessible: bool,
    uuid: Option<String>,
    lsblk: Option<String>,
    bootstrap_disk: Option<String>,
    bootstrap_disk_wwid: Option<String>,
    schematic_id: Option<SchematicId>,
    rescue_activated_at: Option<OffsetDateTime>,
    last_request_for_configuration_at: Option<OffsetDateTime>,
    last_configured_at: Option<OffsetDateTime>,
    label_and_taint_job_completed_at: Option<OffsetDateTime>,
    installed_schematic: Option<String>,
    missing_since: Option<OffsetDateTime>,
    missing_syncs: i32,
    node_name: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<Row> for Server {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(Server {
            id: row.id,
            provider_account_id: row.provider_account_id,
            inventory: ServerInventory {
                provider: parse_provider_kind("servers.provider", &row.provider)?,
                provider_id: row.provider_id,
                name: row.name,
                ipv4: row.ipv4,
                ipv6: row.ipv6,
                product: row.product,
                data_center: row.data_center,
                status: row.status,
                cancelled: row.cancelled,
                architecture: parse_architecture(&row.architecture)?,
                vswitch_id: row.vswitch_id,
            },
            cluster_id: row.cluster_id,
            accessible: row.accessible,
            uuid: row.uuid,
            lsblk: row.lsblk,
            bootstrap_disk: row.bootstrap_disk,
            bootstrap_disk_wwid: row.bootstrap_disk_wwid,
            schematic_id: row.schematic_id,
            rescue_activated_at: row.rescue_activated_at,
            last_request_for_configuration_at: row.last_request_for_configuration_at,
            last_configured_at: row.last_configured_at,
            label_and_taint_job_completed_at: row.label_and_taint_job_completed_at,
            installed_schematic: row.installed_schematic,
            missing_since: row.missing_since,
            missing_syncs: row.missing_syncs,
            node_name: row.node_name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, provider, provider_id, provider_account_id, name, ipv4, ipv6, product, \
    data_center, status, cancelled, architecture, vswitch_id, cluster_id, accessible, uuid, lsblk, \
    bootstrap_disk, bootstrap_disk_wwid, schematic_id, rescue_activated_at, \
    last_request_for_configuration_at, last_configured_at, label_and_taint_job_completed_at, \
    installed_schematic, missing_since, missing_syncs, node_name, created_at, updated_at";

fn into_servers(rows: Vec<Row>) -> Result<Vec<Server>, StoreError> {
    rows.into_iter().map(TryInto::try_into).collect()
}

impl Store {
    /// Writes what a provider reports about a server, keyed by (provider, provider id). Fields
    /// talos-manager owns (cluster, probe results, timestamps) are kept; a server marked missing
    /// is listed again, so the mark is cleared.
    pub async fn upsert_server(
        &self,
        provider_account_id: ProviderAccountId,
        inventory: &ServerInventory,
    ) -> Result<(Server, ServerUpsert), StoreError> {
        let _changed = self.config_inputs_change();
        // `created_at = updated_at` only on the row just inserted tells the two cases apart.
        let sql = sql!(
            "INSERT INTO servers (provider, provider_id, provider_account_id, name, ipv4, ipv6, \
             product, data_center, status, cancelled, architecture, vswitch_id, accessible, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE, $13, $13) \
             ON CONFLICT (provider, provider_id) DO UPDATE SET provider_account_id = $3, \
             name = $4, ipv4 = $5, ipv6 = $6, product = $7, data_center = $8, status = $9, \
             cancelled = $10, architecture = $11, vswitch_id = $12, missing_since = NULL, \
             missing_syncs = 0, updated_at = $13 \
             RETURNING {COLUMNS}"
        );
        let now = now();
        let row: Row = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(inventory.provider.as_str())
            .bind(&inventory.provider_id)
            .bind(provider_account_id)
            .bind(&inventory.name)
            .bind(&inventory.ipv4)
            .bind(&inventory.ipv6)
            .bind(&inventory.product)
            .bind(&inventory.data_center)
            .bind(&inventory.status)
            .bind(inventory.cancelled)
            .bind(inventory.architecture.as_str())
            .bind(inventory.vswitch_id)
            .bind(now)
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("server", "upsert server", e))?;
        let server = Server::try_from(row)?;
        let outcome = if server.created_at == now {
            ServerUpsert::Inserted
        } else {
            ServerUpsert::Updated
        };
        Ok((server, outcome))
    }

    /// Every server, by cluster then name.
    pub async fn list_servers(&self) -> Result<Vec<Server>, StoreError> {
        let rows: Vec<Row> = self
            .list_rows("servers", COLUMNS, "cluster_id, name, id")
            .await?;
        into_servers(rows)
    }

    /// One server.
    pub async fn get_server(&self, id: ServerId) -> Result<Server, StoreError> {
        let row: Row = self.get_row("servers", COLUMNS, "server", id.0).await?;
        row.try_into()
    }

    /// The server with that provider id.
    pub async fn get_server_by_provider_id(
        &self,
        provider: ProviderKind,
        provider_id: &str,
    ) -> Result<Server, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM servers WHERE provider = $1 AND provider_id = $2");
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(provider.as_str())
            .bind(provider_id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get server by provider id"))?;
        row.ok_or_else(|| StoreError::not_found("server", format!("{provider} {provider_id}")))?
            .try_into()
    }

    /// The servers whose public IPv4 address is `ipv4` (normally one).
    pub async fn find_servers_by_ipv4(&self, ipv4: &str) -> Result<Vec<Server>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM servers WHERE ipv4 = $1 ORDER BY id");
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(ipv4)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("find servers by ipv4"))?;
        into_servers(rows)
    }

    /// The servers whose SMBIOS UUID is `uuid`, ignoring case (normally one).
    pub async fn find_servers_by_uuid(&self, uuid: &str) -> Result<Vec<Server>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM servers WHERE lower(uuid) = lower($1) ORDER BY id");
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(uuid)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("find servers by uuid"))?;
        into_servers(rows)
    }

    /// Sets the fields an operator edits: name, cluster, vSwitch and schematic.
    pub async fn update_server_assignment(
        &self,
        id: ServerId,
        name: &str,
        cluster_id: Option<ClusterId>,
        vswitch_id: Option<VswitchId>,
        schematic_id: Option<SchematicId>,
    ) -> Result<Server, StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "UPDATE servers SET name = $2, cluster_id = $3, vswitch_id = $4, schematic_id = $5, \
             updated_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(name)
            .bind(cluster_id)
            .bind(vswitch_id)
            .bind(schematic_id)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("server", "update server", e))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// Writes only the fields `changes` sets, in one statement, and returns the server as it is
    /// then: a slow edit never writes back stale values of the fields it did not change.
    pub async fn update_server_fields(
        &self,
        id: ServerId,
        changes: &ServerFieldChanges,
    ) -> Result<Server, StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "UPDATE servers SET name = CASE WHEN $2 THEN $3 ELSE name END, \
             cluster_id = CASE WHEN $4 THEN $5 ELSE cluster_id END, \
             vswitch_id = CASE WHEN $6 THEN $7 ELSE vswitch_id END, \
             schematic_id = CASE WHEN $8 THEN $9 ELSE schematic_id END, \
             updated_at = $10 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(changes.name.is_some())
            .bind(changes.name.as_deref().unwrap_or_default())
            .bind(changes.cluster_id.is_some())
            .bind(changes.cluster_id.flatten())
            .bind(changes.vswitch_id.is_some())
            .bind(changes.vswitch_id.flatten())
            .bind(changes.schematic_id.is_some())
            .bind(changes.schematic_id.flatten())
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("server", "update server", e))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// Records what probing the server over SSH found.
    pub async fn record_probe(&self, id: ServerId, probe: &ProbeResult) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        let sql = "UPDATE servers SET accessible = $2, uuid = COALESCE($3, uuid), \
                   lsblk = COALESCE($4, lsblk), updated_at = $5 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(probe.accessible)
            .bind(&probe.uuid)
            .bind(&probe.lsblk)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record probe"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Records the disk Talos was written to.
    pub async fn record_bootstrap_disk(
        &self,
        id: ServerId,
        disk: &str,
        wwid: Option<&str>,
    ) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        let sql = "UPDATE servers SET bootstrap_disk = $2, bootstrap_disk_wwid = $3, \
                   updated_at = $4 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(disk)
            .bind(wwid)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record bootstrap disk"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Records that rescue was activated through the provider at `at`: the server reboots, so
    /// it is not reachable until it is probed again.
    pub async fn record_rescue_activation(
        &self,
        id: ServerId,
        at: OffsetDateTime,
    ) -> Result<Server, StoreError> {
        let sql = sql!(
            "UPDATE servers SET rescue_activated_at = $2, accessible = FALSE, updated_at = $3 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(at)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("record rescue activation"))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// Records a finished bootstrap, as the original app does: the disk Talos was written to,
    /// the server no longer in rescue, and its config and label timestamps cleared, so its state
    /// follows the node as it boots Talos and asks for its config.
    pub async fn record_bootstrapped(
        &self,
        id: ServerId,
        disk: &str,
        wwid: Option<&str>,
    ) -> Result<Server, StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "UPDATE servers SET bootstrap_disk = $2, bootstrap_disk_wwid = $3, accessible = FALSE, \
             last_request_for_configuration_at = NULL, last_configured_at = NULL, \
             label_and_taint_job_completed_at = NULL, updated_at = $4 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(disk)
            .bind(wwid)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("record bootstrapped server"))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// A bootstrap passed its guard and is about to erase the server: its config and label
    /// timestamps are cleared, so it is no longer a live node (a retry after a failure needs no
    /// `force`).
    pub async fn record_erase_started(&self, id: ServerId) -> Result<Server, StoreError> {
        // `/config` reads the cleared times through its cache: exact within this process.
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "UPDATE servers SET last_configured_at = NULL, \
             label_and_taint_job_completed_at = NULL, updated_at = $2 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("record erase started"))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// Records that the server asked for its config at `at`, and whether it was served one.
    pub async fn record_config_request(
        &self,
        id: ServerId,
        at: OffsetDateTime,
        served: bool,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE servers SET last_request_for_configuration_at = $2, \
                   last_configured_at = CASE WHEN $3 THEN $2 ELSE NULL END WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(at)
            .bind(served)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record config request"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Refreshes the request times of servers whose recorded state the requests do not change,
    /// in one transaction: `(server, at, served)` moves `last_request_for_configuration_at` (and
    /// `last_configured_at` when `served`) to `at`, but only while the row still looks as it
    /// did when the request was buffered (served: `last_configured_at` set; not served:
    /// `last_configured_at` unset and a request recorded). A refresh never makes a node look
    /// served or asked for the first time, and one that a bootstrap, erase or reset overtook
    /// (clearing the times) is dropped. Returns how many rows were refreshed.
    pub async fn refresh_config_requests(
        &self,
        requests: &[(ServerId, OffsetDateTime, bool)],
    ) -> Result<u64, StoreError> {
        if requests.is_empty() {
            return Ok(0);
        }
        let sql = "UPDATE servers SET last_request_for_configuration_at = $2, \
                   last_configured_at = CASE WHEN $3 THEN $2 ELSE last_configured_at END \
                   WHERE id = $1 AND CASE WHEN $3 THEN last_configured_at IS NOT NULL \
                   ELSE last_configured_at IS NULL \
                   AND last_request_for_configuration_at IS NOT NULL END";
        on_pool!(self, |pool| async {
            let mut transaction = pool.begin().await?;
            let mut refreshed = 0;
            for &(id, at, served) in requests {
                refreshed += sqlx::query(sql)
                    .bind(id)
                    .bind(at)
                    .bind(served)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
            }
            transaction.commit().await?;
            Ok(refreshed)
        }
        .await)
        .map_err(StoreError::query("refresh config requests"))
    }

    /// Marks a server as configured at `at`, for nodes configured outside talos-manager.
    pub async fn mark_server_configured(
        &self,
        id: ServerId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE servers SET last_configured_at = $2 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("mark server configured"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Marks servers their provider account no longer listed: one more missed sync, and
    /// `missing_since` set to `at` unless already set. Returns the servers as marked.
    pub async fn mark_server_missing(
        &self,
        id: ServerId,
        at: OffsetDateTime,
    ) -> Result<Server, StoreError> {
        let sql = sql!(
            "UPDATE servers SET missing_syncs = missing_syncs + 1, \
             missing_since = COALESCE(missing_since, $2) WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(at)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("mark server missing"))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// The servers synced from one provider account, by id.
    pub async fn list_servers_of_account(
        &self,
        provider_account_id: ProviderAccountId,
    ) -> Result<Vec<Server>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM servers WHERE provider_account_id = $1 ORDER BY id");
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(provider_account_id)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("list servers of account"))?;
        into_servers(rows)
    }

    /// Deletes the servers of an account whose provider ids are not in `keep` (they vanished
    /// at the provider), with their machine configs, and returns them. One statement: the
    /// account's other servers are never read.
    pub async fn delete_servers_not_in(
        &self,
        provider_account_id: ProviderAccountId,
        keep: &[String],
    ) -> Result<Vec<Server>, StoreError> {
        let _changed = self.config_inputs_change();
        // The list travels as one bound value whatever its length, which each backend reads its
        // own way: PostgreSQL as a text array, SQLite (no arrays) as a JSON array. Hence two
        // query texts with the same meaning.
        let rows: Vec<Row> = match &self.pool {
            Pool::Postgres(pool) => {
                let sql = sql!(
                    "DELETE FROM servers WHERE provider_account_id = $1 \
                     AND provider_id <> ALL($2) RETURNING {COLUMNS}"
                );
                sqlx::query_as(sql)
                    .bind(provider_account_id)
                    .bind(keep)
                    .fetch_all(pool)
                    .await
            }
            Pool::Sqlite(pool) => {
                let sql = sql!(
                    "DELETE FROM servers WHERE provider_account_id = $1 \
                     AND provider_id NOT IN (SELECT value FROM json_each($2)) RETURNING {COLUMNS}"
                );
                let keep = serde_json::Value::from(keep).to_string();
                sqlx::query_as(sql)
                    .bind(provider_account_id)
                    .bind(keep)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(StoreError::query("delete vanished servers"))?;
        into_servers(rows)
    }

    /// Records a reset, as the original app does: the server's machine config binding is
    /// deleted (the node, back in maintenance mode, finds no config until one is assigned), its
    /// config and label timestamps and what was applied to its Kubernetes node are cleared,
    /// and the installed schematic is forgotten. One transaction: all of it, or (on an error)
    /// none of it.
    pub async fn record_reset(&self, id: ServerId) -> Result<Server, StoreError> {
        let _changed = self.config_inputs_change();
        let update = sql!(
            "UPDATE servers SET last_request_for_configuration_at = NULL, \
             last_configured_at = NULL, label_and_taint_job_completed_at = NULL, \
             installed_schematic = NULL, node_name = NULL, updated_at = $2 WHERE id = $1 \
             RETURNING {COLUMNS}"
        );
        let at = now();
        let row: Option<Row> = on_pool!(self, |pool| async {
            let mut transaction = pool.begin().await?;
            sqlx::query("DELETE FROM machine_configs WHERE server_id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM applied_labels_taints WHERE server_id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            let row: Option<Row> = sqlx::query_as(update)
                .bind(id)
                .bind(at)
                .fetch_optional(&mut *transaction)
                .await?;
            if row.is_some() {
                transaction.commit().await?;
            }
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(StoreError::query("record reset"))?;
        row.ok_or_else(|| StoreError::not_found("server", id))?
            .try_into()
    }

    /// Records the schematic (Image Factory id) the server's Talos was just upgraded to.
    pub async fn record_installed_schematic(
        &self,
        id: ServerId,
        factory_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE servers SET installed_schematic = $2, updated_at = $3 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(factory_id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record installed schematic"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Records the node name the server's node reported (see [`Server::node_name`]).
    pub async fn record_node_name(&self, id: ServerId, node_name: &str) -> Result<(), StoreError> {
        let sql = "UPDATE servers SET node_name = $2, updated_at = $3 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(node_name)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record node name"))
        .and_then(|n_rows| expect_one_row(n_rows, id))
    }

    /// Deletes a server and its machine config.
    pub async fn delete_server(&self, id: ServerId) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        self.delete_row("servers", "server", id.0).await
    }
}

fn expect_one_row(n_rows: u64, id: ServerId) -> Result<(), StoreError> {
    if n_rows == 0 {
        Err(StoreError::not_found("server", id))
    } else {
        Ok(())
    }
}
