//! Shared SQL plumbing: a numbered-parameter query builder, error classification and row decoding.

use crate::{Scope, StoreError};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyArguments, AnyRow, AnyTypeInfoKind};
use sqlx::error::DatabaseError;
use sqlx::error::ErrorKind;
use sqlx::{Any, AnyConnection, Arguments, Encode, Row, Type, ValueRef};

/// How many fresh random ids to try before giving up on a unique collision.
pub(crate) const ID_ATTEMPTS: usize = 5;

/// A statement assembled at run time with bound values.
///
/// `sqlx::QueryBuilder<Any>` writes `?` placeholders, which PostgreSQL rejects; both backends
/// accept `$N`, so this builder numbers them itself.
pub(crate) struct Sql {
    text: String,
    args: AnyArguments<'static>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: AnyArguments::default(),
        }
    }

    /// Append SQL text (never a value: values go through [`Sql::bind`]).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Bind a value and append its placeholder.
    pub(crate) fn bind<T>(&mut self, value: T) -> Result<&mut Sql, StoreError>
    where
        T: 'static + Encode<'static, Any> + Type<Any>,
    {
        let placeholder = self.param(value)?;
        self.text.push_str(&placeholder);
        Ok(self)
    }

    /// Bind a value and return its placeholder, to reference it more than once.
    pub(crate) fn param<T>(&mut self, value: T) -> Result<String, StoreError>
    where
        T: 'static + Encode<'static, Any> + Type<Any>,
    {
        self.args
            .add(value)
            .map_err(|err| StoreError::Database(format!("cannot bind value: {err}")))?;
        Ok(format!("${}", self.args.len()))
    }

    /// `, column = $N` for an UPDATE's SET list.
    pub(crate) fn set<T>(&mut self, column: &str, value: T) -> Result<&mut Sql, StoreError>
    where
        T: 'static + Encode<'static, Any> + Type<Any>,
    {
        self.push(", ").push(column).push(" = ").bind(value)
    }

    /// ` AND <owner scope>`, where `a` is the owning account's alias in the statement.
    pub(crate) fn scope(&mut self, scope: Scope) -> Result<&mut Sql, StoreError> {
        match scope {
            Scope::Account(id) => self.push(" AND a.id = ").bind(id),
            Scope::Family(main_id) => {
                let main = self.param(main_id)?;
                Ok(self.push(&format!(" AND (a.id = {main} OR a.parent_id = {main})")))
            }
        }
    }

    /// ` AND column LIKE $N ESCAPE '\'` matching `needle` anywhere (case-sensitive on both backends).
    pub(crate) fn contains(&mut self, column: &str, needle: &str) -> Result<&mut Sql, StoreError> {
        let pattern = format!("%{}%", escape_like(needle));
        self.like(column, pattern)
    }

    /// ` AND column LIKE $N ESCAPE '\'` matching `prefix` at the start.
    pub(crate) fn starts_with(
        &mut self,
        column: &str,
        prefix: &str,
    ) -> Result<&mut Sql, StoreError> {
        let pattern = format!("{}%", escape_like(prefix));
        self.like(column, pattern)
    }

    fn like(&mut self, column: &str, pattern: String) -> Result<&mut Sql, StoreError> {
        self.push(" AND ")
            .push(column)
            .push(" LIKE ")
            .bind(pattern)?;
        Ok(self.push(" ESCAPE '\\'"))
    }

    /// ` LIMIT $N OFFSET $M`; negative values count as 0 (SQLite would read a negative limit
    /// as "no limit", PostgreSQL would fail).
    pub(crate) fn page(&mut self, limit: i64, offset: i64) -> Result<&mut Sql, StoreError> {
        self.push(" LIMIT ").bind(limit.max(0))?;
        self.push(" OFFSET ").bind(offset.max(0))
    }

    pub(crate) async fn fetch_all(self, conn: &mut AnyConnection) -> sqlx::Result<Vec<AnyRow>> {
        sqlx::query_with(&self.text, self.args)
            .fetch_all(conn)
            .await
    }

    pub(crate) async fn fetch_optional(
        self,
        conn: &mut AnyConnection,
    ) -> sqlx::Result<Option<AnyRow>> {
        sqlx::query_with(&self.text, self.args)
            .fetch_optional(conn)
            .await
    }

    pub(crate) async fn fetch_one(self, conn: &mut AnyConnection) -> sqlx::Result<AnyRow> {
        sqlx::query_with(&self.text, self.args)
            .fetch_one(conn)
            .await
    }

    /// Runs the statement; returns the number of rows affected.
    pub(crate) async fn execute(self, conn: &mut AnyConnection) -> sqlx::Result<u64> {
        let done = sqlx::query_with(&self.text, self.args)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Make user input literal inside a LIKE pattern whose escape character is `\`.
fn escape_like(input: &str) -> String {
    let mut escaped = String::with_capacity(input.len());
    for ch in input.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        use sqlx::Error;
        match &err {
            Error::Io(_)
            | Error::Tls(_)
            | Error::Protocol(_)
            | Error::PoolTimedOut
            | Error::PoolClosed
            | Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            Error::Database(db) if database_unreachable(db.as_ref()) => {
                StoreError::Unavailable(err.to_string())
            }
            Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict { field: "value" },
                ErrorKind::ForeignKeyViolation => StoreError::InvalidReference("reference"),
                _ => StoreError::Database(err.to_string()),
            },
            _ => StoreError::Database(err.to_string()),
        }
    }
}

/// Errors that mean "the database cannot serve us now", not "this statement is wrong".
fn database_unreachable(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(err) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // Primary result codes (low byte of the extended code): BUSY, LOCKED, IOERR, CANTOPEN.
        let code: i64 = err
            .code()
            .and_then(|code| code.parse().ok())
            .unwrap_or_default();
        return matches!(code & 0xff, 5 | 6 | 10 | 14);
    }
    if let Some(err) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = err.code();
        // Connection exceptions, bad credentials or database, too many connections, shutdown.
        return code.starts_with("08")
            || code.starts_with("28")
            || code.starts_with("3D")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03");
    }
    false
}

/// For a unique violation: the violated constraint's name (PostgreSQL) or the message, which
/// names the columns (SQLite). Constraint names in the migrations contain the column names.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => Some(
            db.constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned()),
        ),
        _ => None,
    }
}

pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + Type<Any>,
{
    row.try_get(column)
        .map_err(|err| StoreError::Database(format!("column {column}: {err}")))
}

/// Booleans are BOOLEAN on PostgreSQL but 0/1 integers on SQLite (the Any driver decodes
/// neither as the other).
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    let raw = row
        .try_get_raw(column)
        .map_err(|err| StoreError::Database(format!("column {column}: {err}")))?;
    if raw.type_info().kind() == AnyTypeInfoKind::Bool {
        get(row, column)
    } else {
        Ok(get::<i64>(row, column)? != 0)
    }
}

pub(crate) fn get_time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    time_from_ms(get(row, column)?)
}

pub(crate) fn get_opt_time(
    row: &AnyRow,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    get::<Option<i64>>(row, column)?
        .map(time_from_ms)
        .transpose()
}

fn time_from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Database(format!("timestamp out of range: {ms}")))
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_and_escape_are_literal() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
        assert_eq!(escape_like("plain"), "plain");
    }
}
