//! SIP endpoints: `/api/v1/Account/{auth_id}/Endpoint/[{endpoint_id}/]` (spec §5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sipd_store::{Endpoint, EndpointFilter, EndpointPatch, NewEndpoint, Scope, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AccountContext;
use crate::error::{new_api_id, ApiError, ErrorBody, FieldErrors, StandardErrors};
use crate::extract::{is_numeric_id, lenient, EndpointId, JsonBody, QueryParams};
use crate::listing::{Meta, PageRequest};
use crate::reply::MessageReply;
use crate::timefmt::iso_z;
use crate::ApiState;

const TAG: &str = "Endpoint";

/// The endpoint as listed and retrieved. `sip_registered` is a string (`"true"`/`"false"`)
/// as on the Vobiz wire; the password is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointObject {
    pub alias: String,
    /// Resource URI of the bound application, or null.
    #[schema(example = "/v1/Account/MA_AB12CD34/Application/31415926535897932/")]
    pub application: Option<String>,
    #[schema(example = "271828182845904")]
    pub endpoint_id: String,
    pub resource_uri: String,
    #[schema(example = "false")]
    pub sip_registered: &'static str,
    #[schema(example = "sip:frontdesk@registrar.example.com")]
    pub sip_uri: String,
    /// auth_id of the owning sub-account; null for a main account's endpoint.
    pub sub_account: Option<String>,
    pub username: String,
    pub allow_voice: bool,
    pub allow_message: bool,
    pub allow_video: bool,
    pub allow_same_domain: bool,
    pub allow_other_domains: bool,
    pub allow_phones: bool,
    pub allow_apps: bool,
    /// Contact URI of the newest live registration; null when not registered.
    pub sip_contact: Option<String>,
    /// When that registration expires (ISO-8601 UTC); null when not registered.
    pub sip_expires: Option<String>,
    pub sip_user_agent: Option<String>,
    #[schema(example = "2026-01-05T09:00:00Z")]
    pub created_at: String,
    pub updated_at: String,
}

impl EndpointObject {
    fn new(endpoint: &Endpoint, sip_domain: &str) -> Self {
        let registration = endpoint.registration.as_ref();
        EndpointObject {
            alias: endpoint.alias.clone(),
            application: endpoint.application.as_ref().map(|app| {
                format!(
                    "/v1/Account/{}/Application/{}/",
                    app.account_auth_id, app.app_id
                )
            }),
            endpoint_id: endpoint.endpoint_id.clone(),
            resource_uri: resource_uri(&endpoint.account_auth_id, &endpoint.endpoint_id),
            sip_registered: if registration.is_some() {
                "true"
            } else {
                "false"
            },
            sip_uri: sip_uri(&endpoint.username, sip_domain),
            sub_account: endpoint.sub_account.clone(),
            username: endpoint.username.clone(),
            allow_voice: endpoint.allow_voice,
            allow_message: endpoint.allow_message,
            allow_video: endpoint.allow_video,
            allow_same_domain: endpoint.allow_same_domain,
            allow_other_domains: endpoint.allow_other_domains,
            allow_phones: endpoint.allow_phones,
            allow_apps: endpoint.allow_apps,
            sip_contact: registration.map(|reg| reg.contact.clone()),
            sip_expires: registration.map(|reg| iso_z(reg.expires_at)),
            sip_user_agent: registration.and_then(|reg| reg.user_agent.clone()),
            created_at: iso_z(endpoint.created_at),
            updated_at: iso_z(endpoint.updated_at),
        }
    }
}

/// Retrieve reply: the endpoint plus, only while registered, `sip_registration`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointDetail {
    pub api_id: String,
    #[serde(flatten)]
    pub endpoint: EndpointObject,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_registration: Option<SipRegistration>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SipRegistration {
    pub contact: String,
    pub expires: String,
    pub user_agent: Option<String>,
    /// Source address of the REGISTER, `ip:port`.
    pub received: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub api_id: String,
    pub meta: Meta,
    pub objects: Vec<EndpointObject>,
}

