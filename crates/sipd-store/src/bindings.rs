//! Registration bindings, shared by every sipd node through the database.

use crate::sql::{get, is_foreign_key_violation};
use crate::{Backend, Binding, Result, Store, StoreError};
use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// One change to the registrations table, as the registrar decides it.
// Nearly all changes are upserts: boxing the binding would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BindingChange {
    /// Insert the binding, or replace the one with the same key ([`Binding::key`]).
    Upsert(Binding),
    /// `Upsert`, but only if the endpoint's credentials are still those the REGISTER was
    /// authenticated with (`Credentials::credentials_changed_at` in Unix milliseconds);
    /// otherwise the request fails with `InvalidReference("credentials")` and the registrar
    /// challenges again. This closes the race with a concurrent password change: a REGISTER
    /// authenticated with the old password never leaves a binding behind.
    UpsertAuthenticated {
        binding: Binding,
        credentials_changed_at_ms: i64,
    },
    /// Remove one binding (a `Contact: …;expires=0`, or an RFC 5626 flow replaced by a new
    /// contact: the registrar sends `Delete` of the old contact, then `Upsert` of the new),
    /// named by its key ([`Binding::key`]); see [`BindingChange::delete`].
    Delete {
        endpoint_pk: i64,
        contact_uri: String,
        /// `None` names the binding without a reg-id, not every reg-id of the contact.
        reg_id: Option<i64>,
    },
    /// Remove every binding of the endpoint (`Contact: *` with `Expires: 0`).
    DeleteAllForEndpoint { endpoint_pk: i64 },
}

impl BindingChange {
    /// Remove `binding`'s row (the one with its key).
    pub fn delete(binding: Binding) -> BindingChange {
        BindingChange::Delete {
            endpoint_pk: binding.endpoint_pk,
            contact_uri: binding.contact_uri,
            reg_id: binding.reg_id,
        }
    }

    /// The endpoint whose bindings this changes.
    pub fn endpoint_pk(&self) -> i64 {
        match self {
            BindingChange::Upsert(binding) | BindingChange::UpsertAuthenticated { binding, .. } => {
                binding.endpoint_pk
            }
            BindingChange::Delete { endpoint_pk, .. }
            | BindingChange::DeleteAllForEndpoint { endpoint_pk } => *endpoint_pk,
        }
    }
}

const BINDING_COLUMNS: &str = "endpoint_pk, contact_uri, expires_at, q, call_id, cseq, \
     user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at";
const BINDING_COLUMN_COUNT: usize = 15;

/// The reg-id part of a binding's key, exactly as the unique index
/// `registrations_endpoint_contact_reg_id_key` of the migrations computes it (ON CONFLICT must
/// name the same expression): a missing reg-id is [`NO_REG_ID`], a value of its own.
const REG_ID_KEY: &str = "COALESCE(reg_id, -1)";

/// What [`REG_ID_KEY`] makes of a missing reg-id; reg-ids are never negative (RFC 5626: 1 to
/// 2^31 - 1; the registrar stores a `u32`).
const NO_REG_ID: i64 = -1;

/// A binding's key, as the store identifies its row.
type Key<'a> = (i64, &'a str, Option<i64>);

/// Rows per multi-row statement is a power of two up to this (at most 15 × 512 = 7,680 bound
/// values, far below PostgreSQL's 65,535 and SQLite's 32,766), so each connection prepares at
/// most ten shapes of each statement and reuses them from its statement cache.
const MAX_ROWS_LOG2: u32 = 9;

/// The net effect of a list of changes, applied in order: whole endpoints cleared first, then
/// each key's last word. Sorted, so concurrent transactions lock rows in the same order.
#[derive(Default)]
struct BindingPlan<'a> {
    clear_endpoints: BTreeSet<i64>,
    /// `None`: delete the binding.
    last_word: BTreeMap<Key<'a>, Option<&'a Binding>>,
    /// (endpoint, required `credentials_changed_at`) of every authenticated upsert, even one
    /// a later change overrides: the whole list fails if any of them is stale.
    credential_checks: BTreeSet<(i64, i64)>,
}

