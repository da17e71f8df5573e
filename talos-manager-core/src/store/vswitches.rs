//! Robot vSwitches, as synced from Hetzner: their VLAN fills `${vlan}` in patches.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::ids::{ProviderAccountId, VswitchId};

/// A Hetzner Robot vSwitch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Vswitch {
    /// The id Hetzner gave it.
    pub id: VswitchId,
    /// The Robot account it was synced from.
    pub provider_account_id: ProviderAccountId,
    /// Its name at Hetzner.
    pub name: String,
    /// Its VLAN id (4000–4091 at Hetzner).
    pub vlan: i32,
    /// When its account first stopped listing it; `None` while it is listed. Servers and
    /// clusters keep a missing vSwitch until sync deletes it ([`crate::sync::SyncPolicy`]).
    pub missing_since: Option<OffsetDateTime>,
    /// How many syncs in a row did not find it (0 while listed).
    pub missing_syncs: i32,
    /// When it was first synced.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "id, provider_account_id, name, vlan, missing_since, missing_syncs, created_at, updated_at";

impl Store {
    /// Inserts a vSwitch or updates its name and VLAN; a vSwitch marked missing is listed
    /// again, so the mark is cleared.
    pub async fn upsert_vswitch(
        &self,
        id: VswitchId,
        provider_account_id: ProviderAccountId,
        name: &str,
        vlan: i32,
    ) -> Result<Vswitch, StoreError> {
        let _changed = self.config_inputs_change();
        let sql = sql!(
            "INSERT INTO vswitches (id, provider_account_id, name, vlan, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET provider_account_id = $2, name = $3, vlan = $4, \
             missing_since = NULL, missing_syncs = 0, updated_at = $5 RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(provider_account_id)
            .bind(name)
            .bind(vlan)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("vswitch", "upsert vswitch", e))
    }

    /// Every vSwitch, by name.
    pub async fn list_vswitches(&self) -> Result<Vec<Vswitch>, StoreError> {
        self.list_rows("vswitches", COLUMNS, "name, id").await
    }

    /// One vSwitch.
    pub async fn get_vswitch(&self, id: VswitchId) -> Result<Vswitch, StoreError> {
        self.get_row("vswitches", COLUMNS, "vswitch", id.0).await
    }

    /// Marks a vSwitch its account no longer listed: one more missed sync, and `missing_since`
    /// set to `at` unless already set. Returns it as marked.
    pub async fn mark_vswitch_missing(
        &self,
        id: VswitchId,
        at: OffsetDateTime,
    ) -> Result<Vswitch, StoreError> {
        let sql = sql!(
            "UPDATE vswitches SET missing_syncs = missing_syncs + 1, \
             missing_since = COALESCE(missing_since, $2) WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Vswitch> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(at)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("mark vswitch missing"))?;
        row.ok_or_else(|| StoreError::not_found("vswitch", id))
    }

    /// Deletes a vSwitch; servers and clusters that used it keep working without one.
    pub async fn delete_vswitch(&self, id: VswitchId) -> Result<(), StoreError> {
        let _changed = self.config_inputs_change();
        self.delete_row("vswitches", "vswitch", id.0).await
    }
}
