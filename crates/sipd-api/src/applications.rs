//! Applications: `/api/v1/Account/{auth_id}/Application/[{app_id}/]` (spec §6).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sipd_store::{Application, ApplicationFilter, ApplicationPatch, NewApplication};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AccountContext;
use crate::error::{new_api_id, ApiError, FieldErrors, StandardErrors};
use crate::extract::{lenient, AppId, JsonBody, QueryParams};
use crate::listing::{Meta, PageRequest};
use crate::reply::MessageReply;
use crate::timefmt::python_style;
use crate::ApiState;

const TAG: &str = "Application";

/// Every field of spec §6.2. Timestamps use the Python-style form Vobiz documents for
/// applications (`2026-04-02 12:11:19.740666+00:00`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationObject {
    #[schema(example = "31415926535897932")]
    pub app_id: String,
    pub app_name: String,
    pub answer_url: String,
    pub answer_method: String,
    pub hangup_url: Option<String>,
    pub hangup_method: String,
    pub fallback_answer_url: Option<String>,
    pub fallback_method: String,
    pub message_url: Option<String>,
    pub message_method: String,
    pub default_number_app: bool,
    pub default_endpoint_app: bool,
    /// auth_id of the owning sub-account; null for a main account's application.
    pub sub_account: Option<String>,
    pub application_type: String,
    pub default_app: bool,
    pub enabled: bool,
    pub log_incoming_message: bool,
    pub public_uri: bool,
    pub sip_transfer_url: Option<String>,
    pub sip_transfer_method: String,
    #[schema(example = "sip:31415926535897932@app.vobiz.ai")]
    pub sip_uri: String,
    pub resource_uri: String,
    #[schema(example = "2026-04-02 12:11:19.740666+00:00")]
    pub created_at: String,
    pub updated_at: String,
}

