//! The rows the store hands out and takes in. Times are UTC; `*_ms` fields are Unix milliseconds.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Which rows a caller may see. A main account sees its own and its sub-accounts' rows
/// (`Family`); a sub-account sees only its own (`Account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Rows owned by exactly this account (internal id).
    Account(i64),
    /// Rows owned by this main account or any of its sub-accounts.
    Family(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Internal numeric id (the API's `id`, as a string).
    pub id: i64,
    /// `MA_XXXXXXXX` for main accounts, `SA_XXXXXXXX` for sub-accounts.
    pub auth_id: String,
    pub parent_id: Option<i64>,
    pub parent_auth_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub rate_limit: i64,
    pub permissions: BTreeMap<String, bool>,
    pub enabled: bool,
    /// `personal_use` or `customer_use`.
    pub kyc_mode: String,
    pub business_type: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub name: String,
    /// `Some` creates a sub-account of that main account.
    pub parent_id: Option<i64>,
    /// Chosen credentials (CLI `--auth-id/--auth-token`); generated when `None`.
    pub auth_id: Option<String>,
    pub auth_token: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    /// Default 1000.
    pub rate_limit: Option<i64>,
    pub permissions: BTreeMap<String, bool>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default `personal_use`.
    pub kyc_mode: Option<String>,
    pub business_type: Option<String>,
}

/// Partial update; `None` leaves a field unchanged, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub rate_limit: Option<i64>,
    pub permissions: Option<BTreeMap<String, bool>>,
    pub enabled: Option<bool>,
    pub kyc_mode: Option<String>,
    pub business_type: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: i64,
    /// Public 17-digit numeric id.
    pub app_id: String,
    pub account_id: i64,
    /// auth_id of the owning account (used in `resource_uri`).
    pub account_auth_id: String,
    /// auth_id of the owner when it is a sub-account, else `None` (the API's `sub_account`).
    pub sub_account: Option<String>,
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
    pub application_type: String,
    pub default_app: bool,
    pub enabled: bool,
    pub log_incoming_message: bool,
    pub public_uri: bool,
    pub sip_transfer_url: Option<String>,
    pub sip_transfer_method: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new application; the API fills the spec's defaults before calling the store.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub account_id: i64,
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
    pub application_type: String,
    pub default_app: bool,
    pub enabled: bool,
    pub log_incoming_message: bool,
    pub public_uri: bool,
    pub sip_transfer_url: Option<String>,
    pub sip_transfer_method: String,
}

/// Partial update; `None` leaves a field unchanged, `Some(None)` clears a nullable one.
/// The owner (`sub_account`) never changes.
#[derive(Debug, Clone, Default)]
pub struct ApplicationPatch {
    pub app_name: Option<String>,
    pub answer_url: Option<String>,
    pub answer_method: Option<String>,
    pub hangup_url: Option<Option<String>>,
    pub hangup_method: Option<String>,
    pub fallback_answer_url: Option<Option<String>>,
    pub fallback_method: Option<String>,
    pub message_url: Option<Option<String>>,
    pub message_method: Option<String>,
    pub default_number_app: Option<bool>,
    pub default_endpoint_app: Option<bool>,
    pub application_type: Option<String>,
    pub default_app: Option<bool>,
    pub enabled: Option<bool>,
    pub log_incoming_message: Option<bool>,
    pub public_uri: Option<bool>,
    pub sip_transfer_url: Option<Option<String>>,
    pub sip_transfer_method: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    pub app_name_contains: Option<String>,
    pub app_name_exact: Option<String>,
    /// Exact `application_type` (`XML`, `Siptrunk`).
    pub application_type: Option<String>,
    /// Only this account's apps (already checked to be inside the scope by the caller).
    pub account_id: Option<i64>,
}

