//! Who is calling (`X-Auth-ID` + `X-Auth-Token`) and which account the path's `{auth_id}` lets
//! them act within.
//!
//! A main account acting on its own path sees its own and its sub-accounts' resources
//! (`Scope::Family`); acting on a sub-account's path it acts within that child; a sub-account
//! only ever sees its own. Any other `{auth_id}`, existing or not, is the same 404.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::StatusCode;
use sipd_store::{Account, Scope};

use crate::error::ApiError;
use crate::ApiState;

/// Longest credential values looked up; anything longer cannot match.
const MAX_AUTH_ID_LEN: usize = 64;

/// Whether `auth_id` can name an account (`MA_…`/`SA_…`: letters, digits, `_`); anything else
/// cannot exist, so it is not looked up.
pub fn is_auth_id(auth_id: &str) -> bool {
    !auth_id.is_empty()
        && auth_id.len() <= MAX_AUTH_ID_LEN
        && auth_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}
const MAX_AUTH_TOKEN_LEN: usize = 256;

/// The authenticated, enabled account making the request.
pub struct Caller(pub Account);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
        };
        let (Some(auth_id), Some(auth_token)) = (header("x-auth-id"), header("x-auth-token"))
        else {
            return Err(ApiError::unauthorized());
        };
        if auth_id.len() > MAX_AUTH_ID_LEN || auth_token.len() > MAX_AUTH_TOKEN_LEN {
            return Err(ApiError::unauthorized());
        }
        match state.store.authenticate(auth_id, auth_token).await? {
            None => Err(ApiError::unauthorized()),
            Some(account) if !account.enabled => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "account disabled"))
            }
            Some(account) => Ok(Caller(account)),
        }
    }
}

/// The account named by the path's `{auth_id}` and what the caller may see through it.
pub struct AccountContext {
    /// The account named in the path (the caller itself or one of its sub-accounts).
    pub target: Account,
    /// What the caller may see through this path.
    pub scope: Scope,
}

impl FromRequestParts<ApiState> for AccountContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        let path_auth_id = path_auth_id(parts, state).await?;
        if path_auth_id == caller.auth_id {
            let scope = if caller.parent_id.is_none() {
                Scope::Family(caller.id)
            } else {
                Scope::Account(caller.id)
            };
            return Ok(AccountContext {
                target: caller,
                scope,
            });
        }
        if caller.parent_id.is_none() {
            if let Some(child) = child_of(state, &caller, &path_auth_id).await? {
                return Ok(AccountContext {
                    scope: Scope::Account(child.id),
                    target: child,
                });
            }
        }
        Err(ApiError::account_not_found(&path_auth_id))
    }
}

impl AccountContext {
    /// The account named `auth_id` if it is inside this context's scope: the target itself or,
    /// in a family scope, one of the target's sub-accounts.
    pub async fn account_in_scope(
        &self,
        state: &ApiState,
        auth_id: &str,
    ) -> Result<Option<Account>, ApiError> {
        if auth_id == self.target.auth_id {
            return Ok(Some(self.target.clone()));
        }
        match self.scope {
            Scope::Family(_) => child_of(state, &self.target, auth_id).await,
            Scope::Account(_) => Ok(None),
        }
    }

    /// The account a list's `sub_account` filter restricts to: `Some(None)` without a filter
    /// (or an empty one), `Some(Some(id))` for an account in this context's view, and `None`
    /// when it can match nothing: an account outside the view, which reveals nothing.
    pub async fn owner_filter(
        &self,
        state: &ApiState,
        sub_account: Option<&str>,
    ) -> Result<Option<Option<i64>>, ApiError> {
        match sub_account.filter(|value| !value.is_empty()) {
            None => Ok(Some(None)),
            Some(auth_id) => Ok(self
                .account_in_scope(state, auth_id)
                .await?
                .map(|account| Some(account.id))),
        }
    }

    /// Owner of a resource being created: the path's account, or the sub-account named in
    /// the body's `sub_account` (a parent creating on its child's behalf).
    pub async fn owner_for_create(
        &self,
        state: &ApiState,
        sub_account: Option<&str>,
    ) -> Result<Account, ApiError> {
        match sub_account.map(str::trim).filter(|value| !value.is_empty()) {
            None => Ok(self.target.clone()),
            Some(auth_id) => self.account_in_scope(state, auth_id).await?.ok_or_else(|| {
                ApiError::invalid_field("sub_account", "not a sub-account of this account")
            }),
        }
    }
}

/// The main account named by the path of a sub-account route: only a main account manages
/// sub-accounts, and only its own.
pub struct MainAccount(pub Account);

impl FromRequestParts<ApiState> for MainAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        let path_auth_id = path_auth_id(parts, state).await?;
        if path_auth_id != caller.auth_id {
            return Err(ApiError::account_not_found(&path_auth_id));
        }
        if caller.parent_id.is_some() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only a main account can manage sub-accounts",
            ));
        }
        Ok(MainAccount(caller))
    }
}

async fn path_auth_id(parts: &mut Parts, state: &ApiState) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid path parameter"))?;
    params
        .iter()
        .find(|(name, _)| *name == "auth_id")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid path parameter"))
}

/// The sub-account `auth_id` of `parent`, if it exists and belongs to it.
async fn child_of(
    state: &ApiState,
    parent: &Account,
    auth_id: &str,
) -> Result<Option<Account>, ApiError> {
    if !is_auth_id(auth_id) {
        return Ok(None);
    }
    Ok(state
        .store
        .account_by_auth_id(auth_id)
        .await?
        .filter(|account| account.parent_id == Some(parent.id)))
}
