//! Main accounts and sub-accounts.

use crate::applications::{unbind_endpoints, AppsOf};
use crate::endpoints::endpoint_changes;
use crate::sql::{
    get, get_bool, get_opt_time, get_time, now_ms, unique_violation, Sql, ID_ATTEMPTS,
};
use crate::{
    secrets, Account, AccountPatch, Backend, EndpointChangeKind, NewAccount, Result, Store,
    StoreError,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const ACCOUNT_COLUMNS: &str = "SELECT a.id, a.auth_id, a.parent_id, p.auth_id AS parent_auth_id, \
     a.name, a.email, a.phone, a.description, a.rate_limit, a.permissions, a.enabled, a.kyc_mode, \
     a.business_type, a.created_at, a.updated_at, a.last_used";
const ACCOUNT_FROM: &str = " FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id";

/// `SELECT <account columns> FROM accounts a …`, ready for a WHERE clause.
fn account_select() -> Sql {
    let mut sql = Sql::new(ACCOUNT_COLUMNS);
    sql.push(ACCOUNT_FROM);
    sql
}

/// `last_used` is written at most this often per account, so authentication is not a write
/// on every request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn account_from_row(row: &AnyRow) -> Result<Account> {
    let permissions: String = get(row, "permissions")?;
    let permissions: BTreeMap<String, bool> =
        serde_json::from_str(&permissions).map_err(|err| {
            StoreError::Database(format!("stored permissions are not valid JSON: {err}"))
        })?;
    Ok(Account {
        id: get(row, "id")?,
        auth_id: get(row, "auth_id")?,
        parent_id: get(row, "parent_id")?,
        parent_auth_id: get(row, "parent_auth_id")?,
        name: get(row, "name")?,
        email: get(row, "email")?,
        phone: get(row, "phone")?,
        description: get(row, "description")?,
        rate_limit: get(row, "rate_limit")?,
        permissions,
        enabled: get_bool(row, "enabled")?,
        kyc_mode: get(row, "kyc_mode")?,
        business_type: get(row, "business_type")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        last_used: get_opt_time(row, "last_used")?,
    })
}

fn permissions_json(permissions: &BTreeMap<String, bool>) -> Result<String> {
    serde_json::to_string(permissions)
        .map_err(|err| StoreError::Database(format!("cannot encode permissions: {err}")))
}

pub(crate) async fn fetch_account(conn: &mut AnyConnection, id: i64) -> Result<Option<Account>> {
    let mut sql = account_select();
    sql.push(" WHERE a.id = ").bind(id)?;
    sql.fetch_optional(conn)
        .await?
        .as_ref()
        .map(account_from_row)
        .transpose()
}