impl From<Application> for ApplicationObject {
    fn from(app: Application) -> Self {
        ApplicationObject {
            sip_uri: format!("sip:{}@app.vobiz.ai", app.app_id),
            resource_uri: format!(
                "/v1/Account/{}/Application/{}/",
                app.account_auth_id, app.app_id
            ),
            created_at: python_style(app.created_at),
            updated_at: python_style(app.updated_at),
            app_id: app.app_id,
            app_name: app.app_name,
            answer_url: app.answer_url,
            answer_method: app.answer_method,
            hangup_url: app.hangup_url,
            hangup_method: app.hangup_method,
            fallback_answer_url: app.fallback_answer_url,
            fallback_method: app.fallback_method,
            message_url: app.message_url,
            message_method: app.message_method,
            default_number_app: app.default_number_app,
            default_endpoint_app: app.default_endpoint_app,
            sub_account: app.sub_account,
            application_type: app.application_type,
            default_app: app.default_app,
            enabled: app.enabled,
            log_incoming_message: app.log_incoming_message,
            public_uri: app.public_uri,
            sip_transfer_url: app.sip_transfer_url,
            sip_transfer_method: app.sip_transfer_method,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationDetail {
    pub api_id: String,
    #[serde(flatten)]
    pub application: ApplicationObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationList {
    pub api_id: String,
    pub meta: Meta,
    pub objects: Vec<ApplicationObject>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationCreated {
    pub api_id: String,
    pub app_id: String,
    #[schema(example = "created")]
    pub message: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApplicationRequest {
    /// Letters, digits, spaces, `-`, `_`, `.`; 1–128 characters. Required unless `name` is given.
    pub app_name: Option<String>,
    /// Alias of `app_name` (what the Python SDK sends).
    pub name: Option<String>,
    /// http(s) URL answering with VobizXML.
    #[schema(required = true)]
    pub answer_url: Option<String>,
    /// GET or POST, default POST.
    pub answer_method: Option<String>,
    /// Defaults to `answer_url`.
    pub hangup_url: Option<String>,
    pub hangup_method: Option<String>,
    pub fallback_answer_url: Option<String>,
    pub fallback_method: Option<String>,
    pub message_url: Option<String>,
    pub message_method: Option<String>,
    /// Default false; setting it moves the flag off the owner's other applications.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_number_app: Option<bool>,
    /// Default false; new endpoints created without an application bind to this one.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_endpoint_app: Option<bool>,
    /// `XML` (default) or `Siptrunk`.
    pub application_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_app: Option<bool>,
    /// Default true.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<bool>,
    /// Default true (older docs spell it `log_incoming_messages`, also accepted).
    #[serde(
        default,
        deserialize_with = "lenient::bool",
        alias = "log_incoming_messages"
    )]
    #[schema(value_type = Option<bool>)]
    pub log_incoming_message: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub public_uri: Option<bool>,
    pub sip_transfer_url: Option<String>,
    pub sip_transfer_method: Option<String>,
    /// auth_id of a sub-account to create the application for (parent only); immutable.
    pub sub_account: Option<String>,
}

/// Partial update; omitted fields are unchanged, null clears a nullable URL. `sub_account`
/// never changes and is ignored like any unknown field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateApplicationRequest {
    pub app_name: Option<String>,
    /// Alias of `app_name`.
    pub name: Option<String>,
    pub answer_url: Option<String>,
    pub answer_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub hangup_url: Option<Option<String>>,
    pub hangup_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub fallback_answer_url: Option<Option<String>>,
    pub fallback_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub message_url: Option<Option<String>>,
    pub message_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_number_app: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_endpoint_app: Option<bool>,
    pub application_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub default_app: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient::bool",
        alias = "log_incoming_messages"
    )]
    #[schema(value_type = Option<bool>)]
    pub log_incoming_message: Option<bool>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub public_uri: Option<bool>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub sip_transfer_url: Option<Option<String>>,
    pub sip_transfer_method: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplicationListQuery {
    /// Page size, default 20; values above 100 are clamped to 100.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub limit: Option<i64>,
    /// Rows to skip, default 0.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub offset: Option<i64>,
    /// 1-based page number, as the Python SDK sends it (offset = (page - 1) × limit).
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub page: Option<i64>,
    /// Alias of `limit`, as the Python SDK sends it.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub size: Option<i64>,
    #[serde(rename = "app_name__contains")]
    pub app_name_contains: Option<String>,
    #[serde(rename = "app_name__exact")]
    pub app_name_exact: Option<String>,
    /// Only applications of this type (`XML` or `Siptrunk`), as the Python SDK sends it.
    pub application_type: Option<String>,
    /// Only applications of this account (the path's own auth_id or one of its sub-accounts).
    pub sub_account: Option<String>,
}

impl ApplicationListQuery {
    /// The filters given, as repeated in `meta.next` / `meta.previous`.
    fn link_filters(&self) -> Vec<(&'static str, String)> {
        [
            ("app_name__contains", &self.app_name_contains),
            ("app_name__exact", &self.app_name_exact),
            ("application_type", &self.application_type),
            ("sub_account", &self.sub_account),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
        .collect()
    }
}

const MAX_APP_NAME_LEN: usize = 128;
const MAX_URL_LEN: usize = 2048;

fn check_app_name(name: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.');
    if name.trim().is_empty() || name.chars().count() > MAX_APP_NAME_LEN {
        Err("must be 1-128 characters")
    } else if !name.chars().all(allowed) {
        Err("only letters, digits, spaces, '-', '_' and '.' are allowed")
    } else {
        Ok(())
    }
}

/// An absolute http(s) URL with a host, no whitespace, at most 2048 bytes.
fn check_url(url: &str) -> Result<(), &'static str> {
    const INVALID: &str = "Enter a valid URL";
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(INVALID);
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or(INVALID)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        // A bracketed IPv6 literal has colons of its own.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok());
    if host.is_empty() || !port_ok {
        Err(INVALID)
    } else {
        Ok(())
    }
}

/// `GET`/`POST` in any case, normalised to upper case.
fn parse_method(errors: &mut FieldErrors, field: &str, method: Option<String>) -> Option<String> {
    let method = method?.to_ascii_uppercase();
    if method == "GET" || method == "POST" {
        Some(method)
    } else {
        errors.add(field, "must be GET or POST");
        None
    }
}

fn parse_application_type(errors: &mut FieldErrors, value: Option<String>) -> Option<String> {
    match value?.to_ascii_lowercase().as_str() {
        "xml" => Some("XML".to_owned()),
        "siptrunk" => Some("Siptrunk".to_owned()),
        _ => {
            errors.add("application_type", "must be XML or Siptrunk");
            None
        }
    }
}

/// An optional URL where `""` means none.
fn parse_optional_url(
    errors: &mut FieldErrors,
    field: &str,
    url: Option<String>,
) -> Option<String> {
    let url = url.filter(|url| !url.is_empty())?;
    if let Err(message) = check_url(&url) {
        errors.add(field, message);
    }
    Some(url)
}

#[utoipa::path(
    post,
    operation_id = "create_application",
    path = "/api/v1/Account/{auth_id}/Application",
    tag = TAG,
    summary = "Create an application",
    params(("auth_id" = String, Path, description = "Account auth_id (the caller or one of its sub-accounts)")),
    request_body = CreateApplicationRequest,
    responses((status = 201, description = "Created", body = ApplicationCreated), StandardErrors),
)]
pub async fn create(
    State(state): State<ApiState>,
    context: AccountContext,
    JsonBody(body): JsonBody<CreateApplicationRequest>,
) -> Result<(StatusCode, Json<ApplicationCreated>), ApiError> {
    let mut errors = FieldErrors::default();
    let app_name = body.app_name.or(body.name).unwrap_or_default();
    if app_name.is_empty() {
        errors.add("app_name", "This field is required");
    } else if let Err(message) = check_app_name(&app_name) {
        errors.add("app_name", message);
    }
    let answer_url = body.answer_url.unwrap_or_default();
    if answer_url.is_empty() {
        errors.add("answer_url", "This field is required");
    } else if let Err(message) = check_url(&answer_url) {
        errors.add("answer_url", message);
    }
    let answer_method = parse_method(&mut errors, "answer_method", body.answer_method);
    let hangup_url = parse_optional_url(&mut errors, "hangup_url", body.hangup_url);
    let hangup_method = parse_method(&mut errors, "hangup_method", body.hangup_method);
    let fallback_answer_url =
        parse_optional_url(&mut errors, "fallback_answer_url", body.fallback_answer_url);
    let fallback_method = parse_method(&mut errors, "fallback_method", body.fallback_method);
    let message_url = parse_optional_url(&mut errors, "message_url", body.message_url);
    let message_method = parse_method(&mut errors, "message_method", body.message_method);
    let sip_transfer_url =
        parse_optional_url(&mut errors, "sip_transfer_url", body.sip_transfer_url);
    let sip_transfer_method =
        parse_method(&mut errors, "sip_transfer_method", body.sip_transfer_method);
    let application_type = parse_application_type(&mut errors, body.application_type);
    errors.finish()?;

    let owner = context
        .owner_for_create(&state, body.sub_account.as_deref())
        .await?;
    let post = || "POST".to_owned();
    let new = NewApplication {
        account_id: owner.id,
        app_name,
        // Documented default: hangup callbacks go to the answer URL.
        hangup_url: hangup_url.or_else(|| Some(answer_url.clone())),
        answer_url,
        answer_method: answer_method.unwrap_or_else(post),
        hangup_method: hangup_method.unwrap_or_else(post),
        fallback_answer_url,
        fallback_method: fallback_method.unwrap_or_else(post),
        message_url,
        message_method: message_method.unwrap_or_else(post),
        default_number_app: body.default_number_app.unwrap_or(false),
        default_endpoint_app: body.default_endpoint_app.unwrap_or(false),
        application_type: application_type.unwrap_or_else(|| "XML".to_owned()),
        default_app: body.default_app.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        log_incoming_message: body.log_incoming_message.unwrap_or(true),
        public_uri: body.public_uri.unwrap_or(false),
        sip_transfer_url,
        sip_transfer_method: sip_transfer_method.unwrap_or_else(post),
    };
    let app = state.store.create_application(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApplicationCreated {
            api_id: new_api_id(),
            app_id: app.app_id,
            message: "created",
        }),
    ))
}