impl<'a> BindingPlan<'a> {
    fn new(changes: &'a [BindingChange]) -> BindingPlan<'a> {
        let mut plan = BindingPlan::default();
        for change in changes {
            match change {
                BindingChange::Upsert(binding) => plan.upsert(binding, None),
                BindingChange::UpsertAuthenticated {
                    binding,
                    credentials_changed_at_ms,
                } => plan.upsert(binding, Some(*credentials_changed_at_ms)),
                BindingChange::Delete {
                    endpoint_pk,
                    contact_uri,
                    reg_id,
                } => {
                    let key = (*endpoint_pk, contact_uri.as_str(), *reg_id);
                    if plan.clear_endpoints.contains(endpoint_pk) {
                        // The row is gone with the whole endpoint already.
                        plan.last_word.remove(&key);
                    } else {
                        plan.last_word.insert(key, None);
                    }
                }
                BindingChange::DeleteAllForEndpoint { endpoint_pk } => {
                    plan.clear_endpoints.insert(*endpoint_pk);
                    // (pk, "", None) sorts before every key of the endpoint.
                    let earlier: Vec<Key<'_>> = plan
                        .last_word
                        .range((*endpoint_pk, "", None)..)
                        .map(|(key, _)| *key)
                        .take_while(|(pk, _, _)| pk == endpoint_pk)
                        .collect();
                    for key in earlier {
                        plan.last_word.remove(&key);
                    }
                }
            }
        }
        plan
    }

    fn upsert(&mut self, binding: &'a Binding, credentials_changed_at_ms: Option<i64>) {
        if let Some(required) = credentials_changed_at_ms {
            self.credential_checks
                .insert((binding.endpoint_pk, required));
        }
        self.last_word.insert(binding.key(), Some(binding));
    }
}

/// Split `items` into chunks whose lengths are powers of two (largest first).
fn power_of_two_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let largest = 1usize << MAX_ROWS_LOG2;
        let len = if items.len() >= largest {
            largest
        } else {
            1usize << items.len().ilog2()
        };
        let (chunk, rest) = items.split_at(len);
        items = rest;
        Some(chunk)
    })
}

/// Statement texts for 1, 2, 4, … 512 rows, built once per backend.
struct BindingStatements {
    upsert: Vec<String>,
    delete: Vec<String>,
    clear: Vec<String>,
    credentials: Vec<String>,
}

fn statements(backend: Backend) -> &'static BindingStatements {
    static POSTGRES: OnceLock<BindingStatements> = OnceLock::new();
    static SQLITE: OnceLock<BindingStatements> = OnceLock::new();
    let cell = match backend {
        Backend::Postgres => &POSTGRES,
        Backend::Sqlite => &SQLITE,
    };
    cell.get_or_init(|| {
        let sizes = || (0..=MAX_ROWS_LOG2).map(|log2| 1usize << log2);
        let mut placeholders = Placeholders::new(backend);
        BindingStatements {
            upsert: sizes()
                .map(|rows| upsert_statement(&mut placeholders, rows))
                .collect(),
            delete: sizes()
                .map(|rows| delete_statement(&mut placeholders, rows))
                .collect(),
            clear: sizes()
                .map(|rows| clear_statement(&mut placeholders, rows))
                .collect(),
            credentials: sizes()
                .map(|rows| credentials_statement(&mut placeholders, rows))
                .collect(),
        }
    })
}

/// Numbered `$N` placeholders on PostgreSQL; anonymous `?` on SQLite, whose named-parameter
/// lookup (sqlx binds through `sqlite3_bind_parameter_name`) is linear in the parameter count
/// and made 512-row statements quadratic. Every statement here uses each value once, in order.
struct Placeholders {
    backend: Backend,
    next: usize,
}

impl Placeholders {
    fn new(backend: Backend) -> Placeholders {
        Placeholders { backend, next: 0 }
    }