impl Store {
    /// Create a main account (`parent_id: None`, auth_id `MA_` + 8) or a sub-account (`SA_` + 8).
    /// Generates auth_id / auth_token when not given; returns the clear token (shown once).
    ///
    /// Fails with `InvalidReference("parent_account")` when the parent does not exist or is
    /// itself a sub-account (sub-accounts are one level deep), and `Conflict { field: "auth_id" }`
    /// when a chosen auth_id is taken.
    pub async fn create_account(&self, new: NewAccount) -> Result<(Account, String)> {
        let mut conn = self.pool.acquire().await?;
        if let Some(parent_id) = new.parent_id {
            let parent = sqlx::query("SELECT parent_id FROM accounts WHERE id = $1")
                .bind(parent_id)
                .fetch_optional(&mut *conn)
                .await?;
            match parent {
                Some(row) if get::<Option<i64>>(&row, "parent_id")?.is_none() => {}
                _ => return Err(StoreError::InvalidReference("parent_account")),
            }
        }
        let token = new.auth_token.clone().unwrap_or_else(secrets::auth_token);
        let permissions = permissions_json(&new.permissions)?;
        let now = now_ms();
        for _ in 0..ID_ATTEMPTS {
            let auth_id = match &new.auth_id {
                Some(chosen) => chosen.clone(),
                None => secrets::account_auth_id(new.parent_id.is_some()),
            };
            let sealed = self.tokens.seal(&auth_id, &token)?;
            let inserted = sqlx::query(
                "INSERT INTO accounts (auth_id, parent_id, name, email, phone, description, \
                 rate_limit, permissions, enabled, kyc_mode, business_type, auth_token_nonce, \
                 auth_token_ciphertext, auth_token_hmac, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 RETURNING id",
            )
            .bind(&auth_id)
            .bind(new.parent_id)
            .bind(&new.name)
            .bind(new.email.as_deref())
            .bind(new.phone.as_deref())
            .bind(new.description.as_deref())
            .bind(new.rate_limit.unwrap_or(1000))
            .bind(&permissions)
            .bind(new.enabled.unwrap_or(true))
            .bind(new.kyc_mode.as_deref().unwrap_or("personal_use"))
            .bind(new.business_type.as_deref())
            .bind(sealed.nonce)
            .bind(sealed.ciphertext)
            .bind(sealed.hmac)
            .bind(now)
            .fetch_one(&mut *conn)
            .await;
            match inserted {
                Ok(row) => {
                    let id: i64 = get(&row, "id")?;
                    let account = fetch_account(&mut conn, id)
                        .await?
                        .ok_or_else(|| StoreError::Database("created account vanished".into()))?;
                    return Ok((account, token));
                }
                // A generated auth_id collided: draw another one.
                Err(err) if unique_violation(&err).is_some() && new.auth_id.is_none() => continue,
                Err(err) if unique_violation(&err).is_some() => {
                    return Err(StoreError::Conflict { field: "auth_id" })
                }
                // The parent was deleted between the check and the insert.
                Err(err) if crate::sql::is_foreign_key_violation(&err) => {
                    return Err(StoreError::InvalidReference("parent_account"))
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Conflict { field: "auth_id" })
    }

    /// The account whose auth_id and token match (token compared in constant time), if enabled
    /// or not. `None` for an unknown id or a wrong token (indistinguishable to the caller).
    pub async fn authenticate(&self, auth_id: &str, auth_token: &str) -> Result<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        let mut sql = Sql::new(ACCOUNT_COLUMNS);
        sql.push(", a.auth_token_hmac").push(ACCOUNT_FROM);
        sql.push(" WHERE a.auth_id = ").bind(auth_id.to_owned())?;
        let Some(row) = sql.fetch_optional(&mut conn).await? else {
            // Same work as for a known id, so timing does not tell ids apart.
            self.tokens.verify(auth_token, &[0; 32]);
            return Ok(None);
        };
        let stored_hmac: Vec<u8> = get(&row, "auth_token_hmac")?;
        if !self.tokens.verify(auth_token, &stored_hmac) {
            return Ok(None);
        }
        let mut account = account_from_row(&row)?;
        let now = now_ms();
        let stamped = sqlx::query(
            "UPDATE accounts SET last_used = $1 \
             WHERE id = $2 AND (last_used IS NULL OR last_used < $3)",
        )
        .bind(now)
        .bind(account.id)
        .bind(now - LAST_USED_RESOLUTION_MS)
        .execute(&mut *conn)
        .await;
        match stamped {
            Ok(done) if done.rows_affected() > 0 => {
                account.last_used = chrono::DateTime::from_timestamp_millis(now)
            }
            Ok(_) => {}
            // Bookkeeping only: a busy database must not turn a valid login into an error.
            Err(err) => tracing::warn!(auth_id, error = %err, "cannot record account last_used"),
        }
        Ok(Some(account))
    }

    pub async fn account_by_auth_id(&self, auth_id: &str) -> Result<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        let mut sql = account_select();
        sql.push(" WHERE a.auth_id = ").bind(auth_id.to_owned())?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(account_from_row)
            .transpose()
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        let mut conn = self.pool.acquire().await?;
        fetch_account(&mut conn, id).await
    }

    /// Decrypted auth token (for signing webhooks, verifying SDK-minted tokens). Never log it.
    pub async fn account_auth_token(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT auth_id, auth_token_nonce, auth_token_ciphertext FROM accounts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let auth_id: String = get(&row, "auth_id")?;
        let nonce: Vec<u8> = get(&row, "auth_token_nonce")?;
        let ciphertext: Vec<u8> = get(&row, "auth_token_ciphertext")?;
        self.tokens.open(&auth_id, &nonce, &ciphertext).map(Some)
    }

