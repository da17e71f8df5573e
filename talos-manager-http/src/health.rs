//! `GET /healthz`: 200 while the database answers, 503 otherwise (for load balancers).

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::AppState;

#[handler]
pub(crate) async fn healthz(state: Data<&AppState>) -> Response {
    let backend = state.store.backend().as_str();
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "database": backend })).into_response(),
        Err(error) => {
            tracing::warn!(error = %talos_manager_core::error_chain(&error), "health check failed");
            Json(json!({ "status": "unavailable", "database": backend }))
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .into_response()
        }
    }
}
