//! SIP endpoints (digest credentials + the registration state the API reports).

use crate::sql::{
    get, get_bool, get_time, is_foreign_key_violation, now_ms, unique_violation, Sql, ID_ATTEMPTS,
};
use crate::{
    secrets, ApplicationRef, Backend, Credentials, Endpoint, EndpointChange, EndpointChangeKind,
    EndpointFilter, EndpointPatch, NewEndpoint, RegistrationSummary, Result, Scope, Store,
    StoreError,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// Public endpoint ids are 15-digit numeric strings.
const ENDPOINT_ID_DIGITS: usize = 15;

/// Owner account `a`, bound app `ap` and its owner `apa`.
const ENDPOINT_FROM: &str = " FROM endpoints e JOIN accounts a ON a.id = e.account_id \
     LEFT JOIN applications ap ON ap.id = e.application_id \
     LEFT JOIN accounts apa ON apa.id = ap.account_id";

const ENDPOINT_COLUMNS: &str = "SELECT e.id, e.endpoint_id, e.account_id, \
     a.auth_id AS account_auth_id, a.parent_id AS account_parent_id, e.username, e.alias, \
     ap.app_id AS app_app_id, ap.app_name AS app_app_name, apa.auth_id AS app_account_auth_id, \
     e.allow_voice, e.allow_message, e.allow_video, e.allow_same_domain, e.allow_other_domains, \
     e.allow_phones, e.allow_apps, e.credentials_changed_at, e.created_at, e.updated_at, \
     r.contact_uri AS reg_contact, r.expires_at AS reg_expires_at, r.user_agent AS reg_user_agent, \
     r.received AS reg_received, r.path AS reg_path";

/// Start of an endpoint SELECT: joins the newest binding that is live at `now_ms` (`r`, or NULLs).
fn endpoint_select(now_ms: i64) -> Result<Sql> {
    let mut sql = Sql::new(ENDPOINT_COLUMNS);
    sql.push(ENDPOINT_FROM);
    sql.push(
        " LEFT JOIN registrations r ON r.id = (SELECT r2.id FROM registrations r2 \
         WHERE r2.endpoint_pk = e.id AND r2.expires_at > ",
    )
    .bind(now_ms)?;
    sql.push(" ORDER BY r2.updated_at DESC, r2.id DESC LIMIT 1)");
    Ok(sql)
}

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint> {
    let account_auth_id: String = get(row, "account_auth_id")?;
    let owner_is_sub_account = get::<Option<i64>>(row, "account_parent_id")?.is_some();
    let application = match get::<Option<String>>(row, "app_app_id")? {
        Some(app_id) => Some(ApplicationRef {
            app_id,
            app_name: get(row, "app_app_name")?,
            account_auth_id: get(row, "app_account_auth_id")?,
        }),
        None => None,
    };
    let registration = match get::<Option<String>>(row, "reg_contact")? {
        Some(contact) => Some(RegistrationSummary {
            contact,
            expires_at: get_time(row, "reg_expires_at")?,
            user_agent: get(row, "reg_user_agent")?,
            received: get(row, "reg_received")?,
            path: get(row, "reg_path")?,
        }),
        None => None,
    };
    Ok(Endpoint {
        id: get(row, "id")?,
        endpoint_id: get(row, "endpoint_id")?,
        account_id: get(row, "account_id")?,
        sub_account: owner_is_sub_account.then(|| account_auth_id.clone()),
        account_auth_id,
        username: get(row, "username")?,
        alias: get(row, "alias")?,
        application,
        allow_voice: get_bool(row, "allow_voice")?,
        allow_message: get_bool(row, "allow_message")?,
        allow_video: get_bool(row, "allow_video")?,
        allow_same_domain: get_bool(row, "allow_same_domain")?,
        allow_other_domains: get_bool(row, "allow_other_domains")?,
        allow_phones: get_bool(row, "allow_phones")?,
        allow_apps: get_bool(row, "allow_apps")?,
        credentials_changed_at: get_time(row, "credentials_changed_at")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        registration,
    })
}

async fn fetch_endpoint(conn: &mut AnyConnection, id: i64) -> Result<Endpoint> {
    let mut sql = endpoint_select(now_ms())?;
    sql.push(" WHERE e.id = ").bind(id)?;
    endpoint_from_row(&sql.fetch_one(conn).await?)
}

fn push_endpoint_filter(sql: &mut Sql, scope: Scope, filter: &EndpointFilter) -> Result<()> {
    sql.push(" WHERE 1 = 1");
    sql.scope(scope)?;
    if let Some(account_id) = filter.account_id {
        sql.push(" AND e.account_id = ").bind(account_id)?;
    }
    if let Some(username) = &filter.username_exact {
        sql.push(" AND e.username = ").bind(username.clone())?;
    }
    if let Some(username) = &filter.username_contains {
        sql.contains("e.username", username)?;
    }
    if let Some(prefix) = &filter.username_startswith {
        sql.starts_with("e.username", prefix)?;
    }
    if let Some(alias) = &filter.alias_exact {
        sql.push(" AND e.alias = ").bind(alias.clone())?;
    }
    if let Some(alias) = &filter.alias_contains {
        sql.contains("e.alias", alias)?;
    }
    if let Some(app_id) = &filter.application_id_exact {
        sql.push(" AND ap.app_id = ").bind(app_id.clone())?;
    }
    match filter.application_id_isnull {
        Some(true) => sql.push(" AND e.application_id IS NULL"),
        Some(false) => sql.push(" AND e.application_id IS NOT NULL"),
        None => sql,
    };
    Ok(())
}

/// The internal id and username of `endpoint_id`, if it is visible in `scope`.
async fn find_in_scope(
    conn: &mut AnyConnection,
    scope: Scope,
    endpoint_id: &str,
) -> Result<Option<(i64, String)>> {
    let mut sql =
        Sql::new("SELECT e.id, e.username FROM endpoints e JOIN accounts a ON a.id = e.account_id");
    sql.push(" WHERE e.endpoint_id = ")
        .bind(endpoint_id.to_owned())?;
    sql.scope(scope)?;
    sql.fetch_optional(conn)
        .await?
        .map(|row| Ok((get(&row, "id")?, get(&row, "username")?)))
        .transpose()
}

/// Events for endpoint rows `RETURNING id, username`.
pub(crate) fn endpoint_changes(
    rows: &[AnyRow],
    kind: EndpointChangeKind,
) -> Result<Vec<EndpointChange>> {
    rows.iter()
        .map(|row| {
            Ok(EndpointChange {
                endpoint_pk: get(row, "id")?,
                username: get(row, "username")?,
                kind,
            })
        })
        .collect()
}

impl Store {
    /// Fails with `Conflict { field: "username" }` when the username is taken by any account,
    /// `InvalidReference("application")` when the app does not exist, and
    /// `InvalidReference("account")` when the owner does not exist.
    pub async fn create_endpoint(&self, new: NewEndpoint) -> Result<Endpoint> {
        let (ha1_md5, ha1_sha256) = secrets::ha1(&new.username, &self.realm, &new.password);
        let mut conn = self.pool.acquire().await?;
        for _ in 0..ID_ATTEMPTS {
            let now = now_ms();
            let inserted = sqlx::query(
                "INSERT INTO endpoints (endpoint_id, account_id, username, alias, application_id, \
                 ha1_md5, ha1_sha256, allow_voice, allow_message, allow_video, allow_same_domain, \
                 allow_other_domains, allow_phones, allow_apps, credentials_changed_at, created_at, \
                 updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $15) \
                 RETURNING id",
            )
            .bind(secrets::numeric_id(ENDPOINT_ID_DIGITS))
            .bind(new.account_id)
            .bind(&new.username)
            .bind(&new.alias)
            .bind(new.application_id)
            .bind(&ha1_md5)
            .bind(&ha1_sha256)
            .bind(new.allow_voice)
            .bind(new.allow_message)
            .bind(new.allow_video)
            .bind(new.allow_same_domain)
            .bind(new.allow_other_domains)
            .bind(new.allow_phones)
            .bind(new.allow_apps)
            .bind(now)
            .fetch_one(&mut *conn)
            .await;
            match inserted {
                Ok(row) => return fetch_endpoint(&mut conn, get(&row, "id")?).await,
                Err(err) => match unique_violation(&err) {
                    Some(what) if what.contains("username") => {
                        return Err(StoreError::Conflict { field: "username" })
                    }
                    // A generated endpoint_id collided: draw another one.
                    Some(_) => continue,
                    None if is_foreign_key_violation(&err) => {
                        return Err(self
                            .missing_reference(&mut conn, new.application_id)
                            .await?)
                    }
                    None => return Err(err.into()),
                },
            }
        }
        Err(StoreError::Conflict {
            field: "endpoint_id",
        })
    }

    /// Which reference made an endpoint insert fail (SQLite does not say which foreign key).
    async fn missing_reference(
        &self,
        conn: &mut AnyConnection,
        application_id: Option<i64>,
    ) -> Result<StoreError> {
        if let Some(application_id) = application_id {
            let app = sqlx::query("SELECT id FROM applications WHERE id = $1")
                .bind(application_id)
                .fetch_optional(&mut *conn)
                .await?;
            if app.is_none() {
                return Ok(StoreError::InvalidReference("application"));
            }
        }
        Ok(StoreError::InvalidReference("account"))
    }

    pub async fn get_endpoint(&self, scope: Scope, endpoint_id: &str) -> Result<Option<Endpoint>> {
        let mut sql = endpoint_select(now_ms())?;
        sql.push(" WHERE e.endpoint_id = ")
            .bind(endpoint_id.to_owned())?;
        sql.scope(scope)?;
        let mut conn = self.pool.acquire().await?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    /// Newest first (`created_at DESC, id DESC`), and the total count.
    ///
    /// `*_contains` / `*_startswith` match case-sensitively on both backends, with `%`, `_` and
    /// `\` taken literally.
    pub async fn list_endpoints(
        &self,
        scope: Scope,
        filter: &EndpointFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Endpoint>, i64)> {
        let mut count = Sql::new("SELECT COUNT(*) AS total");
        count.push(ENDPOINT_FROM);
        push_endpoint_filter(&mut count, scope, filter)?;
        let mut page = endpoint_select(now_ms())?;
        push_endpoint_filter(&mut page, scope, filter)?;
        page.push(" ORDER BY e.created_at DESC, e.id DESC");
        page.page(limit, offset)?;
        let mut conn = self.pool.acquire().await?;
        let total: i64 = get(&count.fetch_one(&mut conn).await?, "total")?;
        let rows = page.fetch_all(&mut conn).await?;
        let endpoints = rows.iter().map(endpoint_from_row).collect::<Result<_>>()?;
        Ok((endpoints, total))
    }

    /// Partial update. A password change recomputes the HA1 values, stamps
    /// `credentials_changed_at` and deletes the endpoint's registrations in the same transaction.
    /// Subscribers of [`Store::subscribe_endpoint_changes`] on every node learn it
    /// (`CredentialsChanged`, or `Updated` without a password change).
    ///
    /// Fails with `InvalidReference("application")` when the new app does not exist.
    pub async fn update_endpoint(
        &self,
        scope: Scope,
        endpoint_id: &str,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if patch.password.is_some() && self.backend == Backend::Postgres {
            // Waits for binding transactions in flight, whose rows the DELETE below must see,
            // and makes those that check credentials (`UpsertAuthenticated`) wait for this one.
            // First, before any row lock, so the two never wait on each other.
            sqlx::query("LOCK TABLE registrations IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let Some((id, username)) = find_in_scope(&mut tx, scope, endpoint_id).await? else {
            return Ok(None);
        };
        let mut sql = Sql::new("UPDATE endpoints SET updated_at = ");
        sql.bind(now)?;
        if let Some(alias) = patch.alias {
            sql.set("alias", alias)?;
        }
        if let Some(application_id) = patch.application_id {
            sql.set("application_id", application_id)?;
        }
        let flags = [
            ("allow_voice", patch.allow_voice),
            ("allow_message", patch.allow_message),
            ("allow_video", patch.allow_video),
        ];
        for (column, value) in flags {
            if let Some(value) = value {
                sql.set(column, value)?;
            }
        }
        if let Some(password) = &patch.password {
            let (ha1_md5, ha1_sha256) = secrets::ha1(&username, &self.realm, password);
            sql.set("ha1_md5", ha1_md5)?
                .set("ha1_sha256", ha1_sha256)?
                .set("credentials_changed_at", now)?;
        }
        sql.push(" WHERE id = ").bind(id)?;
        match sql.execute(&mut tx).await {
            Ok(_) => {}
            Err(err) if is_foreign_key_violation(&err) => {
                return Err(StoreError::InvalidReference("application"))
            }
            Err(err) => return Err(err.into()),
        }
        if patch.password.is_some() {
            // Devices registered with the old secret must register again.
            sqlx::query("DELETE FROM registrations WHERE endpoint_pk = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let endpoint = fetch_endpoint(&mut tx, id).await?;
        let kind = if patch.password.is_some() {
            EndpointChangeKind::CredentialsChanged
        } else {
            EndpointChangeKind::Updated
        };
        let changes = vec![EndpointChange {
            endpoint_pk: id,
            username,
            kind,
        }];
        self.changes
            .notify_in_transaction(&mut tx, &changes)
            .await?;
        tx.commit().await?;
        self.changes.publish(changes);
        Ok(Some(endpoint))
    }

    /// Deletes the endpoint and its registrations; subscribers of
    /// [`Store::subscribe_endpoint_changes`] on every node learn it. False if not found.
    pub async fn delete_endpoint(&self, scope: Scope, endpoint_id: &str) -> Result<bool> {
        let mut sql = Sql::new(
            "DELETE FROM endpoints WHERE id IN (SELECT e.id FROM endpoints e \
             JOIN accounts a ON a.id = e.account_id WHERE e.endpoint_id = ",
        );
        sql.bind(endpoint_id.to_owned())?;
        sql.scope(scope)?;
        sql.push(") RETURNING id, username");
        let mut tx = self.begin_write().await?;
        let rows = sql.fetch_all(&mut tx).await?;
        let changes = endpoint_changes(&rows, EndpointChangeKind::Deleted)?;
        self.changes
            .notify_in_transaction(&mut tx, &changes)
            .await?;
        tx.commit().await?;
        let deleted = !changes.is_empty();
        self.changes.publish(changes);
        Ok(deleted)
    }

    /// Digest credentials by SIP username, with the endpoint's owner, family, application and
    /// permissions: for the registrar and the proxy, which cache them until an endpoint change
    /// ([`Store::subscribe_endpoint_changes`]) says they are stale.
    pub async fn credentials_by_username(&self, username: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query(
            "SELECT e.id, e.endpoint_id, e.account_id, COALESCE(a.parent_id, a.id) AS family_id, \
             e.application_id, e.username, e.ha1_md5, e.ha1_sha256, e.credentials_changed_at, \
             e.allow_voice, e.allow_message, e.allow_video, e.allow_same_domain, \
             e.allow_other_domains, e.allow_phones, e.allow_apps \
             FROM endpoints e JOIN accounts a ON a.id = e.account_id WHERE e.username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Credentials {
                endpoint_pk: get(&row, "id")?,
                endpoint_id: get(&row, "endpoint_id")?,
                account_id: get(&row, "account_id")?,
                account_family_id: get(&row, "family_id")?,
                application_id: get(&row, "application_id")?,
                username: get(&row, "username")?,
                ha1_md5: get(&row, "ha1_md5")?,
                ha1_sha256: get(&row, "ha1_sha256")?,
                credentials_changed_at: get_time(&row, "credentials_changed_at")?,
                allow_voice: get_bool(&row, "allow_voice")?,
                allow_message: get_bool(&row, "allow_message")?,
                allow_video: get_bool(&row, "allow_video")?,
                allow_same_domain: get_bool(&row, "allow_same_domain")?,
                allow_other_domains: get_bool(&row, "allow_other_domains")?,
                allow_phones: get_bool(&row, "allow_phones")?,
                allow_apps: get_bool(&row, "allow_apps")?,
            })
        })
        .transpose()
    }
}
