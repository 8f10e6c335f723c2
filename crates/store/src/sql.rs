//! One way to run a statement on either back end, for the hub's tables.
//!
//! The indicator import keeps hand-tuned code per back end (COPY on
//! PostgreSQL, cached statements on SQLite), because it is the hot path.
//! Everything else — organisations, users, subscribers, cases, audit — is
//! ordinary row work whose SQL is the same on both: it is written once,
//! with SQLite's `?1`-style placeholders, and run through [`Backend`]'s
//! methods here. For PostgreSQL the placeholders are rewritten to `$1` and
//! the prepared statement is cached per connection.
//!
//! Values cross as [`Value`], which binds to whatever type PostgreSQL
//! inferred for the parameter (an integer to `SMALLINT`, `INTEGER`,
//! `BIGINT` or `BOOLEAN`), so the schema may use the natural type on each
//! back end. Rows come back as [`SqlRow`], whose typed getters turn a
//! column of an unexpected type into [`Error::Corrupt`] instead of a panic.

use std::collections::HashMap;

use crate::{Backend, Error};

/// A bound parameter or a fetched column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// `vals![a, b, c]` — a parameter list.
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::Value::from($v)),*][..]
    };
}
pub(crate) use vals;

/// One fetched row.
#[derive(Debug, Clone)]
pub(crate) struct SqlRow(Vec<Value>);

impl SqlRow {
    fn at(&self, i: usize) -> Result<&Value, Error> {
        self.0
            .get(i)
            .ok_or_else(|| Error::corrupt(format!("column {i}"), "missing from the result"))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, Error> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            // SQLite returns whole REALs for some aggregates.
            Value::Real(f) if f.fract() == 0.0 => Ok(Some(*f as i64)),
            other => Err(Error::corrupt(
                format!("column {i}"),
                format!("expected an integer, found {other:?}"),
            )),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, Error> {
        self.opt_int(i)?
            .ok_or_else(|| Error::corrupt(format!("column {i}"), "unexpected NULL"))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, Error> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(Error::corrupt(
                format!("column {i}"),
                format!("expected text, found {other:?}"),
            )),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, Error> {
        self.opt_text(i)?
            .ok_or_else(|| Error::corrupt(format!("column {i}"), "unexpected NULL"))
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, Error> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Blob(b) => Ok(Some(b.clone())),
            other => Err(Error::corrupt(
                format!("column {i}"),
                format!("expected bytes, found {other:?}"),
            )),
        }
    }
}

/// Rewrites `?N` placeholders to PostgreSQL's `$N`, leaving string
/// literals and quoted identifiers alone.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    out
}

/// Prepared statements of one PostgreSQL connection, by SQLite-style text.
#[derive(Default)]
pub(crate) struct PgStatements(HashMap<String, postgres::Statement>);

impl std::fmt::Debug for PgStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStatements({})", self.0.len())
    }
}

/// Most statements cached per connection; past it the cache starts over
/// (generated queries with many shapes must not grow it without bound).
const PG_STATEMENT_CACHE: usize = 256;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Value::Real(v) => v.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Result<Value, Error> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| Error::corrupt("text column", e))?
                .to_string(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, Error> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.into(),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(i64::from).into(),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(i64::from).into(),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.into(),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Value::Null, Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map_or(Value::Null, |f| Value::Real(f64::from(f))),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.into(),
        _ => row.try_get::<_, Option<String>>(i)?.into(),
    })
}

impl Backend {
    /// Runs a statement and returns the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        match self {
            Backend::Sqlite(db) => {
                let mut st = db.conn.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Backend::Postgres(db) => {
                let st = db.statement(sql)?;
                let bound: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                Ok(db.client.execute(&st, &bound)?)
            }
        }
    }

    /// Runs a query and returns every row.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, Error> {
        match self {
            Backend::Sqlite(db) => {
                let mut st = db.conn.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut values = Vec::with_capacity(n);
                    for i in 0..n {
                        values.push(sqlite_value(r.get_ref(i)?)?);
                    }
                    out.push(SqlRow(values));
                }
                Ok(out)
            }
            Backend::Postgres(db) => {
                let st = db.statement(sql)?;
                let bound: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let rows = db.client.query(&st, &bound)?;
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| pg_value(r, i)).collect())
                    .map(|v: Result<Vec<Value>, Error>| v.map(SqlRow))
                    .collect()
            }
        }
    }

    /// Runs an `INSERT` into a table whose key is `id` and returns the new
    /// id: SQLite's last rowid (no `RETURNING` row to step through), or
    /// PostgreSQL's `RETURNING id`.
    pub(crate) fn insert_id(&mut self, sql: &str, params: &[Value]) -> Result<i64, Error> {
        match self {
            Backend::Sqlite(db) => {
                let mut st = db.conn.prepare_cached(sql)?;
                st.execute(rusqlite::params_from_iter(params.iter()))?;
                Ok(db.conn.last_insert_rowid())
            }
            Backend::Postgres(_) => self
                .query_one(&format!("{sql} RETURNING id"), params)?
                .int(0),
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<SqlRow>, Error> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that must return one (`INSERT … RETURNING`,
    /// aggregates).
    pub(crate) fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<SqlRow, Error> {
        self.query_opt(sql, params)?
            .ok_or_else(|| Error::corrupt("query result", "no row returned"))
    }
}

impl crate::pg::Db {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, Error> {
        if let Some(st) = self.statements.0.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(&to_postgres(sql))?;
        if self.statements.0.len() >= PG_STATEMENT_CACHE {
            self.statements.0.clear();
        }
        self.statements.0.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND \"d?3\" = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND \"d?3\" = $12"
        );
        assert_eq!(to_postgres("SELECT '?'"), "SELECT '?'");
    }

    #[test]
    fn getters_refuse_the_wrong_type_without_panicking() {
        let row = SqlRow(vec![Value::Int(3), Value::Text("x".into()), Value::Null]);
        assert_eq!(row.int(0).ok(), Some(3));
        assert!(row.text(0).is_err());
        assert_eq!(row.opt_int(2).ok(), Some(None));
        assert!(row.int(2).is_err());
        assert!(row.int(9).is_err());
    }
}
