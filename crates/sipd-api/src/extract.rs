//! Request extractors whose rejections are JSON `ApiError`s (axum's defaults answer plain text),
//! and lenient field parsers for the loosely typed values real clients send.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldErrors};
use crate::MAX_BODY_BYTES;

/// A JSON request body. An empty body counts as `{}`; unknown fields are ignored by the
/// target types; a syntax error or a value of the wrong type is a 400.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                        .with("max_bytes", MAX_BODY_BYTES.to_string())
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "could not read request body")
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // serde would also build a struct from a JSON array (positionally): only objects are bodies.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::invalid_field("body", "expected a JSON object")),
            Err(error) => Err(malformed_json(error)),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(malformed_json)?;
            Ok(value)
        }
        Err(error) => {
            let field = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_data() {
                Err(wrong_value(&field, &inner))
            } else {
                Err(malformed_json(inner))
            }
        }
    }
}

fn malformed_json(error: serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed JSON body").with("message", error.to_string())
}

/// 400 naming the field (`body` when the whole document has the wrong shape).
fn wrong_value(field: &str, error: &serde_json::Error) -> ApiError {
    let field = if field == "." { "body" } else { field };
    let message = error.to_string();
    // serde_json appends the position; the field name already says where.
    let message = message.split(" at line ").next().unwrap_or_default();
    let mut details = FieldErrors::default();
    details.add(field, message);
    ApiError::invalid(details)
}

/// Query-string parameters. Every value arrives as a string; numeric and boolean fields use
/// the `lenient` parsers. A bad value is a 400 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed query string"))?;
        // PostgreSQL cannot store or compare text containing NUL.
        if let Some((key, _)) = pairs.iter().find(|(_, value)| value.contains('\0')) {
            return Err(ApiError::invalid_field(
                key,
                "must not contain NUL characters",
            ));
        }
        let object: Map<String, Value> = pairs
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        serde_path_to_error::deserialize(Value::Object(object))
            .map(QueryParams)
            .map_err(|error| wrong_value(&error.path().to_string(), error.inner()))
    }
}

/// Longest public numeric id (endpoint_id, app_id) accepted.
const MAX_NUMERIC_ID_LEN: usize = 20;

/// Whether `id` can be a public numeric id; anything else cannot exist, so it is not looked up.
pub fn is_numeric_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NUMERIC_ID_LEN && id.bytes().all(|byte| byte.is_ascii_digit())
}

/// Path parameters with a JSON rejection (e.g. an id that is not valid UTF-8 once decoded).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid path parameter")
                    .with("message", rejection.body_text())
            })
    }
}

/// The path's `{endpoint_id}`. One that cannot exist is a 404 at once, without a lookup.
pub struct EndpointId(pub String);

/// The path's `{app_id}`. One that cannot exist is a 404 at once, without a lookup.
pub struct AppId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EndpointId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        resource_id(parts, state, ApiError::endpoint_not_found)
            .await
            .map(EndpointId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AppId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        resource_id(parts, state, ApiError::application_not_found)
            .await
            .map(AppId)
    }
}

/// The second path parameter (after `{auth_id}`) as a public numeric id.
async fn resource_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    not_found: fn(&str) -> ApiError,
) -> Result<String, ApiError> {
    let ApiPath((_, id)) = ApiPath::<(String, String)>::from_request_parts(parts, state).await?;
    if is_numeric_id(&id) {
        Ok(id)
    } else {
        Err(not_found(&id))
    }
}

/// Parsers for `#[serde(default, deserialize_with = "…")]` fields that accept what loosely
/// typed clients send: numbers as strings, `True`/`"1"` as booleans (Python's `requests`
/// renders `True` in query strings).
pub mod lenient {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            Value::Bool(value) => Ok(Some(value)),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(D::Error::custom("expected a boolean")),
            },
            Value::Number(number) => match number.as_u64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(D::Error::custom("expected a boolean")),
            },
            _ => Err(D::Error::custom("expected a boolean")),
        }
    }

    pub fn int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            Value::Number(number) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected an integer")),
            Value::String(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom("expected an integer")),
            _ => Err(D::Error::custom("expected an integer")),
        }
    }

    /// A public numeric id given as a JSON integer or a string of digits. The outer `Option`
    /// says whether the field was present (filled by `default` when absent); the inner one is
    /// `None` for an explicit `null` (or `""`), which unbinds.
    pub fn numeric_id<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        let id = match Value::deserialize(deserializer)? {
            Value::Null => None,
            Value::Number(number) => Some(
                number
                    .as_u64()
                    .ok_or_else(|| D::Error::custom("expected a numeric id"))?
                    .to_string(),
            ),
            Value::String(text) if text.trim().is_empty() => None,
            Value::String(text) => {
                let text = text.trim();
                if !super::is_numeric_id(text) {
                    return Err(D::Error::custom("expected a numeric id"));
                }
                Some(text.to_owned())
            }
            _ => return Err(D::Error::custom("expected a numeric id")),
        };
        Ok(Some(id))
    }

    /// A nullable string where absent (outer `None`) and `null` (`Some(None)`) differ.
    pub fn nullable_string<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}