#[utoipa::path(
    get,
    operation_id = "list_applications",
    path = "/api/v1/Account/{auth_id}/Application",
    tag = TAG,
    summary = "List applications (newest first)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id; a main account's own path also lists its sub-accounts' applications"),
        ApplicationListQuery,
    ),
    responses((status = 200, description = "One page of applications", body = ApplicationList), StandardErrors),
)]
pub async fn list(
    State(state): State<ApiState>,
    context: AccountContext,
    QueryParams(query): QueryParams<ApplicationListQuery>,
) -> Result<Json<ApplicationList>, ApiError> {
    let page = PageRequest::resolve(query.limit, query.offset, query.page, query.size)?;
    // A `sub_account` outside the caller's view matches nothing: no query needed.
    let owner = context
        .owner_filter(&state, query.sub_account.as_deref())
        .await?;
    let (apps, total_count) = match owner {
        None => (Vec::new(), 0),
        Some(account_id) => {
            let filter = ApplicationFilter {
                app_name_contains: query.app_name_contains.clone(),
                app_name_exact: query.app_name_exact.clone(),
                application_type: query.application_type.clone(),
                account_id,
            };
            state
                .store
                .list_applications(context.scope, &filter, page.limit, page.offset)
                .await?
        }
    };
    let base = format!("/v1/Account/{}/Application/", context.target.auth_id);
    Ok(Json(ApplicationList {
        api_id: new_api_id(),
        meta: Meta::new(&base, page, total_count, &query.link_filters()),
        objects: apps.into_iter().map(ApplicationObject::from).collect(),
    }))
}