/// Create reply: the union of the two documented shapes.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreated {
    pub api_id: String,
    #[schema(example = "created")]
    pub message: &'static str,
    pub alias: String,
    pub endpoint_id: String,
    /// The stored SIP username (exactly as submitted).
    pub username: String,
    pub sip_uri: String,
    pub resource_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEndpointRequest {
    /// Letters, digits, `_`, `-`, `.`; 1–64 characters; unique across the SIP domain.
    #[schema(required = true)]
    pub username: Option<String>,
    /// 8–128 characters with at least one letter and one digit, not equal to the username.
    #[schema(required = true, format = Password)]
    pub password: Option<String>,
    /// 1–128 printable characters; defaults to the username.
    pub alias: Option<String>,
    /// app_id to bind (integer or numeric string); defaults to the owner's
    /// `default_endpoint_app`.
    #[serde(default, deserialize_with = "lenient::numeric_id")]
    #[schema(value_type = Option<String>)]
    pub application: Option<Option<String>>,
    /// Same as `application` (the live platform's name); wins when both are given.
    #[serde(default, deserialize_with = "lenient::numeric_id")]
    #[schema(value_type = Option<String>)]
    pub app_id: Option<Option<String>>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_voice: Option<bool>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_message: Option<bool>,
    /// Default false.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_video: Option<bool>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_same_domain: Option<bool>,
    /// Default false.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_other_domains: Option<bool>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_phones: Option<bool>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_apps: Option<bool>,
    /// auth_id of a sub-account to create the endpoint for (parent only).
    pub sub_account: Option<String>,
}

/// Partial update. `username` and the `allow_same_domain`/`allow_other_domains`/
/// `allow_phones`/`allow_apps` flags are locked after creation: they are ignored here, like any
/// other unknown field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateEndpointRequest {
    /// A new password drops every registration of the endpoint.
    #[schema(format = Password)]
    pub password: Option<String>,
    pub alias: Option<String>,
    /// app_id to bind (integer or numeric string), or null to unbind.
    #[serde(default, deserialize_with = "lenient::numeric_id")]
    #[schema(value_type = Option<String>, nullable)]
    pub application: Option<Option<String>>,
    /// Same as `application`; wins when both are given.
    #[serde(default, deserialize_with = "lenient::numeric_id")]
    #[schema(value_type = Option<String>, nullable)]
    pub app_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_voice: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_message: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub allow_video: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointListQuery {
    /// Page size, default 20; values above 100 are clamped to 100.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub limit: Option<i64>,
    /// Rows to skip, default 0.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub offset: Option<i64>,
    /// 1-based page number (alias: offset = (page - 1) × limit).
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub page: Option<i64>,
    /// Alias of `limit`.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub size: Option<i64>,
    #[serde(rename = "username__contains")]
    pub username_contains: Option<String>,
    #[serde(rename = "username__exact")]
    pub username_exact: Option<String>,
    #[serde(rename = "username__startswith")]
    pub username_startswith: Option<String>,
    #[serde(rename = "alias__contains")]
    pub alias_contains: Option<String>,
    #[serde(rename = "alias__exact")]
    pub alias_exact: Option<String>,
    /// Only endpoints bound to this app_id.
    #[serde(rename = "application_id__exact")]
    pub application_id_exact: Option<String>,
    /// true: only endpoints without an application; false: only endpoints with one.
    #[serde(
        rename = "application_id__isnull",
        default,
        deserialize_with = "lenient::bool"
    )]
    #[param(value_type = Option<bool>)]
    pub application_id_isnull: Option<bool>,
    /// Only endpoints of this account (the path's own auth_id or one of its sub-accounts).
    pub sub_account: Option<String>,
}

