//! `sipd account create`: makes a main account and prints its credentials as one JSON line.

use crate::config::Config;
use crate::database;
use anyhow::Context;
use sipd_store::NewAccount;
use std::io::Write;

pub struct CreateAccount {
    pub name: String,
    pub auth_id: Option<String>,
    pub auth_token: Option<String>,
}

pub async fn create(config: &Config, request: CreateAccount) -> anyhow::Result<()> {
    let (store, _) = database::open(config).await?;
    // So that `account create` works on a fresh database, before the first `serve`.
    database::migrate(&store, config).await?;
    let (account, auth_token) = store
        .create_account(NewAccount {
            name: request.name,
            auth_id: request.auth_id,
            auth_token: request.auth_token,
            ..NewAccount::default()
        })
        .await
        .context("cannot create the account")?;
    tracing::info!(auth_id = %account.auth_id, name = %account.name, "account created");
    let line = serde_json::json!({ "auth_id": account.auth_id, "auth_token": auth_token });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}