#[utoipa::path(
    get,
    operation_id = "retrieve_application",
    path = "/api/v1/Account/{auth_id}/Application/{app_id}",
    tag = TAG,
    summary = "Retrieve an application",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("app_id" = String, Path, description = "Application id"),
    ),
    responses((status = 200, description = "The application", body = ApplicationDetail), StandardErrors),
)]
pub async fn retrieve(
    State(state): State<ApiState>,
    context: AccountContext,
    AppId(app_id): AppId,
) -> Result<Json<ApplicationDetail>, ApiError> {
    let app = state
        .store
        .get_application(context.scope, &app_id)
        .await?
        .ok_or_else(|| ApiError::application_not_found(&app_id))?;
    Ok(Json(ApplicationDetail {
        api_id: new_api_id(),
        application: app.into(),
    }))
}

#[utoipa::path(
    post,
    operation_id = "update_application",
    path = "/api/v1/Account/{auth_id}/Application/{app_id}",
    tag = TAG,
    summary = "Update an application (partial)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("app_id" = String, Path, description = "Application id"),
    ),
    request_body = UpdateApplicationRequest,
    responses((status = 200, description = "Changed", body = MessageReply), StandardErrors),
)]
pub async fn update(
    State(state): State<ApiState>,
    context: AccountContext,
    AppId(app_id): AppId,
    JsonBody(body): JsonBody<UpdateApplicationRequest>,
) -> Result<Json<MessageReply>, ApiError> {
    let mut errors = FieldErrors::default();
    let app_name = body.app_name.or(body.name);
    if let Some(Err(message)) = app_name.as_deref().map(check_app_name) {
        errors.add("app_name", message);
    }
    if let Some(Err(message)) = body.answer_url.as_deref().map(check_url) {
        errors.add("answer_url", message);
    }
    // Present-but-empty or null clears; otherwise the URL must be valid.
    let mut nullable_url = |field: &str, url: Option<Option<String>>| {
        url.map(|url| parse_optional_url(&mut errors, field, url))
    };
    let hangup_url = nullable_url("hangup_url", body.hangup_url);
    let fallback_answer_url = nullable_url("fallback_answer_url", body.fallback_answer_url);
    let message_url = nullable_url("message_url", body.message_url);
    let sip_transfer_url = nullable_url("sip_transfer_url", body.sip_transfer_url);
    let patch = ApplicationPatch {
        app_name,
        answer_url: body.answer_url,
        answer_method: parse_method(&mut errors, "answer_method", body.answer_method),
        hangup_url,
        hangup_method: parse_method(&mut errors, "hangup_method", body.hangup_method),
        fallback_answer_url,
        fallback_method: parse_method(&mut errors, "fallback_method", body.fallback_method),
        message_url,
        message_method: parse_method(&mut errors, "message_method", body.message_method),
        default_number_app: body.default_number_app,
        default_endpoint_app: body.default_endpoint_app,
        application_type: parse_application_type(&mut errors, body.application_type),
        default_app: body.default_app,
        enabled: body.enabled,
        log_incoming_message: body.log_incoming_message,
        public_uri: body.public_uri,
        sip_transfer_url,
        sip_transfer_method: parse_method(
            &mut errors,
            "sip_transfer_method",
            body.sip_transfer_method,
        ),
    };
    errors.finish()?;
    state
        .store
        .update_application(context.scope, &app_id, patch)
        .await?
        .ok_or_else(|| ApiError::application_not_found(&app_id))?;
    Ok(Json(MessageReply::new("changed")))
}

#[utoipa::path(
    delete,
    operation_id = "delete_application",
    path = "/api/v1/Account/{auth_id}/Application/{app_id}",
    tag = TAG,
    summary = "Delete an application (bound endpoints are left without one)",
    params(
        ("auth_id" = String, Path, description = "Account auth_id"),
        ("app_id" = String, Path, description = "Application id"),
    ),
    responses((status = 204, description = "Deleted, empty body"), StandardErrors),
)]
pub async fn delete(
    State(state): State<ApiState>,
    context: AccountContext,
    AppId(app_id): AppId,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .delete_application(context.scope, &app_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::application_not_found(&app_id))
    }
}