/// The application an endpoint is bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRef {
    pub app_id: String,
    pub app_name: String,
    pub account_auth_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: i64,
    /// Public 15-digit numeric id.
    pub endpoint_id: String,
    pub account_id: i64,
    /// auth_id of the owning account (used in `resource_uri`).
    pub account_auth_id: String,
    /// auth_id of the owner when it is a sub-account, else `None`.
    pub sub_account: Option<String>,
    pub username: String,
    pub alias: String,
    pub application: Option<ApplicationRef>,
    pub allow_voice: bool,
    pub allow_message: bool,
    pub allow_video: bool,
    pub allow_same_domain: bool,
    pub allow_other_domains: bool,
    pub allow_phones: bool,
    pub allow_apps: bool,
    pub credentials_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The newest unexpired binding at read time; `None` means not registered.
    pub registration: Option<RegistrationSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationSummary {
    pub contact: String,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    /// Source address the REGISTER came from, `ip:port`.
    pub received: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub account_id: i64,
    pub username: String,
    /// Clear password: only used to compute the HA1 values, never stored.
    pub password: String,
    pub alias: String,
    /// Internal id of the bound application (already resolved and scope-checked by the caller).
    pub application_id: Option<i64>,
    pub allow_voice: bool,
    pub allow_message: bool,
    pub allow_video: bool,
    pub allow_same_domain: bool,
    pub allow_other_domains: bool,
    pub allow_phones: bool,
    pub allow_apps: bool,
}

/// Partial update of the editable fields. A password change drops the endpoint's registrations.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub password: Option<String>,
    pub alias: Option<String>,
    /// `Some(None)` unbinds the application.
    pub application_id: Option<Option<i64>>,
    pub allow_voice: Option<bool>,
    pub allow_message: Option<bool>,
    pub allow_video: Option<bool>,
}

/// List filters of the Endpoint resource (spec §5.7).
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    pub username_contains: Option<String>,
    pub username_exact: Option<String>,
    pub username_startswith: Option<String>,
    pub alias_contains: Option<String>,
    pub alias_exact: Option<String>,
    /// Public app_id the endpoint is bound to.
    pub application_id_exact: Option<String>,
    /// `Some(true)`: only endpoints with no app; `Some(false)`: only with one.
    pub application_id_isnull: Option<bool>,
    /// Only this account's endpoints (internal id, already checked to be inside the scope).
    pub account_id: Option<i64>,
}

/// What the registrar needs to check a digest response, and what the proxy needs to know of
/// the endpoint: its owner and permissions.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub endpoint_pk: i64,
    pub endpoint_id: String,
    pub account_id: i64,
    /// The owner's main account: its parent for a sub-account, else the owner itself.
    pub account_family_id: i64,
    /// Internal id of the bound application, if any.
    pub application_id: Option<i64>,
    pub username: String,
    /// Hex MD5(username:realm:password).
    pub ha1_md5: String,
    /// Hex SHA-256(username:realm:password).
    pub ha1_sha256: String,
    pub credentials_changed_at: DateTime<Utc>,
    pub allow_voice: bool,
    pub allow_message: bool,
    pub allow_video: bool,
    pub allow_same_domain: bool,
    pub allow_other_domains: bool,
    pub allow_phones: bool,
    pub allow_apps: bool,
}

impl std::fmt::Debug for Credentials {
    // HA1 values are password equivalents: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint_id", &self.endpoint_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One registration binding (RFC 3261 §10, RFC 5626, RFC 3327).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Internal id of the endpoint (the AOR owner).
    pub endpoint_pk: i64,
    pub contact_uri: String,
    pub expires_at_ms: i64,
    /// q-value in thousandths (0..=1000); `None` when the Contact had no `q`.
    pub q: Option<i32>,
    pub call_id: String,
    pub cseq: i64,
    pub user_agent: Option<String>,
    /// Source address of the REGISTER, `ip:port`, and its transport (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub received: String,
    pub transport: String,
    /// Identifier of the flow (connection or UDP source) the REGISTER arrived on.
    pub flow_id: Option<String>,
    /// `+sip.instance` and `reg-id` (RFC 5626).
    pub instance_id: Option<String>,
    pub reg_id: Option<i64>,
    /// Path header values, comma-joined in order (RFC 3327).
    pub path: Option<String>,
    /// Node (sipd process) that holds the flow.
    pub node_id: String,
    pub updated_at_ms: i64,
}

impl Binding {
    /// What identifies the binding in the store: (endpoint, contact URI, reg-id). RFC 5626 §6
    /// lets one device register several flows with the same Contact URI, told apart by
    /// reg-id, each a binding of its own; `None` (no reg-id) is one more value, not a wildcard.
    pub fn key(&self) -> (i64, &str, Option<i64>) {
        (self.endpoint_pk, self.contact_uri.as_str(), self.reg_id)
    }
}
