//! Label and taint rules: applied to every node whose name contains the rule's match string.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::ids::LabelTaintRuleId;

/// A label and taint rule.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LabelTaintRule {
    /// Its id.
    pub id: LabelTaintRuleId,
    /// What it matches and applies.
    #[sqlx(flatten)]
    pub fields: LabelTaintRuleFields,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a rule is created or replaced with.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LabelTaintRuleFields {
    /// A substring of the server names the rule applies to.
    pub name_match: String,
    /// Labels, `key=value,key=value`.
    pub labels: String,
    /// Taints, `key=value:Effect,…`.
    pub taints: String,
}

const COLUMNS: &str = "id, name_match, labels, taints, created_at, updated_at";

impl Store {
    /// Adds a rule.
    pub async fn create_label_taint_rule(
        &self,
        fields: &LabelTaintRuleFields,
    ) -> Result<LabelTaintRule, StoreError> {
        let sql = sql!(
            "INSERT INTO label_taint_rules (name_match, labels, taints, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&fields.name_match)
            .bind(&fields.labels)
            .bind(&fields.taints)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("label and taint rule", "insert rule", e))
    }

    /// Every rule, oldest first.
    pub async fn list_label_taint_rules(&self) -> Result<Vec<LabelTaintRule>, StoreError> {
        self.list_rows("label_taint_rules", COLUMNS, "id").await
    }

    /// One rule.
    pub async fn get_label_taint_rule(
        &self,
        id: LabelTaintRuleId,
    ) -> Result<LabelTaintRule, StoreError> {
        self.get_row("label_taint_rules", COLUMNS, "label and taint rule", id.0)
            .await
    }

    /// Replaces a rule's fields.
    pub async fn update_label_taint_rule(
        &self,
        id: LabelTaintRuleId,
        fields: &LabelTaintRuleFields,
    ) -> Result<LabelTaintRule, StoreError> {
        let sql = sql!(
            "UPDATE label_taint_rules SET name_match = $2, labels = $3, taints = $4, \
             updated_at = $5 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let rule: Option<LabelTaintRule> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(&fields.name_match)
            .bind(&fields.labels)
            .bind(&fields.taints)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("label and taint rule", "update rule", e))?;
        rule.ok_or_else(|| StoreError::not_found("label and taint rule", id))
    }

    /// Deletes a rule.
    pub async fn delete_label_taint_rule(&self, id: LabelTaintRuleId) -> Result<(), StoreError> {
        self.delete_row("label_taint_rules", "label and taint rule", id.0)
            .await
    }
}
