//! How the store's SQL reaches its database, whichever it is: `SQLite` (one file, the default)
//! or `PostgreSQL` (one database for several nodes). The store's modules write their SQL once,
//! with `?N` placeholders, and read rows with `get`; this is the only place that knows which
//! database answers.
//!
//! Values cross in `SQLite`'s five types (integer, real, text, blob, null) both ways, so the
//! `ToSql`/`FromSql` impls of the store's own types serve both backends. On `PostgreSQL` a
//! parameter is encoded as the type the server inferred for it (a `BIGINT` column gets `INT8`,
//! a comparison with text gets `TEXT`), and a column is read by its declared type.
//!
//! `PostgreSQL` is spoken synchronously: the writer thread owns a current-thread runtime that
//! drives the connection only while a statement waits, like the `postgres` crate does, in
//! a few lines over the driver already here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};
use tokio_postgres::types::{IsNull, ToSql as PgToSql, Type};

use super::pg::offset::{self, Offset};
use super::pg::{PgError, Target};
use crate::clock::Clock;

/// Statement parameters: `rusqlite::params![..]`, an array or slice of one type, or `()`.
pub trait Params {
    fn with<R>(self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R;
}

impl Params for () {
    fn with<R>(self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        f(&[])
    }
}

impl<T: ToSql, const N: usize> Params for [T; N] {
    fn with<R>(self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs: [&dyn ToSql; N] = std::array::from_fn(|i| &self[i] as &dyn ToSql);
        f(&refs)
    }
}

impl<T: ToSql, const N: usize> Params for &[T; N] {
    fn with<R>(self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs: [&dyn ToSql; N] = std::array::from_fn(|i| &self[i] as &dyn ToSql);
        f(&refs)
    }
}

impl<T: ToSql> Params for &[T] {
    fn with<R>(self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs: Vec<&dyn ToSql> = self.iter().map(|v| v as &dyn ToSql).collect();
        f(&refs)
    }
}

/// What went wrong between the store and its database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Lite(rusqlite::Error),
    #[error("{}", pg_message(.0))]
    Pg(#[source] tokio_postgres::Error),
    /// Connecting (or reconnecting) failed.
    #[error(transparent)]
    Connect(PgError),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {0}: {1}")]
    Decode(usize, String),
    /// This node no longer leads under the epoch its writes were fenced by.
    #[error("node {node} no longer leads under epoch {epoch}: the write was not made")]
    Fenced { node: String, epoch: i64 },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            e => DbError::Lite(e),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError::Pg(e)
    }
}

/// The server's own message where there is one (the driver's `Display` says only "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("{}: {}", d.code().code(), d.message()),
    )
}

pub type Result<T> = std::result::Result<T, DbError>;

/// `query_row(..).optional()`: no row is `None`, not an error.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A connection to either database.
pub struct Db {
    kind: Kind,
    /// Inside [`Db::fenced`]'s transaction.
    in_fence: std::cell::Cell<bool>,
}

enum Kind {
    Lite(rusqlite::Connection),
    Pg(Box<RefCell<Pg>>),
}

/// A `PostgreSQL` connection driven from a synchronous thread, reconnected when it drops.
pub struct Pg {
    rt: tokio::runtime::Runtime,
    target: Target,
    client: Option<tokio_postgres::Client>,
    /// Prepared statements by their `PostgreSQL` text (cleared when full or reconnected).
    prepared: HashMap<String, tokio_postgres::Statement>,
    /// Rows written through this connection, for [`Db::total_changes`].
    changes: u64,
    /// This node and the epoch its writes are fenced by, while it leads.
    fence: Option<(String, i64)>,
    /// How far this node's clock is from the server's (updated by connects and fence checks).
    offset: std::sync::Arc<Offset>,
}

/// How many prepared statements a connection keeps before starting over.
const MOST_PREPARED: usize = 512;

impl Db {
    pub fn lite(conn: rusqlite::Connection) -> Db {
        Db {
            kind: Kind::Lite(conn),
            in_fence: std::cell::Cell::new(false),
        }
    }

