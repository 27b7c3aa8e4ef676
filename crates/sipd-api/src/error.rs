//! Error replies. Every error body is a JSON object whose `error` is always a string (the Python
//! SDK uses it as the exception message) and which carries the request's `api_id`.

use std::any::Any;
use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sipd_store::StoreError;
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::ToSchema;

/// A fresh request identifier (`api_id` in every reply).
pub fn new_api_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Body of every error reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub api_id: String,
    pub error: String,
    /// One message per offending field (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
    /// Keys naming the offending value, e.g. `endpoint_id`, `app_id`, `username`.
    #[serde(flatten)]
    pub context: BTreeMap<&'static str, String>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        let body = ErrorBody {
            api_id: new_api_id(),
            error: error.into(),
            details: None,
            context: BTreeMap::new(),
        };
        ApiError { status, body }
    }

    /// Adds a key naming the offending value, e.g. `"endpoint_id": "123"`.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.body.context.insert(key, value.into());
        self
    }

    pub fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid credentials")
    }

    /// 400 with one message per offending field.
    pub fn invalid(details: FieldErrors) -> Self {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid request parameters");
        error.body.details = Some(details.0);
        error
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let mut details = FieldErrors::default();
        details.add(field, message);
        ApiError::invalid(details)
    }

    pub fn endpoint_not_found(endpoint_id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Endpoint not found").with("endpoint_id", endpoint_id)
    }

    pub fn application_not_found(app_id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Application not found").with("app_id", app_id)
    }

    /// Same reply for a nonexistent account and one the caller may not use, so that the
    /// existence of other accounts never leaks.
    pub fn account_not_found(auth_id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Account not found").with("auth_id", auth_id)
    }

    pub fn sub_account_not_found(sub_account_id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Sub-account not found")
            .with("sub_account_id", sub_account_id)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service unavailable")
            }
            StoreError::Conflict { field } => {
                ApiError::new(StatusCode::CONFLICT, format!("{field} already exists"))
            }
            StoreError::InvalidReference(what) => {
                ApiError::invalid_field(what, format!("unknown {what}"))
            }
            StoreError::Database(reason) => {
                tracing::error!(%reason, "database error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

/// Validation messages keyed by field name, in a stable order.
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        // The first problem found for a field is the one reported.
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }

    /// `Ok` when nothing was reported, else the 400 reply.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self))
        }
    }
}

pub async fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route not found")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Last line of defence: a handler panic becomes a JSON 500, never a dropped connection.
pub fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
}

/// The error replies every `/api/v1` operation can give, for the OpenAPI document.
pub struct StandardErrors;

impl utoipa::IntoResponses for StandardErrors {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        [
            (
                "400",
                "Invalid request parameters, malformed JSON or bad query parameters",
            ),
            ("401", "Missing or invalid X-Auth-ID / X-Auth-Token"),
            (
                "403",
                "Account disabled, or not allowed for this kind of account",
            ),
            (
                "404",
                "Unknown resource, or one outside the caller's account",
            ),
            ("413", "Request body larger than 1 MiB"),
            ("500", "Internal error"),
            ("503", "Database unavailable"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}
