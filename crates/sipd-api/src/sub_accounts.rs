//! Sub-accounts: `/api/v1/accounts/{auth_id}/sub-accounts/[{sub_account_id}]` (spec §7),
//! managed by their main account only. A sub-account is named by its `SA_…` auth_id or by its
//! numeric `id` (the Python SDK passes the latter).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sipd_store::{Account, AccountPatch, NewAccount};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{is_auth_id, MainAccount};
use crate::error::{new_api_id, ApiError, FieldErrors, StandardErrors};
use crate::extract::{lenient, ApiPath, JsonBody, QueryParams};
use crate::reply::MessageReply;
use crate::timefmt::{date, iso_z};
use crate::ApiState;

const TAG: &str = "Sub-account";
const REDACTED: &str = "<redacted>";
const DEFAULT_PAGE_SIZE: i64 = 25;
const MAX_PAGE_SIZE: i64 = 100;
const KYC_MODES: [&str; 2] = ["personal_use", "customer_use"];
const BUSINESS_TYPES: [&str; 10] = [
    "individual",
    "proprietorship",
    "private_limited",
    "llp",
    "partnership",
    "public_limited",
    "trust",
    "society",
    "huf",
    "government",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct SubAccountObject {
    pub api_id: String,
    /// Numeric internal id.
    pub id: String,
    #[schema(example = "SA_QW12ER34")]
    pub auth_id: String,
    /// Clear text only in the create reply; `<redacted>` on every later read.
    pub auth_token: String,
    pub parent_account_id: String,
    pub parent_auth_id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub permissions: BTreeMap<String, bool>,
    pub rate_limit: i64,
    /// Always false: sipd does not verify e-mail addresses.
    pub email_verified: bool,
    pub enabled: bool,
    /// Same as `enabled`.
    pub is_active: bool,
    pub kyc_mode: String,
    /// Always false: sipd does not enforce KYC.
    pub kyc_calls_blocked: bool,
    pub business_type: Option<String>,
    #[schema(example = "2026-01-05")]
    pub created: String,
    pub modified: String,
    #[schema(example = "2026-01-05T09:00:00Z")]
    pub created_at: String,
    pub updated_at: String,
    pub last_used: Option<String>,
    #[schema(example = "/v1/Account/MA_AB12CD34/")]
    pub account: String,
    #[schema(example = "/v1/Account/MA_AB12CD34/Subaccount/SA_QW12ER34/")]
    pub resource_uri: String,
}

impl SubAccountObject {
    fn new(account: Account, parent: &Account, auth_token: String) -> Self {
        SubAccountObject {
            api_id: new_api_id(),
            id: account.id.to_string(),
            resource_uri: format!(
                "/v1/Account/{}/Subaccount/{}/",
                parent.auth_id, account.auth_id
            ),
            auth_id: account.auth_id,
            auth_token,
            parent_account_id: parent.id.to_string(),
            parent_auth_id: parent.auth_id.clone(),
            name: account.name,
            email: account.email,
            phone: account.phone,
            description: account.description,
            permissions: account.permissions,
            rate_limit: account.rate_limit,
            email_verified: false,
            enabled: account.enabled,
            is_active: account.enabled,
            kyc_mode: account.kyc_mode,
            kyc_calls_blocked: false,
            business_type: account.business_type,
            created: date(account.created_at),
            modified: date(account.updated_at),
            created_at: iso_z(account.created_at),
            updated_at: iso_z(account.updated_at),
            last_used: account.last_used.map(iso_z),
            account: format!("/v1/Account/{}/", parent.auth_id),
        }
    }

    fn redacted(account: Account, parent: &Account) -> Self {
        SubAccountObject::new(account, parent, REDACTED.to_owned())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthCredentials {
    pub auth_id: String,
    pub auth_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubAccountCreated {
    pub api_id: String,
    #[schema(example = "Sub-account created successfully")]
    pub message: &'static str,
    pub sub_account: SubAccountObject,
    pub auth_credentials: AuthCredentials,
    /// Always null: sipd has no console and issues no console JWTs.
    #[schema(value_type = Option<Object>)]
    pub tokens: (),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubAccountList {
    pub api_id: String,
    pub sub_accounts: Vec<SubAccountObject>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
}

/// Create body. A `password` (console login in Vobiz) is accepted and ignored: sipd has no
/// console.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSubAccountRequest {
    #[schema(required = true)]
    pub name: Option<String>,
    /// Required when `kyc_mode` is `customer_use`.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    /// Default 1000.
    #[serde(default, deserialize_with = "lenient::int")]
    #[schema(value_type = Option<i64>)]
    pub rate_limit: Option<i64>,
    pub permissions: Option<BTreeMap<String, bool>>,
    /// Default true; false blocks the sub-account's API calls.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<bool>,
    /// `personal_use` (default) or `customer_use`.
    pub kyc_mode: Option<String>,
    /// individual, proprietorship, private_limited, llp, partnership, public_limited, trust,
    /// society, huf or government.
    pub business_type: Option<String>,
}

/// Partial update; null clears `email`, `phone`, `description` and `business_type`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateSubAccountRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "lenient::int")]
    #[schema(value_type = Option<i64>)]
    pub rate_limit: Option<i64>,
    pub permissions: Option<BTreeMap<String, bool>>,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<bool>,
    pub kyc_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable_string")]
    #[schema(value_type = Option<String>, nullable)]
    pub business_type: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubAccountListQuery {
    /// 1-based page, default 1.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub page: Option<i64>,
    /// Page size, default 25; values above 100 are clamped to 100.
    #[serde(default, deserialize_with = "lenient::int")]
    #[param(value_type = Option<i64>)]
    pub size: Option<i64>,
    /// Only enabled sub-accounts.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[param(value_type = Option<bool>)]
    pub active_only: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteSubAccountQuery {
    /// true: delete the sub-account's endpoints and applications too; false (default): move
    /// them to the main account.
    #[serde(default, deserialize_with = "lenient::bool")]
    #[param(value_type = Option<bool>)]
    pub cascade: Option<bool>,
}

const MAX_NAME_LEN: usize = 128;
const MAX_EMAIL_LEN: usize = 254;
const MAX_PHONE_LEN: usize = 32;
const MAX_DESCRIPTION_LEN: usize = 1024;

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        Err("must be 1-128 characters")
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

fn check_email(email: &str) -> Result<(), &'static str> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(())
    } else {
        Err("Enter a valid email address")
    }
}

fn check_phone(phone: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')');
    if phone.is_empty() || phone.len() > MAX_PHONE_LEN || !phone.chars().all(allowed) {
        Err("Enter a valid phone number")
    } else {
        Ok(())
    }
}

fn check_description(description: &str) -> Result<(), &'static str> {
    let multiline = |c: char| matches!(c, '\n' | '\r' | '\t');
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        Err("must be at most 1024 characters")
    } else if description.chars().any(|c| c.is_control() && !multiline(c)) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Permission names: 1-64 letters, digits or `_`.
fn check_permissions(permissions: &BTreeMap<String, bool>) -> Result<(), &'static str> {
    let valid = |name: &String| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    };
    if permissions.keys().all(valid) {
        Ok(())
    } else {
        Err("permission names are 1-64 letters, digits or '_'")
    }
}