impl EndpointListQuery {
    /// The filters given, as repeated in `meta.next` / `meta.previous`.
    fn link_filters(&self) -> Vec<(&'static str, String)> {
        let text_filters = [
            ("username__contains", &self.username_contains),
            ("username__exact", &self.username_exact),
            ("username__startswith", &self.username_startswith),
            ("alias__contains", &self.alias_contains),
            ("alias__exact", &self.alias_exact),
            ("application_id__exact", &self.application_id_exact),
        ];
        let mut filters: Vec<(&'static str, String)> = text_filters
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
            .collect();
        if let Some(isnull) = self.application_id_isnull {
            filters.push(("application_id__isnull", isnull.to_string()));
        }
        if let Some(sub_account) = &self.sub_account {
            filters.push(("sub_account", sub_account.clone()));
        }
        filters
    }
}

fn resource_uri(owner_auth_id: &str, endpoint_id: &str) -> String {
    format!("/v1/Account/{owner_auth_id}/Endpoint/{endpoint_id}/")
}

fn sip_uri(username: &str, sip_domain: &str) -> String {
    format!("sip:{username}@{sip_domain}")
}

const MAX_USERNAME_LEN: usize = 64;
const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 128;
const MAX_ALIAS_LEN: usize = 128;

fn check_username(username: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if username.is_empty() || username.chars().count() > MAX_USERNAME_LEN {
        Err("must be 1-64 characters")
    } else if !username.chars().all(allowed) {
        Err("only letters, digits, '_', '-' and '.' are allowed")
    } else {
        Ok(())
    }
}

fn check_password(password: &str, username: &str) -> Result<(), &'static str> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        Err("Password must be at least 8 characters")
    } else if length > MAX_PASSWORD_LEN {
        Err("Password must be at most 128 characters")
    } else if !password.chars().any(char::is_alphabetic)
        || !password.chars().any(|c| c.is_ascii_digit())
    {
        Err("Password must contain at least one letter and one digit")
    } else if password == username {
        Err("Password must not equal the username")
    } else {
        Ok(())
    }
}

fn check_alias(alias: &str) -> Result<(), &'static str> {
    if alias.trim().is_empty() || alias.chars().count() > MAX_ALIAS_LEN {
        Err("must be 1-128 characters")
    } else if alias.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Internal id of the application `app_id` visible in `scope`; 400 naming `field` otherwise.
async fn resolve_application(
    state: &ApiState,
    scope: Scope,
    field: &str,
    app_id: &str,
) -> Result<i64, ApiError> {
    match state.store.get_application(scope, app_id).await? {
        Some(app) => Ok(app.id),
        None => Err(ApiError::invalid_field(field, "unknown application")),
    }
}

/// `app_id` wins over `application` when both are given; returns the field used and its value.
fn application_field(
    app_id: Option<Option<String>>,
    application: Option<Option<String>>,
) -> Option<(&'static str, Option<String>)> {
    app_id
        .map(|value| ("app_id", value))
        .or(application.map(|value| ("application", value)))
}