    /// Sub-accounts of `parent_id`, newest first, and the total count.
    pub async fn list_sub_accounts(
        &self,
        parent_id: i64,
        active_only: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Account>, i64)> {
        let filter = |sql: &mut Sql| -> Result<()> {
            sql.push(" WHERE a.parent_id = ").bind(parent_id)?;
            if active_only {
                sql.push(" AND a.enabled = ").bind(true)?;
            }
            Ok(())
        };
        let mut conn = self.pool.acquire().await?;
        let mut count = Sql::new("SELECT COUNT(*) AS total FROM accounts a");
        filter(&mut count)?;
        let total: i64 = get(&count.fetch_one(&mut conn).await?, "total")?;
        let mut page = account_select();
        filter(&mut page)?;
        page.push(" ORDER BY a.created_at DESC, a.id DESC");
        page.page(limit, offset)?;
        let rows = page.fetch_all(&mut conn).await?;
        let accounts = rows.iter().map(account_from_row).collect::<Result<_>>()?;
        Ok((accounts, total))
    }

    pub async fn update_account(&self, id: i64, patch: AccountPatch) -> Result<Option<Account>> {
        let mut sql = Sql::new("UPDATE accounts SET updated_at = ");
        sql.bind(now_ms())?;
        if let Some(name) = patch.name {
            sql.set("name", name)?;
        }
        if let Some(email) = patch.email {
            sql.set("email", email)?;
        }
        if let Some(phone) = patch.phone {
            sql.set("phone", phone)?;
        }
        if let Some(description) = patch.description {
            sql.set("description", description)?;
        }
        if let Some(rate_limit) = patch.rate_limit {
            sql.set("rate_limit", rate_limit)?;
        }
        if let Some(permissions) = patch.permissions {
            sql.set("permissions", permissions_json(&permissions)?)?;
        }
        if let Some(enabled) = patch.enabled {
            sql.set("enabled", enabled)?;
        }
        if let Some(kyc_mode) = patch.kyc_mode {
            sql.set("kyc_mode", kyc_mode)?;
        }
        if let Some(business_type) = patch.business_type {
            sql.set("business_type", business_type)?;
        }
        sql.push(" WHERE id = ").bind(id)?;
        let mut tx = self.begin_write().await?;
        if sql.execute(&mut tx).await? == 0 {
            return Ok(None);
        }
        let account = fetch_account(&mut tx, id).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Delete a sub-account. `cascade`: delete its endpoints and applications too; otherwise
    /// they move to the parent account. Returns false if there was no such account.
    /// Subscribers of [`Store::subscribe_endpoint_changes`] learn of each endpoint deleted
    /// (`Deleted`), moved or unbound from a deleted application (`Updated`).
    ///
    /// A main account is not a sub-account: asking to delete one returns false.
    pub async fn delete_sub_account(&self, id: i64, cascade: bool) -> Result<bool> {
        // FOR UPDATE (PostgreSQL) also blocks new endpoints/apps being attached to the account
        // meanwhile; SQLite's write transaction is exclusive already and has no FOR UPDATE.
        let find = match self.backend {
            Backend::Postgres => "SELECT parent_id FROM accounts WHERE id = $1 FOR UPDATE",
            Backend::Sqlite => "SELECT parent_id FROM accounts WHERE id = $1",
        };
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(find).bind(id).fetch_optional(&mut *tx).await?;
        let Some(parent_id) = row
            .map(|row| get::<Option<i64>>(&row, "parent_id"))
            .transpose()?
            .flatten()
        else {
            return Ok(false);
        };
        let changed = if cascade {
            // Bindings go with their endpoints (ON DELETE CASCADE); endpoints of other accounts
            // bound to these apps are left without one.
            let deleted =
                sqlx::query("DELETE FROM endpoints WHERE account_id = $1 RETURNING id, username")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let unbound = unbind_endpoints(&mut tx, self.backend, AppsOf::Account, id).await?;
            sqlx::query("DELETE FROM applications WHERE account_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let mut changed = endpoint_changes(&deleted, EndpointChangeKind::Deleted)?;
            changed.extend(unbound);
            changed
        } else {
            let now = now_ms();
            // The parent keeps its own defaults: moved apps lose their default flags.
            sqlx::query(
                "UPDATE applications SET account_id = $1, default_endpoint_app = $2, \
                 default_number_app = $2, updated_at = $3 WHERE account_id = $4",
            )
            .bind(parent_id)
            .bind(false)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // Cached credentials carry the owning account: they are stale now.
            let moved = sqlx::query(
                "UPDATE endpoints SET account_id = $1, updated_at = $2 WHERE account_id = $3 \
                 RETURNING id, username",
            )
            .bind(parent_id)
            .bind(now)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            endpoint_changes(&moved, EndpointChangeKind::Updated)?
        };
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.changes
            .notify_in_transaction(&mut tx, &changed)
            .await?;
        tx.commit().await?;
        self.changes.publish(changed);
        Ok(true)
    }
}