fn check_rate_limit(rate_limit: i64) -> Result<(), &'static str> {
    if rate_limit < 1 {
        Err("must be a positive integer")
    } else {
        Ok(())
    }
}

fn check_kyc_mode(kyc_mode: &str) -> Result<(), &'static str> {
    if KYC_MODES.contains(&kyc_mode) {
        Ok(())
    } else {
        Err("must be personal_use or customer_use")
    }
}

fn check_business_type(business_type: &str) -> Result<(), &'static str> {
    if BUSINESS_TYPES.contains(&business_type) {
        Ok(())
    } else {
        Err("unknown business type")
    }
}

/// The values a create or an update sets (`None`: not set), checked by the same rules.
struct Settings<'a> {
    name: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    description: Option<&'a str>,
    rate_limit: Option<i64>,
    kyc_mode: Option<&'a str>,
    business_type: Option<&'a str>,
    permissions: Option<&'a BTreeMap<String, bool>>,
}

fn check_settings(errors: &mut FieldErrors, settings: Settings<'_>) {
    let results = [
        ("name", settings.name.map(check_name)),
        ("email", settings.email.map(check_email)),
        ("phone", settings.phone.map(check_phone)),
        ("description", settings.description.map(check_description)),
        ("rate_limit", settings.rate_limit.map(check_rate_limit)),
        ("kyc_mode", settings.kyc_mode.map(check_kyc_mode)),
        (
            "business_type",
            settings.business_type.map(check_business_type),
        ),
        ("permissions", settings.permissions.map(check_permissions)),
    ];
    for (field, result) in results {
        if let Some(Err(message)) = result {
            errors.add(field, message);
        }
    }
}