#[utoipa::path(
    post,
    operation_id = "create_endpoint",
    path = "/api/v1/Account/{auth_id}/Endpoint",
    tag = TAG,
    summary = "Create an endpoint",
    params(("auth_id" = String, Path, description = "Account auth_id (the caller or one of its sub-accounts)")),
    request_body = CreateEndpointRequest,
    responses(
        (status = 201, description = "Created", body = EndpointCreated),
        (status = 409, description = "Username already exists", body = ErrorBody),
        StandardErrors,
    ),
)]
pub async fn create(
    State(state): State<ApiState>,
    context: AccountContext,
    JsonBody(body): JsonBody<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let mut errors = FieldErrors::default();
    let username = body.username.unwrap_or_default();
    let password = body.password.unwrap_or_default();
    if username.is_empty() {
        errors.add("username", "This field is required");
    } else if let Err(message) = check_username(&username) {
        errors.add("username", message);
    }
    if password.is_empty() {
        errors.add("password", "This field is required");
    } else if let Err(message) = check_password(&password, &username) {
        errors.add("password", message);
    }
    let alias = body.alias.unwrap_or_else(|| username.clone());
    if let Err(message) = check_alias(&alias) {
        errors.add("alias", message);
    }
    errors.finish()?;

    let owner = context
        .owner_for_create(&state, body.sub_account.as_deref())
        .await?;
    let application_id = match application_field(body.app_id, body.application) {
        Some((field, Some(app_id))) => {
            Some(resolve_application(&state, context.scope, field, &app_id).await?)
        }
        // Omitted or null: the owner's default endpoint application, if any.
        _ => state
            .store
            .default_endpoint_application(owner.id)
            .await?
            .map(|app| app.id),
    };
    let new = NewEndpoint {
        account_id: owner.id,
        username: username.clone(),
        password,
        alias,
        application_id,
        allow_voice: body.allow_voice.unwrap_or(true),
        allow_message: body.allow_message.unwrap_or(true),
        allow_video: body.allow_video.unwrap_or(false),
        allow_same_domain: body.allow_same_domain.unwrap_or(true),
        allow_other_domains: body.allow_other_domains.unwrap_or(false),
        allow_phones: body.allow_phones.unwrap_or(true),
        allow_apps: body.allow_apps.unwrap_or(true),
    };
    let endpoint = match state.store.create_endpoint(new).await {
        Ok(endpoint) => endpoint,
        Err(StoreError::Conflict { .. }) => {
            return Err(
                ApiError::new(StatusCode::CONFLICT, "username already exists")
                    .with("username", username),
            )
        }
        Err(other) => return Err(other.into()),
    };
    let reply = EndpointCreated {
        api_id: new_api_id(),
        message: "created",
        alias: endpoint.alias,
        sip_uri: sip_uri(&endpoint.username, &state.sip_domain),
        resource_uri: resource_uri(&endpoint.account_auth_id, &endpoint.endpoint_id),
        endpoint_id: endpoint.endpoint_id,
        username: endpoint.username,
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

#[utoipa::path(
    get,
    operation_id = "list_endpoints",
    path = "/api/v1/Account/{auth_id}/Endpoint",
    tag = TAG,
    summary = "List endpoints (newest first)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id; a main account's own path also lists its sub-accounts' endpoints"),
        EndpointListQuery,
    ),
    responses((status = 200, description = "One page of endpoints", body = EndpointList), StandardErrors),
)]
pub async fn list(
    State(state): State<ApiState>,
    context: AccountContext,
    QueryParams(query): QueryParams<EndpointListQuery>,
) -> Result<Json<EndpointList>, ApiError> {
    let page = PageRequest::resolve(query.limit, query.offset, query.page, query.size)?;
    if query
        .application_id_exact
        .as_deref()
        .is_some_and(|app_id| !is_numeric_id(app_id))
    {
        return Err(ApiError::invalid_field(
            "application_id__exact",
            "expected a numeric id",
        ));
    }
    // A `sub_account` outside the caller's view matches nothing: no query needed.
    let owner = context
        .owner_filter(&state, query.sub_account.as_deref())
        .await?;
    let (endpoints, total_count) = match owner {
        None => (Vec::new(), 0),
        Some(account_id) => {
            let filter = EndpointFilter {
                username_contains: query.username_contains.clone(),
                username_exact: query.username_exact.clone(),
                username_startswith: query.username_startswith.clone(),
                alias_contains: query.alias_contains.clone(),
                alias_exact: query.alias_exact.clone(),
                application_id_exact: query.application_id_exact.clone(),
                application_id_isnull: query.application_id_isnull,
                account_id,
            };
            state
                .store
                .list_endpoints(context.scope, &filter, page.limit, page.offset)
                .await?
        }
    };
    let base = format!("/v1/Account/{}/Endpoint/", context.target.auth_id);
    Ok(Json(EndpointList {
        api_id: new_api_id(),
        meta: Meta::new(&base, page, total_count, &query.link_filters()),
        objects: endpoints
            .iter()
            .map(|endpoint| EndpointObject::new(endpoint, &state.sip_domain))
            .collect(),
    }))
}

