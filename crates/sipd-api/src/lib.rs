//! sipd REST API, wire-compatible with the Vobiz API (`/api/v1/Account/{auth_id}/Endpoint/`,
//! `/Application/`, `/api/v1/accounts/{auth_id}/sub-accounts/`), plus `/health` and the OpenAPI
//! document at `/api/v1/openapi.json`.
//!
//! Routes are registered only through `utoipa_axum::routes!`, so the router and the OpenAPI
//! document are built from the same `#[utoipa::path]` annotations and cannot drift.

mod applications;
mod auth;
mod endpoints;
mod error;
mod extract;
mod health;
mod listing;
mod openapi;
mod reply;
mod sub_accounts;
mod timefmt;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Extension;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::NormalizePath;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use openapi::openapi;

/// Largest request body accepted; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub store: sipd_store::Store,
    /// SIP domain of endpoint URIs (`sip:{username}@{sip_domain}`).
    pub sip_domain: String,
}

/// Every documented route, each registered once from its annotated handler.
fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::base_document())
        .routes(routes!(health::health))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::retrieve,
            endpoints::update,
            endpoints::delete
        ))
        .routes(routes!(applications::create, applications::list))
        .routes(routes!(
            applications::retrieve,
            applications::update,
            applications::delete
        ))
        .routes(routes!(sub_accounts::create, sub_accounts::list))
        .routes(routes!(
            sub_accounts::retrieve,
            sub_accounts::update,
            sub_accounts::delete
        ))
}

/// The whole API. A trailing slash is optional on every path: it is trimmed before routing,
/// which is why the documented paths carry none.
pub fn router(state: ApiState) -> axum::Router {
    let (routes, document) = api_routes().split_for_parts();
    let inner = routes
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(CatchPanicLayer::custom(error::panic_response))
                .layer(Extension(Arc::new(document)))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        );
    // Path normalisation must run before routing, hence the wrapping outer router.
    axum::Router::new().fallback_service(NormalizePath::trim_trailing_slash(inner))
}
