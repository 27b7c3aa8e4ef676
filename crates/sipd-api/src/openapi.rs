//! The OpenAPI document. Paths come from the handlers' `#[utoipa::path]` annotations as they
//! are registered in `api_routes`; this module adds what is global (info, security schemes).

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sipd REST API",
        description = "Vobiz-compatible API for SIP endpoints, applications and sub-accounts. \
            Every path also accepts a trailing slash (as the Vobiz SDKs send it).",
    ),
    modifiers(&HeaderAuth),
    security(("auth_id" = [], "auth_token" = [])),
    components(schemas(ErrorBody)),
)]
struct ApiDoc;

/// `X-Auth-ID` + `X-Auth-Token`, both required on every `/api/v1` operation.
struct HeaderAuth;

impl Modify for HeaderAuth {
    fn modify(&self, document: &mut OpenApiDocument) {
        let components = document.components.get_or_insert_with(Default::default);
        for (name, header) in [("auth_id", "X-Auth-ID"), ("auth_token", "X-Auth-Token")] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))),
            );
        }
    }
}

/// Global parts of the document, before the routes add their paths.
pub(crate) fn base_document() -> OpenApiDocument {
    ApiDoc::openapi()
}

/// The complete document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> OpenApiDocument {
    crate::api_routes().into_openapi()
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "OpenAPI",
    summary = "This OpenAPI document (no authentication)",
    security(()),
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")),
)]
pub async fn openapi_json(
    Extension(document): Extension<Arc<OpenApiDocument>>,
) -> Json<OpenApiDocument> {
    Json(document.as_ref().clone())
}
