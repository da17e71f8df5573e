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
    /// When etcd was bootstrapped and the Kubernetes API answered (or the cluster was imported
    /// with its secrets bundle): it is never bootstrapped again. `None`: never bootstrapped.
    pub bootstrapped_at: Option<OffsetDateTime>,
    /// Who runs its bootstrap now (`job:<id>`), see [`Store::claim_cluster_bootstrap`].
    pub bootstrap_claimed_by: Option<String>,
}

/// What [`Store::claim_cluster_bootstrap`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapClaim {
    /// The claim is the caller's (new, or its own from a run that a crash interrupted).
    Claimed,
    /// The cluster is recorded as bootstrapped at this time.
    Bootstrapped(OffsetDateTime),
    /// Another caller holds the claim.
    HeldBy(String),
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
                       running_kubernetes_version_checked_at, created_at, updated_at, \
                       bootstrapped_at, bootstrap_claimed_by";

impl Store {
    /// Adds a cluster with its secrets bundle (YAML as `talosctl gen secrets` writes it).
    pub async fn create_cluster(
        &self,
        fields: &ClusterFields,
        secrets: &Secret<String>,
    ) -> Result<Cluster, StoreError> {
        self.create_cluster_bootstrapped(fields, secrets, false)
            .await
    }

    /// As [`Store::create_cluster`]; `bootstrapped`: the cluster runs already (imported with
    /// its secrets bundle), so it is recorded as bootstrapped now and never bootstrapped again.
    pub async fn create_cluster_bootstrapped(
        &self,
        fields: &ClusterFields,
        secrets: &Secret<String>,
        bootstrapped: bool,
    ) -> Result<Cluster, StoreError> {
        let sql = sql!(
            "INSERT INTO clusters (name, endpoint, vswitch_id, secrets, created_at, updated_at, \
             bootstrapped_at) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING {COLUMNS}"
        );
        let ciphertext = self.cipher.encrypt_str(SECRETS_COLUMN, secrets);
        let at = now();
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&fields.name)
            .bind(&fields.endpoint)
            .bind(fields.vswitch_id)
            .bind(&ciphertext)
            .bind(at)
            .bind(bootstrapped.then_some(at))
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

    /// Claims the cluster's bootstrap for `owner` (`job:<id>`), atomically on every backend and
    /// across replicas: [`BootstrapClaim::Claimed`] when it was not bootstrapped and nobody
    /// else holds the claim (also when `owner` holds it already: a run interrupted by a crash
    /// goes on), else who or what stands in the way.
    pub async fn claim_cluster_bootstrap(
        &self,
        id: ClusterId,
        owner: &str,
    ) -> Result<BootstrapClaim, StoreError> {
        let sql = "UPDATE clusters SET bootstrap_claimed_by = $2, \
                   bootstrap_claimed_at = COALESCE(bootstrap_claimed_at, $3) \
                   WHERE id = $1 AND bootstrapped_at IS NULL \
                   AND (bootstrap_claimed_by IS NULL OR bootstrap_claimed_by = $2)";
        let n_rows = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("claim cluster bootstrap"))?;
        if n_rows == 1 {
            return Ok(BootstrapClaim::Claimed);
        }
        let cluster = self.get_cluster(id).await?;
        Ok(
            match (cluster.bootstrapped_at, cluster.bootstrap_claimed_by) {
                (Some(at), _) => BootstrapClaim::Bootstrapped(at),
                (None, Some(holder)) => BootstrapClaim::HeldBy(holder),
                // Released between the two statements: whoever asks again may have it.
                (None, None) => BootstrapClaim::HeldBy("another caller".to_owned()),
            },
        )
    }

    /// Gives up `owner`'s claim on the cluster's bootstrap (it failed or was cancelled before
    /// the cluster was recorded as bootstrapped). A claim held by someone else stays.
    pub async fn release_cluster_bootstrap(
        &self,
        id: ClusterId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE clusters SET bootstrap_claimed_by = NULL, bootstrap_claimed_at = NULL \
                   WHERE id = $1 AND bootstrap_claimed_by = $2";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("release cluster bootstrap"))?;
        Ok(())
    }

    /// Records the cluster as bootstrapped at `at` (once: a recorded time stays) and drops the
    /// claim. Returns when it is recorded as bootstrapped.
    pub async fn record_cluster_bootstrapped(
        &self,
        id: ClusterId,
        at: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        let sql = "UPDATE clusters SET bootstrapped_at = COALESCE(bootstrapped_at, $2), \
                   bootstrap_claimed_by = NULL, bootstrap_claimed_at = NULL WHERE id = $1";
        let n_rows = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("record cluster bootstrapped"))?;
        if n_rows == 0 {
            return Err(StoreError::not_found("cluster", id));
        }
        let cluster = self.get_cluster(id).await?;
        Ok(cluster.bootstrapped_at.unwrap_or(at))
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