    /// Connects to `target` on a runtime of this thread's own.
    pub fn postgres(target: Target) -> Result<Db> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Connect(PgError::config(format!("a runtime: {e}"))))?;
        let mut pg = Pg {
            rt,
            target,
            client: None,
            prepared: HashMap::new(),
            changes: 0,
            fence: None,
            offset: std::sync::Arc::default(),
        };
        pg.ready()?;
        Ok(Db {
            kind: Kind::Pg(Box::new(RefCell::new(pg))),
            in_fence: std::cell::Cell::new(false),
        })
    }

    /// How far this node's clock is from the database's (`None` on `SQLite`: one clock).
    pub fn offset(&self) -> Option<std::sync::Arc<Offset>> {
        match &self.kind {
            Kind::Pg(p) => Some(p.borrow().offset.clone()),
            Kind::Lite(_) => None,
        }
    }

    /// Makes this connection's answers update `offset` (one per node, shared by its
    /// connections).
    pub fn share_offset(&mut self, offset: std::sync::Arc<Offset>) {
        if let Kind::Pg(p) = &self.kind {
            p.borrow_mut().offset = offset;
        }
    }

    /// The `SQLite` connection, for what only `SQLite` has (pragmas, checkpoints, vacuum).
    pub fn as_lite(&self) -> Option<&rusqlite::Connection> {
        match &self.kind {
            Kind::Lite(c) => Some(c),
            Kind::Pg(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Pg(_))
    }

    /// Rows written through this connection since it opened.
    pub fn total_changes(&self) -> u64 {
        match &self.kind {
            Kind::Lite(c) => c.total_changes(),
            Kind::Pg(p) => p.borrow().changes,
        }
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        match &self.kind {
            Kind::Lite(c) => Ok(params.with(|p| c.execute(sql, p))?),
            Kind::Pg(p) => Pg::prepare(p, sql)?.execute(params),
        }
    }

    /// The first row's `f`, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        match rows.next()? {
            Some(row) => f(&row),
            None => Err(DbError::NoRows),
        }
    }

    /// Statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.kind {
            Kind::Lite(c) => Ok(c.execute_batch(sql)?),
            Kind::Pg(p) => {
                let p = &mut *p.borrow_mut();
                p.ready()?;
                let out = p.rt.block_on(p.client().batch_execute(sql));
                p.seen(out)
            }
        }
    }

    /// A statement prepared for this call only (SQL built at run time).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        match &self.kind {
            Kind::Lite(c) => Ok(Stmt::Lite(LiteStmt::Once(c.prepare(sql)?))),
            Kind::Pg(p) => Pg::prepare(p, sql),
        }
    }

    /// A statement kept prepared for the next call with the same text.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        match &self.kind {
            Kind::Lite(c) => Ok(Stmt::Lite(LiteStmt::Cached(c.prepare_cached(sql)?))),
            Kind::Pg(p) => Pg::prepare(p, sql),
        }
    }

    /// A write transaction, holding the write lock from its first statement (`SQLite`'s
    /// `BEGIN IMMEDIATE`), rolled back unless committed.
    ///
    /// Inside [`Db::fenced`] it is that transaction: its commit and rollback are the fence's.
    pub fn write_tx(&mut self) -> Result<Tx<'_>> {
        if self.in_fence.get() {
            return Ok(Tx {
                db: self,
                open: false,
            });
        }
        self.execute_batch(match self.kind {
            Kind::Lite(_) => "BEGIN IMMEDIATE",
            Kind::Pg(_) => "BEGIN",
        })?;
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// Fences every later task on this connection by `fence` (this node, its epoch), or no
    /// longer (`None`).
    pub fn set_fence(&mut self, fence: Option<(String, i64)>) {
        if let Kind::Pg(p) = &self.kind {
            p.borrow_mut().fence = fence;
        }
    }

    /// Runs `f` in one transaction that first checks, and locks until it ends, that this node
    /// still holds the lead under its epoch ([`super::pg::leader::fence`]): no write of an
    /// epoch that ended can land. Without a fence (`SQLite`, a standby's receiver), just `f`.
    pub fn fenced<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&mut Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let fence = match &self.kind {
            Kind::Pg(p) => p.borrow().fence.clone(),
            Kind::Lite(_) => None,
        };
        let Some((node, epoch)) = fence else {
            return f(self);
        };
        // The transaction and its fence in one round trip, with the server's clock.
        let check = format!(
            "BEGIN; SELECT {} FROM watchbell_leader WHERE id = 1 AND holder = '{}' AND epoch = {epoch} \
             AND expires_at > clock_timestamp() FOR SHARE",
            offset::NOW,
            node.replace('\'', "''")
        );
        let holds = {
            let Kind::Pg(p) = &self.kind else {
                unreachable!("a fence is PostgreSQL's")
            };
            let p = &mut *p.borrow_mut();
            p.ready()?;
            let sent = Clock::System.now();
            let out = p.rt.block_on(p.client().simple_query(&check));
            let received = Clock::System.now();
            let db = p.seen(out)?.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            if let Some(at) = db.as_deref().and_then(|t| t.parse().ok()) {
                p.offset.record(at, sent, received);
            }
            db.is_some()
        };
        if !holds {
            let _ = self.execute_batch("ROLLBACK");
            return Err(DbError::Fenced { node, epoch }.into());
        }
        self.in_fence.set(true);
        let out = f(self);
        self.in_fence.set(false);
        match out {
            Ok(v) => {
                self.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Pg {
    /// Connects again if the last connection was lost.
    fn ready(&mut self) -> Result<&mut Pg> {
        if self
            .client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            self.prepared.clear();
            let client = self
                .rt
                .block_on(super::pg::connect(&self.target))
                .map_err(DbError::Connect)?;
            // A new connection (perhaps to another server after a failover) asks the clock.
            let sent = Clock::System.now();
            let out = self
                .rt
                .block_on(client.query_one(&format!("SELECT {}", offset::NOW), &[]));
            let received = Clock::System.now();
            if let Ok(row) = out {
                self.offset.record(row.get(0), sent, received);
            }
            self.client = Some(client);
        }
        Ok(self)
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.client.as_ref().expect("ready() connected")
    }

    /// `out`, forgetting a lost connection (the next statement reconnects).
    fn seen<T>(&mut self, out: std::result::Result<T, tokio_postgres::Error>) -> Result<T> {
        out.map_err(|e| {
            if e.is_closed() {
                self.client = None;
            }
            DbError::Pg(e)
        })
    }

    fn prepare<'a>(cell: &'a RefCell<Pg>, sql: &str) -> Result<Stmt<'a>> {
        let p = &mut *cell.borrow_mut();
        let text = placeholders(sql);
        if let Some(stmt) = p.prepared.get(&text) {
            return Ok(Stmt::Pg {
                pg: cell,
                stmt: stmt.clone(),
            });
        }
        p.ready()?;
        let out = p.rt.block_on(p.client().prepare(&text));
        let stmt = p.seen(out)?;
        if p.prepared.len() >= MOST_PREPARED {
            p.prepared.clear();
        }
        p.prepared.insert(text, stmt.clone());
        Ok(Stmt::Pg { pg: cell, stmt })
    }
}

