//! Clusters: a name, an endpoint and the Talos secrets bundle (stored encrypted).

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::Secret;
use crate::ids::{ClusterId, VswitchId};

const SECRETS_COLUMN: &str = "clusters.secrets";

/// A Talos cluster as listed; its secrets bundle is read on its own with
/// [`Store::cluster_secrets`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cluster {
    /// Its id.
    pub id: ClusterId,
    /// Its name (`[a-z0-9-]+`), unique.
    pub name: String,
    /// The Kubernetes API endpoint, `https://host:port`.
    pub endpoint: String,
    /// The vSwitch whose VLAN fills `${vlan}`, if any.
    pub vswitch_id: Option<VswitchId>,
    /// The Kubernetes version its API server last reported (`1.33.1`), if it ever answered.
    pub running_kubernetes_version: Option<String>,
    /// When the API server was last asked for its version, answered or not.
    pub running_kubernetes_version_checked_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a cluster is created or replaced with.
#[derive(Debug, Clone)]
pub struct ClusterFields {
    /// Its name (`[a-z0-9-]+`), unique.
    pub name: String,
    /// The Kubernetes API endpoint, `https://host:port`.
    pub endpoint: String,
    /// The vSwitch whose VLAN fills `${vlan}`, if any.
    pub vswitch_id: Option<VswitchId>,
}

const COLUMNS: &str = "id, name, endpoint, vswitch_id, running_kubernetes_version, \
                       running_kubernetes_version_checked_at, created_at, updated_at";

impl Store {
    /// Adds a cluster with its secrets bundle (YAML as `talosctl gen secrets` writes it).
    pub async fn create_cluster(
        &self,
        fields: &ClusterFields,
        secrets: &Secret<String>,
    ) -> Result<Cluster, StoreError> {
        let sql = sql!(
            "INSERT INTO clusters (name, endpoint, vswitch_id, secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
        );
        let ciphertext = self.cipher.encrypt_str(SECRETS_COLUMN, secrets);
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&fields.name)
            .bind(&fields.endpoint)
            .bind(fields.vswitch_id)
            .bind(&ciphertext)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("cluster", "insert cluster", e))
    }

    /// Every cluster, by name.
    pub async fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        self.list_rows("clusters", COLUMNS, "name").await
    }

    /// One cluster.
    pub async fn get_cluster(&self, id: ClusterId) -> Result<Cluster, StoreError> {
        self.get_row("clusters", COLUMNS, "cluster", id.0).await
    }

    /// The decrypted secrets bundle of a cluster.
    pub async fn cluster_secrets(&self, id: ClusterId) -> Result<Secret<String>, StoreError> {
        let sql = "SELECT secrets FROM clusters WHERE id = $1";
        let ciphertext: Option<Vec<u8>> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get cluster secrets"))?;
        let ciphertext = ciphertext.ok_or_else(|| StoreError::not_found("cluster", id))?;
        Ok(self.cipher.decrypt_str(SECRETS_COLUMN, &ciphertext)?)
    }

    /// Replaces a cluster's fields and, when given, its secrets bundle.
    pub async fn update_cluster(
        &self,
        id: ClusterId,
        fields: &ClusterFields,
        secrets: Option<&Secret<String>>,
    ) -> Result<Cluster, StoreError> {
        let _changed = self.config_inputs_change();
        let ciphertext = secrets.map(|secrets| self.cipher.encrypt_str(SECRETS_COLUMN, secrets));
        let sql = sql!(
            "UPDATE clusters SET name = $2, endpoint = $3, vswitch_id = $4, \
             secrets = COALESCE($5, secrets), updated_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let cluster: Option<Cluster> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(&fields.name)
            .bind(&fields.endpoint)
            .bind(fields.vswitch_id)
            .bind(&ciphertext)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("cluster", "update cluster", e))?;
        cluster.ok_or_else(|| StoreError::not_found("cluster", id))
    }

    /// Records that the cluster's API server was asked for its version at `checked_at`, and
    /// what it answered: `None` (no answer) keeps the version last seen.
    pub async fn record_running_kubernetes_version(
        &self,
        id: ClusterId,
        version: Option<&str>,
        checked_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        let sql = "UPDATE clusters SET \
                   running_kubernetes_version = COALESCE($2, running_kubernetes_version), \
                   running_kubernetes_version_checked_at = $3 WHERE id = $1";
        let n_rows = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(version)
            .bind(checked_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record running kubernetes version"))?;
        if n_rows == 0 {
            return Err(StoreError::not_found("cluster", id));
        }
        Ok(())
    }

    /// Deletes a cluster that no server belongs to: [`StoreError::InUse`] while one does (the
    /// cluster's secrets bundle is what its nodes trust; deleting it would lose the PKI).
    pub async fn delete_cluster(&self, id: ClusterId) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "DELETE FROM clusters WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM servers WHERE cluster_id = $1)"
        );
        let n_deleted = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| StoreError::from_delete("cluster", id.0, e))?;
        if n_deleted == 0 {
            // Either there is no such cluster (NotFound) or servers still use it.
            self.get_cluster(id).await?;
            return Err(StoreError::InUse {
                entity: "cluster",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