    /// Start a new statement.
    fn reset(&mut self) -> &mut Placeholders {
        self.next = 0;
        self
    }

    fn next(&mut self) -> String {
        self.next += 1;
        match self.backend {
            Backend::Postgres => format!("${}", self.next),
            Backend::Sqlite => "?".to_owned(),
        }
    }
}

fn statement_for(texts: &[String], rows: usize) -> &str {
    texts
        .get(rows.ilog2() as usize)
        .map(String::as_str)
        .unwrap_or_default()
}

fn upsert_statement(placeholders: &mut Placeholders, rows: usize) -> String {
    placeholders.reset();
    let values: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..BINDING_COLUMN_COUNT)
                .map(|_| placeholders.next())
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO registrations ({BINDING_COLUMNS}) VALUES {}{}",
        values.join(", "),
        upsert_conflict()
    )
}

fn upsert_conflict() -> String {
    format!(" ON CONFLICT (endpoint_pk, contact_uri, {REG_ID_KEY}) DO UPDATE SET {UPSERT_SET}")
}

/// Every column but the key's (on a conflict those are equal already).
const UPSERT_SET: &str = "expires_at = excluded.expires_at, q = excluded.q, \
     call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent, \
     received = excluded.received, transport = excluded.transport, flow_id = excluded.flow_id, \
     instance_id = excluded.instance_id, path = excluded.path, node_id = excluded.node_id, \
     updated_at = excluded.updated_at";

fn delete_statement(placeholders: &mut Placeholders, rows: usize) -> String {
    placeholders.reset();
    let keys: Vec<String> = (0..rows)
        .map(|_| {
            let endpoint_pk = placeholders.next();
            let contact_uri = placeholders.next();
            let reg_id = placeholders.next();
            // The index's own expression, so the lookup uses the unique index.
            format!(
                "(endpoint_pk = {endpoint_pk} AND contact_uri = {contact_uri} \
                 AND {REG_ID_KEY} = {reg_id})"
            )
        })
        .collect();
    format!("DELETE FROM registrations WHERE {}", keys.join(" OR "))
}

fn clear_statement(placeholders: &mut Placeholders, rows: usize) -> String {
    format!(
        "DELETE FROM registrations WHERE endpoint_pk IN ({})",
        placeholder_list(placeholders, rows)
    )
}

fn credentials_statement(placeholders: &mut Placeholders, rows: usize) -> String {
    format!(
        "SELECT id, credentials_changed_at FROM endpoints WHERE id IN ({})",
        placeholder_list(placeholders, rows)
    )
}

/// `$1, $2, …` (or `?, ?, …`) for a new statement.
fn placeholder_list(placeholders: &mut Placeholders, count: usize) -> String {
    placeholders.reset();
    let list: Vec<String> = (0..count).map(|_| placeholders.next()).collect();
    list.join(", ")
}

