//! Applications (answer/hangup URLs the call flow fetches).

use crate::endpoints::endpoint_changes;
use crate::sql::{
    get, get_bool, get_time, is_foreign_key_violation, now_ms, unique_violation, Sql, ID_ATTEMPTS,
};
use crate::{
    secrets, Application, ApplicationFilter, ApplicationPatch, Backend, EndpointChange,
    EndpointChangeKind, NewApplication, Result, Scope, Store, StoreError,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// Public app ids are 17-digit numeric strings.
const APP_ID_DIGITS: usize = 17;

const APPLICATION_SELECT: &str = "SELECT ap.id, ap.app_id, ap.account_id, \
     a.auth_id AS account_auth_id, a.parent_id AS account_parent_id, ap.app_name, ap.answer_url, \
     ap.answer_method, ap.hangup_url, ap.hangup_method, ap.fallback_answer_url, ap.fallback_method, \
     ap.message_url, ap.message_method, ap.default_number_app, ap.default_endpoint_app, \
     ap.application_type, ap.default_app, ap.enabled, ap.log_incoming_message, ap.public_uri, \
     ap.sip_transfer_url, ap.sip_transfer_method, ap.created_at, ap.updated_at \
     FROM applications ap JOIN accounts a ON a.id = ap.account_id";

/// Which applications [`unbind_endpoints`] unbinds: by their id, or all of an account.
#[derive(Clone, Copy)]
pub(crate) enum AppsOf {
    Id,
    Account,
}

/// Unbinds the endpoints bound to the applications whose `id` (or `account_id`) is `value`,
/// which the caller is about to delete, and returns them as `Updated` changes: caches holding
/// an endpoint's application learn it (the foreign key's `ON DELETE SET NULL` would unbind
/// them silently). On PostgreSQL the applications are locked first, so no endpoint binds to
/// them meanwhile (SQLite's write transaction is exclusive already).
pub(crate) async fn unbind_endpoints(
    conn: &mut AnyConnection,
    backend: Backend,
    apps: AppsOf,
    value: i64,
) -> Result<Vec<EndpointChange>> {
    let column = match apps {
        AppsOf::Id => "id",
        AppsOf::Account => "account_id",
    };
    if backend == Backend::Postgres {
        sqlx::query(&format!(
            "SELECT id FROM applications WHERE {column} = $1 FOR UPDATE"
        ))
        .bind(value)
        .fetch_all(&mut *conn)
        .await?;
    }
    let rows = sqlx::query(&format!(
        "UPDATE endpoints SET application_id = NULL, updated_at = $1 WHERE application_id IN \
         (SELECT id FROM applications WHERE {column} = $2) RETURNING id, username"
    ))
    .bind(now_ms())
    .bind(value)
    .fetch_all(&mut *conn)
    .await?;
    endpoint_changes(&rows, EndpointChangeKind::Updated)
}

/// Which per-account default flag (at most one app of an account holds each).
#[derive(Clone, Copy)]
enum DefaultFlag {
    Endpoint,
    Number,
}

impl DefaultFlag {
    fn column(self) -> &'static str {
        match self {
            DefaultFlag::Endpoint => "default_endpoint_app",
            DefaultFlag::Number => "default_number_app",
        }
    }
}

