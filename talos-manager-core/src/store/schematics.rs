//! Image Factory schematics: named customisations (extensions, kernel arguments) of Talos images.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::ids::SchematicId;

/// A schematic as stored here.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Schematic {
    /// Its id here.
    pub id: SchematicId,
    /// Its name, body and factory id.
    #[sqlx(flatten)]
    pub fields: SchematicFields,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a schematic is created or replaced with.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SchematicFields {
    /// Its name, unique.
    pub name: String,
    /// The schematic YAML as sent to the Image Factory.
    pub body: String,
    /// The id the Image Factory returned for `body`, once registered.
    pub factory_id: Option<String>,
}

const COLUMNS: &str = "id, name, body, factory_id, created_at, updated_at";

impl Store {
    /// Adds a schematic.
    pub async fn create_schematic(
        &self,
        fields: &SchematicFields,
    ) -> Result<Schematic, StoreError> {
        let sql = sql!(
            "INSERT INTO schematics (name, body, factory_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&fields.name)
            .bind(&fields.body)
            .bind(&fields.factory_id)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("schematic", "insert schematic", e))
    }

    /// Every schematic, by name.
    pub async fn list_schematics(&self) -> Result<Vec<Schematic>, StoreError> {
        self.list_rows("schematics", COLUMNS, "name").await
    }

    /// One schematic.
    pub async fn get_schematic(&self, id: SchematicId) -> Result<Schematic, StoreError> {
        self.get_row("schematics", COLUMNS, "schematic", id.0).await
    }

    /// Replaces a schematic's fields.
    pub async fn update_schematic(
        &self,
        id: SchematicId,
        fields: &SchematicFields,
    ) -> Result<Schematic, StoreError> {
        let sql = sql!(
            "UPDATE schematics SET name = $2, body = $3, factory_id = $4, updated_at = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let schematic: Option<Schematic> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(&fields.name)
            .bind(&fields.body)
            .bind(&fields.factory_id)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("schematic", "update schematic", e))?;
        schematic.ok_or_else(|| StoreError::not_found("schematic", id))
    }

    /// Deletes a schematic; servers and settings that chose it fall back to the default.
    pub async fn delete_schematic(&self, id: SchematicId) -> Result<(), StoreError> {
        self.delete_row("schematics", "schematic", id.0).await
    }
}
