//! Configs: reusable templates of install image, Kubernetes version, KubeSpan and patches.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::ids::ConfigId;

/// A config template, assigned to servers through machine configs.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Config {
    /// Its id.
    pub id: ConfigId,
    /// Its name, image, versions and patches.
    #[sqlx(flatten)]
    pub fields: ConfigFields,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a config is created or replaced with.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConfigFields {
    /// Its name, unique.
    pub name: String,
    /// The installer image, e.g. `ghcr.io/siderolabs/installer:v1.10.4`.
    pub install_image: String,
    /// The Kubernetes version for new clusters, e.g. `1.30.1`.
    pub kubernetes_version: String,
    /// Whether KubeSpan is enabled.
    pub kubespan: bool,
    /// A patch for every machine (YAML; may use `${...}` variables).
    pub patch: String,
    /// A patch for control-plane machines only.
    pub patch_control_plane: String,
    /// A patch for worker machines only.
    pub patch_worker: String,
}

const COLUMNS: &str = "id, name, install_image, kubernetes_version, kubespan, patch, \
                       patch_control_plane, patch_worker, created_at, updated_at";

impl Store {
    /// Adds a config.
    pub async fn create_config(&self, fields: &ConfigFields) -> Result<Config, StoreError> {
        let sql = sql!(
            "INSERT INTO configs (name, install_image, kubernetes_version, kubespan, patch, \
             patch_control_plane, patch_worker, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&fields.name)
            .bind(&fields.install_image)
            .bind(&fields.kubernetes_version)
            .bind(fields.kubespan)
            .bind(&fields.patch)
            .bind(&fields.patch_control_plane)
            .bind(&fields.patch_worker)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("config", "insert config", e))
    }

    /// Every config, by name.
    pub async fn list_configs(&self) -> Result<Vec<Config>, StoreError> {
        self.list_rows("configs", COLUMNS, "name").await
    }

    /// One config.
    pub async fn get_config(&self, id: ConfigId) -> Result<Config, StoreError> {
        self.get_row("configs", COLUMNS, "config", id.0).await
    }

    /// Replaces a config's fields.
    pub async fn update_config(
        &self,
        id: ConfigId,
        fields: &ConfigFields,
    ) -> Result<Config, StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "UPDATE configs SET name = $2, install_image = $3, kubernetes_version = $4, \
             kubespan = $5, patch = $6, patch_control_plane = $7, patch_worker = $8, \
             updated_at = $9 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let config: Option<Config> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(&fields.name)
            .bind(&fields.install_image)
            .bind(&fields.kubernetes_version)
            .bind(fields.kubespan)
            .bind(&fields.patch)
            .bind(&fields.patch_control_plane)
            .bind(&fields.patch_worker)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("config", "update config", e))?;
        config.ok_or_else(|| StoreError::not_found("config", id))
    }

    /// Deletes a config; refused with [`StoreError::InUse`] while a server uses it.
    pub async fn delete_config(&self, id: ConfigId) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        self.delete_row("configs", "config", id.0).await
    }
}