/// The store's SQL in `PostgreSQL`'s words: `SQLite`'s `?N` (and bare `?`) placeholders as
/// `$N` outside quotes, `SQLite`'s planner hints (`INDEXED BY name`) left out, and
/// `json_extract(col, '$.key')` as `jsonb`'s `->` (the value's JSON text).
pub fn placeholders(sql: &str) -> String {
    let (hint, json) = dialect();
    let sql = hint.replace_all(sql, "");
    let sql = json.replace_all(&sql, "(($1)::jsonb -> '$2')::text");
    let sql: &str = &sql;
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut quote, mut next) = (None, 1);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('?', None) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                if n.is_empty() {
                    n = next.to_string();
                }
                next = n.parse::<usize>().unwrap_or(next) + 1;
                out.push('$');
                out.push_str(&n);
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// `SQLite`'s planner hints, and its `json_extract` of one key.
fn dialect() -> &'static (regex::Regex, regex::Regex) {
    static PATTERNS: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        (
            regex::Regex::new(r"\s+INDEXED BY\s+\w+").expect("a valid pattern"),
            regex::Regex::new(r"json_extract\(([\w.]+), '\$\.(\w+)'\)").expect("a valid pattern"),
        )
    })
}

/// A write or read transaction; dereferences to its connection.
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        if !std::mem::replace(&mut self.open, false) {
            return Ok(()); // the fence's transaction commits
        }
        self.db.execute_batch("COMMIT")
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