/// The value an update sets, if any: null clears a field and needs no check.
fn set_value(value: &Option<Option<String>>) -> Option<&str> {
    value.as_ref().and_then(Option::as_deref)
}

/// The sub-account of `parent` named by `SA_…` auth_id or numeric id.
async fn find_sub_account(
    state: &ApiState,
    parent: &Account,
    sub_account_id: &str,
) -> Result<Account, ApiError> {
    let account = match sub_account_id.parse::<i64>() {
        Ok(id) => state.store.account_by_id(id).await?,
        Err(_) if is_auth_id(sub_account_id) => {
            state.store.account_by_auth_id(sub_account_id).await?
        }
        Err(_) => None,
    };
    account
        .filter(|account| account.parent_id == Some(parent.id))
        .ok_or_else(|| ApiError::sub_account_not_found(sub_account_id))
}

#[utoipa::path(
    post,
    operation_id = "create_sub_account",
    path = "/api/v1/accounts/{auth_id}/sub-accounts",
    tag = TAG,
    summary = "Create a sub-account",
    params(("auth_id" = String, Path, description = "The caller's own main-account auth_id")),
    request_body = CreateSubAccountRequest,
    responses((status = 201, description = "Created; the only reply showing the auth token", body = SubAccountCreated), StandardErrors),
)]
pub async fn create(
    State(state): State<ApiState>,
    MainAccount(parent): MainAccount,
    JsonBody(body): JsonBody<CreateSubAccountRequest>,
) -> Result<(StatusCode, Json<SubAccountCreated>), ApiError> {
    let mut errors = FieldErrors::default();
    let name = body.name.unwrap_or_default();
    if name.is_empty() {
        errors.add("name", "This field is required");
    }
    check_settings(
        &mut errors,
        Settings {
            name: Some(&name),
            email: body.email.as_deref(),
            phone: body.phone.as_deref(),
            description: body.description.as_deref(),
            rate_limit: body.rate_limit,
            kyc_mode: body.kyc_mode.as_deref(),
            business_type: body.business_type.as_deref(),
            permissions: body.permissions.as_ref(),
        },
    );
    if body.kyc_mode.as_deref() == Some("customer_use") && body.email.is_none() {
        errors.add("email", "required when kyc_mode is customer_use");
    }
    errors.finish()?;

    let new = NewAccount {
        name,
        parent_id: Some(parent.id),
        auth_id: None,
        auth_token: None,
        email: body.email,
        phone: body.phone,
        description: body.description,
        rate_limit: body.rate_limit,
        permissions: body.permissions.unwrap_or_default(),
        enabled: body.enabled,
        kyc_mode: body.kyc_mode,
        business_type: body.business_type,
    };
    let (account, auth_token) = state.store.create_account(new).await?;
    let auth_credentials = AuthCredentials {
        auth_id: account.auth_id.clone(),
        auth_token: auth_token.clone(),
    };
    let reply = SubAccountCreated {
        api_id: new_api_id(),
        message: "Sub-account created successfully",
        sub_account: SubAccountObject::new(account, &parent, auth_token),
        auth_credentials,
        tokens: (),
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

#[utoipa::path(
    get,
    operation_id = "list_sub_accounts",
    path = "/api/v1/accounts/{auth_id}/sub-accounts",
    tag = TAG,
    summary = "List sub-accounts (newest first)",
    params(
        ("auth_id" = String, Path, description = "The caller's own main-account auth_id"),
        SubAccountListQuery,
    ),
    responses((status = 200, description = "One page of sub-accounts", body = SubAccountList), StandardErrors),
)]
pub async fn list(
    State(state): State<ApiState>,
    MainAccount(parent): MainAccount,
    QueryParams(query): QueryParams<SubAccountListQuery>,
) -> Result<Json<SubAccountList>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = query.page.unwrap_or(1);
    if page < 1 {
        errors.add("page", "must be at least 1");
    }
    let size = query.size.unwrap_or(DEFAULT_PAGE_SIZE);
    if size < 1 {
        errors.add("size", "must be at least 1");
    }
    errors.finish()?;
    let size = size.min(MAX_PAGE_SIZE);
    let offset = (page - 1).saturating_mul(size);
    let (accounts, total) = state
        .store
        .list_sub_accounts(parent.id, query.active_only.unwrap_or(false), size, offset)
        .await?;
    Ok(Json(SubAccountList {
        api_id: new_api_id(),
        sub_accounts: accounts
            .into_iter()
            .map(|account| SubAccountObject::redacted(account, &parent))
            .collect(),
        total,
        page,
        size,
    }))
}

