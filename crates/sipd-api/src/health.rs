//! `GET /health`: whether this node can serve, i.e. whether the database answers.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::ApiState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReply {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "Health",
    summary = "Liveness and database reachability (no authentication)",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = HealthReply),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ),
)]
pub async fn health(State(state): State<ApiState>) -> Result<Json<HealthReply>, ApiError> {
    state.store.ping().await?;
    Ok(Json(HealthReply { status: "ok" }))
}
