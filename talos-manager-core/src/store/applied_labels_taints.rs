//! The labels and taints talos-manager applied to each server's Kubernetes node: what a
//! reconciliation may remove again when a rule changes or goes away.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool};
use crate::ids::ServerId;

/// What was applied to a server's node, in the rules' own syntax.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppliedLabelsTaints {
    /// The server.
    pub server_id: ServerId,
    /// The node they were applied to.
    pub node_name: String,
    /// Labels, `key=value,…`.
    pub labels: String,
    /// Taints, `key=value:Effect,…`.
    pub taints: String,
    /// When they were applied.
    pub applied_at: OffsetDateTime,
}

impl Store {
    /// What was last applied to the server's node, if anything.
    pub async fn applied_labels_taints(
        &self,
        server_id: ServerId,
    ) -> Result<Option<AppliedLabelsTaints>, StoreError> {
        let sql = "SELECT server_id, node_name, labels, taints, applied_at \
                   FROM applied_labels_taints WHERE server_id = $1";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(server_id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get applied labels and taints"))
    }

    /// Records what is now applied to the server's node (replacing the previous record) and
    /// stamps the server's `label_and_taint_job_completed_at`.
    pub async fn record_applied_labels_taints(
        &self,
        server_id: ServerId,
        node_name: &str,
        labels: &str,
        taints: &str,
    ) -> Result<AppliedLabelsTaints, StoreError> {
        let at = now();
        let sql = "INSERT INTO applied_labels_taints (server_id, node_name, labels, taints, \
                   applied_at) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (server_id) DO UPDATE SET node_name = $2, labels = $3, \
                   taints = $4, applied_at = $5 \
                   RETURNING server_id, node_name, labels, taints, applied_at";
        let applied: AppliedLabelsTaints = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(server_id)
            .bind(node_name)
            .bind(labels)
            .bind(taints)
            .bind(at)
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("applied labels and taints", "record applied", e))?;
        let sql = "UPDATE servers SET label_and_taint_job_completed_at = $2 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(server_id)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::query("stamp label and taint completion"))?;
        Ok(applied)
    }
}