#[utoipa::path(
    get,
    operation_id = "retrieve_sub_account",
    path = "/api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
    tag = TAG,
    summary = "Retrieve a sub-account",
    params(
        ("auth_id" = String, Path, description = "The caller's own main-account auth_id"),
        ("sub_account_id" = String, Path, description = "Sub-account auth_id (SA_…) or numeric id"),
    ),
    responses((status = 200, description = "The sub-account (token redacted)", body = SubAccountObject), StandardErrors),
)]
pub async fn retrieve(
    State(state): State<ApiState>,
    MainAccount(parent): MainAccount,
    ApiPath(path): ApiPath<(String, String)>,
) -> Result<Json<SubAccountObject>, ApiError> {
    let (_, sub_account_id) = path;
    let account = find_sub_account(&state, &parent, &sub_account_id).await?;
    Ok(Json(SubAccountObject::redacted(account, &parent)))
}

#[utoipa::path(
    put,
    operation_id = "update_sub_account",
    path = "/api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
    tag = TAG,
    summary = "Update a sub-account (partial)",
    params(
        ("auth_id" = String, Path, description = "The caller's own main-account auth_id"),
        ("sub_account_id" = String, Path, description = "Sub-account auth_id (SA_…) or numeric id"),
    ),
    request_body = UpdateSubAccountRequest,
    responses((status = 200, description = "The updated sub-account (token redacted)", body = SubAccountObject), StandardErrors),
)]
pub async fn update(
    State(state): State<ApiState>,
    MainAccount(parent): MainAccount,
    ApiPath(path): ApiPath<(String, String)>,
    JsonBody(body): JsonBody<UpdateSubAccountRequest>,
) -> Result<Json<SubAccountObject>, ApiError> {
    let (_, sub_account_id) = path;
    let current = find_sub_account(&state, &parent, &sub_account_id).await?;
    let mut errors = FieldErrors::default();
    check_settings(
        &mut errors,
        Settings {
            name: body.name.as_deref(),
            email: set_value(&body.email),
            phone: set_value(&body.phone),
            description: set_value(&body.description),
            rate_limit: body.rate_limit,
            kyc_mode: body.kyc_mode.as_deref(),
            business_type: set_value(&body.business_type),
            permissions: body.permissions.as_ref(),
        },
    );
    let kyc_mode = body.kyc_mode.as_deref().unwrap_or(&current.kyc_mode);
    let email = body.email.as_ref().unwrap_or(&current.email);
    if kyc_mode == "customer_use" && email.is_none() {
        errors.add("email", "required when kyc_mode is customer_use");
    }
    errors.finish()?;

    let patch = AccountPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        description: body.description,
        rate_limit: body.rate_limit,
        permissions: body.permissions,
        enabled: body.enabled,
        kyc_mode: body.kyc_mode,
        business_type: body.business_type,
    };
    let account = state
        .store
        .update_account(current.id, patch)
        .await?
        .ok_or_else(|| ApiError::sub_account_not_found(&sub_account_id))?;
    Ok(Json(SubAccountObject::redacted(account, &parent)))
}

#[utoipa::path(
    delete,
    operation_id = "delete_sub_account",
    path = "/api/v1/accounts/{auth_id}/sub-accounts/{sub_account_id}",
    tag = TAG,
    summary = "Delete a sub-account",
    params(
        ("auth_id" = String, Path, description = "The caller's own main-account auth_id"),
        ("sub_account_id" = String, Path, description = "Sub-account auth_id (SA_…) or numeric id"),
        DeleteSubAccountQuery,
    ),
    responses((status = 200, description = "Deleted", body = MessageReply), StandardErrors),
)]
pub async fn delete(
    State(state): State<ApiState>,
    MainAccount(parent): MainAccount,
    ApiPath(path): ApiPath<(String, String)>,
    QueryParams(query): QueryParams<DeleteSubAccountQuery>,
) -> Result<Json<MessageReply>, ApiError> {
    let (_, sub_account_id) = path;
    let account = find_sub_account(&state, &parent, &sub_account_id).await?;
    let cascade = query.cascade.unwrap_or(false);
    if !state.store.delete_sub_account(account.id, cascade).await? {
        return Err(ApiError::sub_account_not_found(&sub_account_id));
    }
    Ok(Json(MessageReply::new("Sub-account deleted successfully")))
}