/// A prepared statement of either database.
pub enum Stmt<'a> {
    Lite(LiteStmt<'a>),
    Pg {
        pg: &'a RefCell<Pg>,
        stmt: tokio_postgres::Statement,
    },
}

pub enum LiteStmt<'a> {
    Once(rusqlite::Statement<'a>),
    Cached(rusqlite::CachedStatement<'a>),
}

impl<'a> LiteStmt<'a> {
    fn get(&mut self) -> &mut rusqlite::Statement<'a> {
        match self {
            LiteStmt::Once(s) => s,
            LiteStmt::Cached(s) => s,
        }
    }
}

impl Stmt<'_> {
    /// Rows changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        match self {
            Stmt::Lite(s) => Ok(params.with(|p| s.get().execute(p))?),
            Stmt::Pg { pg, stmt } => {
                let p = &mut *pg.borrow_mut();
                let args = params.with(args)?;
                p.ready()?;
                let out = p.rt.block_on(p.client().execute_raw(&*stmt, args.iter()));
                let n = p.seen(out)?;
                p.changes += n;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// The rows, read one at a time (`SQLite`) or all at once (`PostgreSQL`).
    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>> {
        match self {
            Stmt::Lite(s) => Ok(Rows::Lite(params.with(|p| s.get().query(p))?)),
            Stmt::Pg { pg, stmt } => {
                let args = params.with(args)?;
                let refs = pg_refs(&args);
                let p = &mut *pg.borrow_mut();
                p.ready()?;
                let out = p.rt.block_on(p.client().query(&*stmt, &refs));
                let rows = p.seen(out)?;
                Ok(Rows::Pg(rows.into_iter()))
            }
        }
    }

    /// Each row's `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(&row));
        }
        Ok(out.into_iter())
    }

    /// The first row's `f`, or [`DbError::NoRows`].
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.query(params)?.next()? {
            Some(row) => f(&row),
            None => Err(DbError::NoRows),
        }
    }

    /// True when the query returns a row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool> {
        Ok(self.query(params)?.next()?.is_some())
    }
}

/// The rows of a query.
pub enum Rows<'s> {
    Lite(rusqlite::Rows<'s>),
    Pg(std::vec::IntoIter<tokio_postgres::Row>),
}

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // a lending iterator: the row borrows the rows
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Rows::Lite(r) => Ok(r.next()?.map(Row::Lite)),
            Rows::Pg(r) => Ok(r.next().map(Row::Pg)),
        }
    }
}

/// One row of either database.
pub enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(tokio_postgres::Row),
}

/// A column by position (the `_` of `get::<_, T>`, as rusqlite writes it).
pub trait Index {
    fn idx(self) -> usize;
}

impl Index for usize {
    fn idx(self) -> usize {
        self
    }
}

impl Row<'_> {
    pub fn get<I: Index, T: FromSql>(&self, i: I) -> Result<T> {
        let i = i.idx();
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => {
                let v = pg_value(r, i)?;
                T::column_result(ValueRef::from(&v)).map_err(|e| DbError::Decode(i, e.to_string()))
            }
        }
    }
}

/// Column `i` of a `PostgreSQL` row as one of `SQLite`'s types.
fn pg_value(r: &tokio_postgres::Row, i: usize) -> Result<Value> {
    let ty = r
        .columns()
        .get(i)
        .ok_or_else(|| DbError::Decode(i, "no such column".into()))?
        .type_()
        .clone();
    let v = match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Value::Real(v.into())),
        Type::NUMERIC => r.try_get::<_, Option<Numeric>>(i)?.map(|n| n.0),
        Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            r.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        other => return Err(DbError::Decode(i, format!("unread type {other}"))),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A `NUMERIC` (what `SUM` of `BIGINT`s gives): an integer when it has no fraction.
struct Numeric(Value);