#[utoipa::path(
    get,
    operation_id = "retrieve_endpoint",
    path = "/api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
    tag = TAG,
    summary = "Retrieve an endpoint",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("endpoint_id" = String, Path, description = "Endpoint id"),
    ),
    responses((status = 200, description = "The endpoint", body = EndpointDetail), StandardErrors),
)]
pub async fn retrieve(
    State(state): State<ApiState>,
    context: AccountContext,
    EndpointId(endpoint_id): EndpointId,
) -> Result<Json<EndpointDetail>, ApiError> {
    let endpoint = state
        .store
        .get_endpoint(context.scope, &endpoint_id)
        .await?
        .ok_or_else(|| ApiError::endpoint_not_found(&endpoint_id))?;
    let sip_registration = endpoint.registration.as_ref().map(|reg| SipRegistration {
        contact: reg.contact.clone(),
        expires: iso_z(reg.expires_at),
        user_agent: reg.user_agent.clone(),
        received: reg.received.clone(),
        path: reg.path.clone(),
    });
    Ok(Json(EndpointDetail {
        api_id: new_api_id(),
        endpoint: EndpointObject::new(&endpoint, &state.sip_domain),
        sip_registration,
    }))
}

#[utoipa::path(
    post,
    operation_id = "update_endpoint",
    path = "/api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
    tag = TAG,
    summary = "Update an endpoint (partial)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("endpoint_id" = String, Path, description = "Endpoint id"),
    ),
    request_body = UpdateEndpointRequest,
    responses((status = 202, description = "Changed", body = MessageReply), StandardErrors),
)]
pub async fn update(
    State(state): State<ApiState>,
    context: AccountContext,
    EndpointId(endpoint_id): EndpointId,
    JsonBody(body): JsonBody<UpdateEndpointRequest>,
) -> Result<(StatusCode, Json<MessageReply>), ApiError> {
    let mut errors = FieldErrors::default();
    if let Some(alias) = &body.alias {
        if let Err(message) = check_alias(alias) {
            errors.add("alias", message);
        }
    }
    if let Some(password) = &body.password {
        // Checked against the current username, hence the read first.
        let current = state
            .store
            .get_endpoint(context.scope, &endpoint_id)
            .await?
            .ok_or_else(|| ApiError::endpoint_not_found(&endpoint_id))?;
        if let Err(message) = check_password(password, &current.username) {
            errors.add("password", message);
        }
    }
    errors.finish()?;

    let application_id = match application_field(body.app_id, body.application) {
        None => None,
        Some((_, None)) => Some(None),
        Some((field, Some(app_id))) => Some(Some(
            resolve_application(&state, context.scope, field, &app_id).await?,
        )),
    };
    let patch = EndpointPatch {
        password: body.password,
        alias: body.alias,
        application_id,
        allow_voice: body.allow_voice,
        allow_message: body.allow_message,
        allow_video: body.allow_video,
    };
    state
        .store
        .update_endpoint(context.scope, &endpoint_id, patch)
        .await?
        .ok_or_else(|| ApiError::endpoint_not_found(&endpoint_id))?;
    Ok((StatusCode::ACCEPTED, Json(MessageReply::new("changed"))))
}

#[utoipa::path(
    delete,
    operation_id = "delete_endpoint",
    path = "/api/v1/Account/{auth_id}/Endpoint/{endpoint_id}",
    tag = TAG,
    summary = "Delete an endpoint (and drop its registrations)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("endpoint_id" = String, Path, description = "Endpoint id"),
    ),
    responses((status = 204, description = "Deleted, empty body"), StandardErrors),
)]
pub async fn delete(
    State(state): State<ApiState>,
    context: AccountContext,
    EndpointId(endpoint_id): EndpointId,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_endpoint(context.scope, &endpoint_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::endpoint_not_found(&endpoint_id))
    }
}