/// Fail unless every endpoint in `checks` exists and has the required `credentials_changed_at`.
async fn check_credentials(
    conn: &mut AnyConnection,
    backend: Backend,
    checks: &BTreeSet<(i64, i64)>,
) -> Result<()> {
    if backend == Backend::Postgres {
        // Taken first, so a password change (which takes SHARE ROW EXCLUSIVE on this table
        // before it changes the endpoint) either waits for this transaction and then deletes
        // its bindings, or commits before the check below reads its new stamp. On SQLite
        // write transactions are serial already.
        sqlx::query("LOCK TABLE registrations IN ROW EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
    }
    let endpoints: Vec<i64> = checks
        .iter()
        .map(|(endpoint_pk, _)| *endpoint_pk)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let texts = statements(backend);
    let mut stamps = BTreeMap::new();
    for chunk in power_of_two_chunks(&endpoints) {
        let mut query = sqlx::query(statement_for(&texts.credentials, chunk.len()));
        for endpoint_pk in chunk {
            query = query.bind(*endpoint_pk);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let endpoint_pk: i64 = get(&row, "id")?;
            let stamp: i64 = get(&row, "credentials_changed_at")?;
            stamps.insert(endpoint_pk, stamp);
        }
    }
    for (endpoint_pk, required) in checks {
        match stamps.get(endpoint_pk) {
            None => return Err(StoreError::InvalidReference("endpoint")),
            Some(stamp) if stamp != required => {
                return Err(StoreError::InvalidReference("credentials"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Apply `plan` on `conn` (inside the caller's transaction).
async fn apply_plan(
    conn: &mut AnyConnection,
    backend: Backend,
    plan: &BindingPlan<'_>,
) -> Result<()> {
    let texts = statements(backend);
    let clear: Vec<i64> = plan.clear_endpoints.iter().copied().collect();
    for chunk in power_of_two_chunks(&clear) {
        let mut query = sqlx::query(statement_for(&texts.clear, chunk.len()));
        for endpoint_pk in chunk {
            query = query.bind(*endpoint_pk);
        }
        query.execute(&mut *conn).await?;
    }
    let deletes: Vec<Key<'_>> = plan
        .last_word
        .iter()
        .filter(|(_, binding)| binding.is_none())
        .map(|(key, _)| *key)
        .collect();
    for chunk in power_of_two_chunks(&deletes) {
        let mut query = sqlx::query(statement_for(&texts.delete, chunk.len()));
        for (endpoint_pk, contact_uri, reg_id) in chunk {
            query = query
                .bind(*endpoint_pk)
                .bind(*contact_uri)
                .bind(reg_id.unwrap_or(NO_REG_ID));
        }
        query.execute(&mut *conn).await?;
    }
    if !plan.credential_checks.is_empty() {
        check_credentials(conn, backend, &plan.credential_checks).await?;
    }
    let upserts: Vec<&Binding> = plan.last_word.values().flatten().copied().collect();
    for chunk in power_of_two_chunks(&upserts) {
        let mut query = sqlx::query(statement_for(&texts.upsert, chunk.len()));
        for binding in chunk {
            query = query
                .bind(binding.endpoint_pk)
                .bind(binding.contact_uri.as_str())
                .bind(binding.expires_at_ms)
                .bind(binding.q)
                .bind(binding.call_id.as_str())
                .bind(binding.cseq)
                .bind(binding.user_agent.as_deref())
                .bind(binding.received.as_str())
                .bind(binding.transport.as_str())
                .bind(binding.flow_id.as_deref())
                .bind(binding.instance_id.as_deref())
                .bind(binding.reg_id)
                .bind(binding.path.as_deref())
                .bind(binding.node_id.as_str())
                .bind(binding.updated_at_ms);
        }
        match query.execute(&mut *conn).await {
            Ok(_) => {}
            Err(err) if is_foreign_key_violation(&err) => {
                return Err(StoreError::InvalidReference("endpoint"))
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Rows a purge deletes per statement, so it never holds the write lock for long.
const PURGE_BATCH: i64 = 5_000;

const SELECT_BINDINGS: &str = "SELECT endpoint_pk, contact_uri, expires_at, q, call_id, cseq, \
     user_agent, received, transport, flow_id, instance_id, reg_id, path, node_id, updated_at \
     FROM registrations";

fn binding_from_row(row: &AnyRow) -> Result<Binding> {
    Ok(Binding {
        endpoint_pk: get(row, "endpoint_pk")?,
        contact_uri: get(row, "contact_uri")?,
        expires_at_ms: get(row, "expires_at")?,
        q: get(row, "q")?,
        call_id: get(row, "call_id")?,
        cseq: get(row, "cseq")?,
        user_agent: get(row, "user_agent")?,
        received: get(row, "received")?,
        transport: get(row, "transport")?,
        flow_id: get(row, "flow_id")?,
        instance_id: get(row, "instance_id")?,
        reg_id: get(row, "reg_id")?,
        path: get(row, "path")?,
        node_id: get(row, "node_id")?,
        updated_at_ms: get(row, "updated_at")?,
    })
}

impl Store {
    /// Insert the binding, or replace the one with the same key ([`Binding::key`]).
    ///
    /// Fails with `InvalidReference("endpoint")` when the endpoint does not exist (e.g. it was
    /// deleted while the REGISTER was being processed).
    pub async fn upsert_binding(&self, binding: &Binding) -> Result<()> {
        self.apply_binding_changes(&[BindingChange::Upsert(binding.clone())])
            .await
    }

    /// Delete the binding with this key ([`Binding::key`]; `reg_id: None` is the binding
    /// without a reg-id, not every reg-id of the contact).
    pub async fn delete_binding(
        &self,
        endpoint_pk: i64,
        contact_uri: &str,
        reg_id: Option<i64>,
    ) -> Result<()> {
        self.apply_binding_changes(&[BindingChange::Delete {
            endpoint_pk,
            contact_uri: contact_uri.to_owned(),
            reg_id,
        }])
        .await
    }

    /// All bindings that have not expired at `now_ms`; grouped by endpoint, newest first
    /// within each. See [`Store::for_each_live_binding`] to reload without holding them all.
    pub async fn live_bindings(&self, now_ms: i64) -> Result<Vec<Binding>> {
        let mut bindings = Vec::new();
        self.for_each_live_binding(now_ms, |binding| bindings.push(binding))
            .await?;
        Ok(bindings)
    }

    /// Hands every binding that has not expired at `now_ms` to `each` as its row streams in,
    /// grouped by endpoint, newest first within each: one query, and no more than one row in
    /// memory at a time, so reloading a million bindings leaves no million-row garbage behind.
    pub async fn for_each_live_binding(
        &self,
        now_ms: i64,
        mut each: impl FnMut(Binding),
    ) -> Result<()> {
        let text = format!(
            "{SELECT_BINDINGS} WHERE expires_at > $1 ORDER BY endpoint_pk, updated_at DESC, id DESC"
        );
        let mut rows = sqlx::query(&text).bind(now_ms).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(binding_from_row(&row)?);
        }
        Ok(())
    }

    /// The endpoint's bindings that have not expired at `now_ms`, newest first (an index
    /// lookup): for a cache miss, or the binding summary of one endpoint.
    pub async fn bindings_of_endpoint(
        &self,
        endpoint_pk: i64,
        now_ms: i64,
    ) -> Result<Vec<Binding>> {
        let text = format!(
            "{SELECT_BINDINGS} WHERE endpoint_pk = $1 AND expires_at > $2 \
             ORDER BY updated_at DESC, id DESC"
        );
        let rows = sqlx::query(&text)
            .bind(endpoint_pk)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// Apply `changes` in order, all in one transaction: whole endpoints are cleared first,
    /// then for each binding key ([`Binding::key`]) only its last change is written, with
    /// multi-row statements. For single REGISTERs prefer [`Store::binding_writer`], which
    /// shares one transaction among concurrent requests.
    ///
    /// Fails with `InvalidReference("endpoint")`, and changes nothing, when an upsert names an
    /// endpoint that does not exist (e.g. deleted while its REGISTER was being processed).
    pub async fn apply_binding_changes(&self, changes: &[BindingChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let plan = BindingPlan::new(changes);
        let mut tx = self.begin_write().await?;
        apply_plan(&mut tx, self.backend, &plan).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete the bindings that expired at `now_ms` (`expires_at <= now_ms`), a few thousand
    /// rows per statement so registrar writes are not held up. Returns how many were deleted.
    ///
    /// A binding refreshed concurrently (its `expires_at` moved past `now_ms`) is kept.
    pub async fn purge_expired_bindings(&self, now_ms: i64) -> Result<u64> {
        let mut purged = 0;
        loop {
            // The outer `expires_at` check is re-evaluated on rows changed since the subquery
            // picked them (PostgreSQL), so a concurrent refresh wins.
            let deleted = sqlx::query(
                "DELETE FROM registrations WHERE expires_at <= $1 AND id IN \
                 (SELECT id FROM registrations WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(now_ms)
            .bind(PURGE_BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            purged += deleted;
            if deleted < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}
