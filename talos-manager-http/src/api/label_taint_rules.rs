//! `/label-taint-rules`: labels and taints applied to every node whose name contains `match`.
//! Creating, changing or deleting a rule queues the `label_and_taint` job of every configured
//! server it concerns.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{RuleFields, RuleView};
use talos_manager_core::ids::LabelTaintRuleId;
use talos_manager_core::store::{LabelTaintRule, LabelTaintRuleFields};

use super::auth::AdminAuth;
use super::error::ApiResult;
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;
use talos_manager_core::jobs::{
    create_label_taint_rule, delete_label_taint_rule, update_label_taint_rule,
};

/// `LabelTaintRuleFields` as core takes it.
fn rule_fields(fields: RuleFields) -> LabelTaintRuleFields {
    LabelTaintRuleFields {
        name_match: fields.name_match,
        labels: fields.labels,
        taints: fields.taints,
    }
}

/// The wire form of `LabelTaintRule`.
fn rule_view(rule: LabelTaintRule) -> RuleView {
    RuleView {
        id: rule.id.to_string(),
        fields: RuleFields {
            name_match: rule.fields.name_match,
            labels: rule.fields.labels,
            taints: rule.fields.taints,
        },
        created_at: rule.created_at,
        updated_at: rule.updated_at,
    }
}

fn rule_id(text: &str) -> Result<LabelTaintRuleId, super::error::ApiError> {
    parse_id("label and taint rule", text, LabelTaintRuleId)
}

pub(crate) struct LabelTaintRulesApi;

#[OpenApi(tag = "Tag::LabelTaintRules")]
impl LabelTaintRulesApi {
    /// List the label and taint rules.
    #[oai(
        path = "/label-taint-rules",
        method = "get",
        operation_id = "list_label_taint_rules"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<RuleView>>> {
        let rules = state.store.list_label_taint_rules().await?;
        Ok(Json(rules.into_iter().map(rule_view).collect()))
    }

    /// Create a label and taint rule.
    #[oai(
        path = "/label-taint-rules",
        method = "post",
        operation_id = "create_label_taint_rule"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        body: Json<RuleFields>,
    ) -> ApiResult<Created<RuleView>> {
        let rule = create_label_taint_rule(&state.jobs, &state.store, &rule_fields(body.0)).await?;
        Ok(Created::Created(Json(rule_view(rule))))
    }

    /// Get a label and taint rule.
    #[oai(
        path = "/label-taint-rules/:id",
        method = "get",
        operation_id = "get_label_taint_rule"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<RuleView>> {
        let rule = state.store.get_label_taint_rule(rule_id(&id)?).await?;
        Ok(Json(rule_view(rule)))
    }

    /// Replace a label and taint rule.
    #[oai(
        path = "/label-taint-rules/:id",
        method = "put",
        operation_id = "update_label_taint_rule"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<RuleFields>,
    ) -> ApiResult<Json<RuleView>> {
        let rule = update_label_taint_rule(
            &state.jobs,
            &state.store,
            rule_id(&id)?,
            &rule_fields(body.0),
        )
        .await?;
        Ok(Json(rule_view(rule)))
    }

    /// Delete a label and taint rule; what it applied is removed from the nodes.
    #[oai(
        path = "/label-taint-rules/:id",
        method = "delete",
        operation_id = "delete_label_taint_rule"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        delete_label_taint_rule(&state.jobs, &state.store, rule_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }
}