fn application_from_row(row: &AnyRow) -> Result<Application> {
    let account_auth_id: String = get(row, "account_auth_id")?;
    let owner_is_sub_account = get::<Option<i64>>(row, "account_parent_id")?.is_some();
    Ok(Application {
        id: get(row, "id")?,
        app_id: get(row, "app_id")?,
        account_id: get(row, "account_id")?,
        sub_account: owner_is_sub_account.then(|| account_auth_id.clone()),
        account_auth_id,
        app_name: get(row, "app_name")?,
        answer_url: get(row, "answer_url")?,
        answer_method: get(row, "answer_method")?,
        hangup_url: get(row, "hangup_url")?,
        hangup_method: get(row, "hangup_method")?,
        fallback_answer_url: get(row, "fallback_answer_url")?,
        fallback_method: get(row, "fallback_method")?,
        message_url: get(row, "message_url")?,
        message_method: get(row, "message_method")?,
        default_number_app: get_bool(row, "default_number_app")?,
        default_endpoint_app: get_bool(row, "default_endpoint_app")?,
        application_type: get(row, "application_type")?,
        default_app: get_bool(row, "default_app")?,
        enabled: get_bool(row, "enabled")?,
        log_incoming_message: get_bool(row, "log_incoming_message")?,
        public_uri: get_bool(row, "public_uri")?,
        sip_transfer_url: get(row, "sip_transfer_url")?,
        sip_transfer_method: get(row, "sip_transfer_method")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

async fn fetch_application(conn: &mut AnyConnection, id: i64) -> Result<Application> {
    let mut sql = Sql::new(APPLICATION_SELECT);
    sql.push(" WHERE ap.id = ").bind(id)?;
    application_from_row(&sql.fetch_one(conn).await?)
}

/// Take `flag` off every app of `account_id`, inside a write transaction, before one of its apps
/// gets it. Touching the account row first serialises concurrent movers on PostgreSQL (SQLite
/// write transactions are serial anyway).
async fn clear_default_flag(
    conn: &mut AnyConnection,
    account_id: i64,
    flag: DefaultFlag,
    now: i64,
) -> Result<()> {
    let locked = sqlx::query("UPDATE accounts SET updated_at = updated_at WHERE id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::InvalidReference("account"));
    }
    let mut sql = Sql::new("UPDATE applications SET updated_at = ");
    sql.bind(now)?.set(flag.column(), false)?;
    sql.push(" WHERE account_id = ").bind(account_id)?;
    sql.push(" AND ")
        .push(flag.column())
        .push(" = ")
        .bind(true)?;
    sql.execute(conn).await?;
    Ok(())
}

fn push_application_filter(sql: &mut Sql, scope: Scope, filter: &ApplicationFilter) -> Result<()> {
    sql.push(" WHERE 1 = 1");
    sql.scope(scope)?;
    if let Some(account_id) = filter.account_id {
        sql.push(" AND ap.account_id = ").bind(account_id)?;
    }
    if let Some(name) = &filter.app_name_exact {
        sql.push(" AND ap.app_name = ").bind(name.clone())?;
    }
    if let Some(name) = &filter.app_name_contains {
        sql.contains("ap.app_name", name)?;
    }
    if let Some(kind) = &filter.application_type {
        sql.push(" AND ap.application_type = ").bind(kind.clone())?;
    }
    Ok(())
}

impl Store {
    /// Create an app owned by `new.account_id`. Setting `default_endpoint_app` (or
    /// `default_number_app`) moves that flag off the owner's other apps.
    ///
    /// Fails with `InvalidReference("account")` when the owner does not exist.
    pub async fn create_application(&self, new: NewApplication) -> Result<Application> {
        for _ in 0..ID_ATTEMPTS {
            let now = now_ms();
            let mut tx = self.begin_write().await?;
            if new.default_endpoint_app {
                clear_default_flag(&mut tx, new.account_id, DefaultFlag::Endpoint, now).await?;
            }
            if new.default_number_app {
                clear_default_flag(&mut tx, new.account_id, DefaultFlag::Number, now).await?;
            }
            let inserted = sqlx::query(
                "INSERT INTO applications (app_id, account_id, app_name, answer_url, answer_method, \
                 hangup_url, hangup_method, fallback_answer_url, fallback_method, message_url, \
                 message_method, default_number_app, default_endpoint_app, application_type, \
                 default_app, enabled, log_incoming_message, public_uri, sip_transfer_url, \
                 sip_transfer_method, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $21) RETURNING id",
            )
            .bind(secrets::numeric_id(APP_ID_DIGITS))
            .bind(new.account_id)
            .bind(&new.app_name)
            .bind(&new.answer_url)
            .bind(&new.answer_method)
            .bind(new.hangup_url.as_deref())
            .bind(&new.hangup_method)
            .bind(new.fallback_answer_url.as_deref())
            .bind(&new.fallback_method)
            .bind(new.message_url.as_deref())
            .bind(&new.message_method)
            .bind(new.default_number_app)
            .bind(new.default_endpoint_app)
            .bind(&new.application_type)
            .bind(new.default_app)
            .bind(new.enabled)
            .bind(new.log_incoming_message)
            .bind(new.public_uri)
            .bind(new.sip_transfer_url.as_deref())
            .bind(&new.sip_transfer_method)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(row) => {
                    let app = fetch_application(&mut tx, get(&row, "id")?).await?;
                    tx.commit().await?;
                    return Ok(app);
                }
                // A generated app_id collided: roll back and draw another one.
                Err(err) if unique_violation(&err).is_some_and(|what| what.contains("app_id")) => {
                    continue
                }
                Err(err) if unique_violation(&err).is_some() => {
                    // Only the default-flag backstop indexes are left; the flag was cleared above.
                    return Err(StoreError::Conflict {
                        field: "default_app",
                    });
                }
                Err(err) if is_foreign_key_violation(&err) => {
                    return Err(StoreError::InvalidReference("account"))
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Conflict { field: "app_id" })
    }

    pub async fn get_application(&self, scope: Scope, app_id: &str) -> Result<Option<Application>> {
        let mut sql = Sql::new(APPLICATION_SELECT);
        sql.push(" WHERE ap.app_id = ").bind(app_id.to_owned())?;
        sql.scope(scope)?;
        let mut conn = self.pool.acquire().await?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(application_from_row)
            .transpose()
    }

    /// Newest first, and the total count.
    pub async fn list_applications(
        &self,
        scope: Scope,
        filter: &ApplicationFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Application>, i64)> {
        let mut count = Sql::new(
            "SELECT COUNT(*) AS total FROM applications ap JOIN accounts a ON a.id = ap.account_id",
        );
        push_application_filter(&mut count, scope, filter)?;
        let mut page = Sql::new(APPLICATION_SELECT);
        push_application_filter(&mut page, scope, filter)?;
        page.push(" ORDER BY ap.created_at DESC, ap.id DESC");
        page.page(limit, offset)?;
        let mut conn = self.pool.acquire().await?;
        let total: i64 = get(&count.fetch_one(&mut conn).await?, "total")?;
        let rows = page.fetch_all(&mut conn).await?;
        let apps = rows
            .iter()
            .map(application_from_row)
            .collect::<Result<_>>()?;
        Ok((apps, total))
    }

    pub async fn update_application(
        &self,
        scope: Scope,
        app_id: &str,
        patch: ApplicationPatch,
    ) -> Result<Option<Application>> {
        let mut find = Sql::new("SELECT ap.id, ap.account_id FROM applications ap JOIN accounts a ON a.id = ap.account_id");
        find.push(" WHERE ap.app_id = ").bind(app_id.to_owned())?;
        find.scope(scope)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let Some(found) = find.fetch_optional(&mut tx).await? else {
            return Ok(None);
        };
        let (id, account_id): (i64, i64) = (get(&found, "id")?, get(&found, "account_id")?);
        if patch.default_endpoint_app == Some(true) {
            clear_default_flag(&mut tx, account_id, DefaultFlag::Endpoint, now).await?;
        }
        if patch.default_number_app == Some(true) {
            clear_default_flag(&mut tx, account_id, DefaultFlag::Number, now).await?;
        }
        let mut sql = Sql::new("UPDATE applications SET updated_at = ");
        sql.bind(now)?;
        let texts = [
            ("app_name", patch.app_name),
            ("answer_url", patch.answer_url),
            ("answer_method", patch.answer_method),
            ("hangup_method", patch.hangup_method),
            ("fallback_method", patch.fallback_method),
            ("message_method", patch.message_method),
            ("application_type", patch.application_type),
            ("sip_transfer_method", patch.sip_transfer_method),
        ];
        for (column, value) in texts {
            if let Some(value) = value {
                sql.set(column, value)?;
            }
        }
        let nullable_texts = [
            ("hangup_url", patch.hangup_url),
            ("fallback_answer_url", patch.fallback_answer_url),
            ("message_url", patch.message_url),
            ("sip_transfer_url", patch.sip_transfer_url),
        ];
        for (column, value) in nullable_texts {
            if let Some(value) = value {
                sql.set(column, value)?;
            }
        }
        let flags = [
            ("default_number_app", patch.default_number_app),
            ("default_endpoint_app", patch.default_endpoint_app),
            ("default_app", patch.default_app),
            ("enabled", patch.enabled),
            ("log_incoming_message", patch.log_incoming_message),
            ("public_uri", patch.public_uri),
        ];
        for (column, value) in flags {
            if let Some(value) = value {
                sql.set(column, value)?;
            }
        }
        sql.push(" WHERE id = ").bind(id)?;
        sql.execute(&mut tx).await?;
        let app = fetch_application(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(app))
    }

    /// Endpoints bound to the app are left with no application; subscribers of
    /// [`Store::subscribe_endpoint_changes`] learn it for each (`Updated`). False if not found.
    pub async fn delete_application(&self, scope: Scope, app_id: &str) -> Result<bool> {
        let mut find =
            Sql::new("SELECT ap.id FROM applications ap JOIN accounts a ON a.id = ap.account_id");
        find.push(" WHERE ap.app_id = ").bind(app_id.to_owned())?;
        find.scope(scope)?;
        let mut tx = self.begin_write().await?;
        let Some(found) = find.fetch_optional(&mut tx).await? else {
            return Ok(false);
        };
        let id: i64 = get(&found, "id")?;
        let unbound = unbind_endpoints(&mut tx, self.backend, AppsOf::Id, id).await?;
        let deleted = sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        self.changes
            .notify_in_transaction(&mut tx, &unbound)
            .await?;
        tx.commit().await?;
        self.changes.publish(unbound);
        Ok(deleted > 0)
    }

    /// The app of `account_id` flagged `default_endpoint_app`, if any.
    pub async fn default_endpoint_application(
        &self,
        account_id: i64,
    ) -> Result<Option<Application>> {
        let mut sql = Sql::new(APPLICATION_SELECT);
        sql.push(" WHERE ap.account_id = ").bind(account_id)?;
        sql.push(" AND ap.default_endpoint_app = ").bind(true)?;
        let mut conn = self.pool.acquire().await?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(application_from_row)
            .transpose()
    }
}