impl<'a> tokio_postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // Binary NUMERIC: ndigits, weight, sign, dscale (i16 each), then base-10000 digits.
        let word =
            |k: usize| -> std::result::Result<i16, Box<dyn std::error::Error + Sync + Send>> {
                let b = raw.get(2 * k..2 * k + 2).ok_or("a short NUMERIC")?;
                Ok(i16::from_be_bytes([b[0], b[1]]))
            };
        let (n, weight, sign) = (word(0)?, word(1)?, word(2)?);
        if sign == -16384 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        let mut value = 0f64;
        for k in 0..usize::try_from(n).unwrap_or(0) {
            let power = i32::from(weight) - i32::try_from(k).unwrap_or(0);
            value += f64::from(word(4 + k)?) * 10_000f64.powi(power);
        }
        if sign == 0x4000 {
            value = -value;
        }
        #[allow(clippy::cast_possible_truncation)] // checked: a whole number within i64
        let v = if value.fract() == 0.0 && value.abs() < 9.0e15 {
            Value::Integer(value as i64)
        } else {
            Value::Real(value)
        };
        Ok(Numeric(v))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// A parameter for `PostgreSQL`, encoded as the type the server wants.
#[derive(Debug)]
struct Arg(Value);

fn args(params: &[&dyn ToSql]) -> Result<Vec<Arg>> {
    params
        .iter()
        .map(|p| {
            let v = match p.to_sql()? {
                ToSqlOutput::Borrowed(v) => owned(v),
                ToSqlOutput::Owned(v) => v,
                other => {
                    return Err(DbError::Decode(0, format!("a parameter of kind {other:?}")));
                }
            };
            Ok(Arg(v))
        })
        .collect()
}

/// A borrowed value, owned.
fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn pg_refs(args: &[Arg]) -> Vec<&(dyn PgToSql + Sync)> {
    args.iter().map(|a| a as &(dyn PgToSql + Sync)).collect()
}

impl PgToSql for Arg {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let wrong = || format!("{:?} for a parameter of type {ty}", self.0).into();
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(v), &Type::INT8) => PgToSql::to_sql(v, ty, out),
            (Value::Integer(v), &Type::INT4) => PgToSql::to_sql(&i32::try_from(*v)?, ty, out),
            (Value::Integer(v), &Type::INT2) => PgToSql::to_sql(&i16::try_from(*v)?, ty, out),
            (Value::Integer(v), &Type::BOOL) => PgToSql::to_sql(&(*v != 0), ty, out),
            #[allow(clippy::cast_precision_loss)] // a count or an instant, well within f64
            (Value::Integer(v), &Type::FLOAT8) => PgToSql::to_sql(&(*v as f64), ty, out),
            (Value::Integer(v), &Type::TEXT | &Type::VARCHAR) => {
                PgToSql::to_sql(&v.to_string(), ty, out)
            }
            (Value::Real(v), &Type::FLOAT8) => PgToSql::to_sql(v, ty, out),
            (Value::Text(v), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                PgToSql::to_sql(&v.as_str(), ty, out)
            }
            (Value::Blob(v), &Type::BYTEA) => PgToSql::to_sql(&v.as_slice(), ty, out),
            _ => Err(wrong()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            placeholders("SELECT ?1, '?2', \"a?\" FROM t WHERE x = ?12 AND y = ?"),
            "SELECT $1, '?2', \"a?\" FROM t WHERE x = $12 AND y = $13"
        );
        assert_eq!(placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            placeholders("SELECT job FROM runs INDEXED BY runs_open_owner WHERE a = ?1"),
            "SELECT job FROM runs WHERE a = $1"
        );
        assert_eq!(
            placeholders("SELECT json_extract(ri.input, '$.custom_data') FROM t"),
            "SELECT ((ri.input)::jsonb -> 'custom_data')::text FROM t"
        );
    }

    #[test]
    fn sqlite_speaks_through_the_door() {
        let mut db = Db::lite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)")
            .unwrap();
        {
            let tx = db.write_tx().unwrap();
            tx.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params!["a", 1])
                .unwrap();
            tx.commit().unwrap();
        }
        {
            let tx = db.write_tx().unwrap();
            tx.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params!["b", 2])
                .unwrap();
        } // dropped: rolled back
        let n: i64 = db
            .query_row("SELECT SUM(n) FROM t", (), |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let none: Option<i64> = db
            .query_row("SELECT n FROM t WHERE k = ?1", ["b"], |r| r.get(0))
            .optional()
            .unwrap();
        assert_eq!(none, None);
        assert!(db.total_changes() >= 1);
    }
}
