//! `watchbell store copy --to-postgres`: the whole `SQLite` state (runs, ticks, remote-schedule
//! links, seen and consumed records, everything) into an empty `PostgreSQL` database, in one
//! transaction: the copy is all there or not at all. The `SQLite` file is migrated to this
//! build's schema first, as the daemon would, so both sides hold the same version.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{PgError, Target, schema};
use crate::store::schema::VERSION;

/// Rows per `INSERT` (`PostgreSQL` takes at most 65,535 parameters a statement).
const BATCH: usize = 500;

/// How many rows of each table were copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(String, u64)>,
}

impl Copied {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// What the reader thread sends: a table's columns, its rows in chunks, the end of it.
enum Msg {
    Table(String, Vec<String>, Vec<bool>),
    Rows(Vec<Vec<Cell>>),
    Failed(PgError),
}

/// Copies the database at `sqlite` into `target`, which must hold no watchbell rows. The
/// `SQLite` side is read in one read transaction (a consistent snapshot) on a thread of its
/// own, [`BATCH`] rows at a time, so memory stays flat however large the state.
pub async fn to_postgres(
    sqlite: &Path,
    client: &mut tokio_postgres::Client,
    target: &Target,
) -> Result<Copied, PgError> {
    let mut lite =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| PgError::config(format!("{}: {e}", sqlite.display())))?;
    lite.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| lite_error(sqlite, &e))?;
    crate::store::schema::migrate(&mut lite, sqlite)
        .map_err(|e| PgError::sql(format!("{}: {e}", sqlite.display())))?;
    schema::migrate(client, target).await?;
    let fail = |e: tokio_postgres::Error| PgError::of(target, &e);
    let tables = schema::tables();
    let tx = client.transaction().await.map_err(fail)?;
    if let Some(t) = holding(&tx, &tables).await.map_err(fail)? {
        return Err(PgError::sql(format!(
            "PostgreSQL {target} already holds a watchbell state (table {t} has rows); \
             the copy goes only into an empty database"
        )));
    }
    let (send, mut rows) = tokio::sync::mpsc::channel(4);
    let path = sqlite.to_path_buf();
    let reader = std::thread::spawn(move || read_all(lite, &path, &tables, &send));
    let mut copied = Copied::default();
    let mut current: Option<(String, Vec<String>)> = None;
    // Tables whose `id` (or kept `rowid`) is an identity column: its sequence continues after
    // the copied values.
    let mut identities = Vec::new();
    while let Some(msg) = rows.recv().await {
        match msg {
            Msg::Table(t, columns, integer) => {
                if let Some(key) = columns
                    .first()
                    .filter(|c| integer.first() == Some(&true) && (*c == "id" || *c == "rowid"))
                {
                    identities.push((t.clone(), key.clone()));
                }
                copied.tables.push((t.clone(), 0));
                current = Some((t, columns));
            }
            Msg::Rows(chunk) => {
                let (t, columns) = current.as_ref().expect("a table before its rows");
                insert(&tx, t, columns, &chunk).await.map_err(fail)?;
                if let Some(last) = copied.tables.last_mut() {
                    last.1 += chunk.len() as u64;
                }
            }
            Msg::Failed(e) => return Err(e),
        }
    }
    let _ = reader.join();
    for (t, key) in &identities {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('\"{t}\"', '{key}'), \
                 COALESCE((SELECT max({key}) FROM \"{t}\"), 0) + 1, false)"
            ),
            &[],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    tracing::info!(
        from = %sqlite.display(),
        to = %target,
        rows = copied.rows(),
        schema = VERSION,
        "state copied to PostgreSQL"
    );
    Ok(copied)
}

/// The reader thread: every table in one read transaction, in chunks.
fn read_all(
    mut lite: rusqlite::Connection,
    path: &Path,
    tables: &[String],
    send: &tokio::sync::mpsc::Sender<Msg>,
) {
    let result = (|| -> rusqlite::Result<()> {
        let tx = lite.transaction()?;
        for t in tables {
            let (columns, integer) = columns(&tx, t)?;
            let list = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = tx.prepare(&format!("SELECT {list} FROM \"{t}\""))?;
            if send
                .blocking_send(Msg::Table(t.clone(), columns.clone(), integer.clone()))
                .is_err()
            {
                return Ok(());
            }
            let mut rows = stmt.query([])?;
            let mut chunk = Vec::with_capacity(BATCH);
            while let Some(r) = rows.next()? {
                chunk.push(cells(r, t, &columns, &integer)?);
                if chunk.len() == BATCH
                    && send
                        .blocking_send(Msg::Rows(std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(BATCH),
                        )))
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !chunk.is_empty() && send.blocking_send(Msg::Rows(chunk)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = send.blocking_send(Msg::Failed(lite_error(path, &e)));
    }
}

/// The first of `tables` that has a row: `None` when the database holds no watchbell state.
pub async fn holding(
    client: &impl tokio_postgres::GenericClient,
    tables: &[String],
) -> Result<Option<String>, tokio_postgres::Error> {
    for t in tables {
        let any: bool = client
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM \"{t}\")"), &[])
            .await?
            .get(0);
        if any {
            return Ok(Some(t.clone()));
        }
    }
    Ok(None)
}

fn lite_error(path: &Path, e: &rusqlite::Error) -> PgError {
    PgError::sql(format!("{}: {e}", path.display()))
}

/// A table's columns in order, and which are integers; its implicit rowid first where
/// `PostgreSQL` keeps it as a column ([`super::schema::keeps_rowid`]).
fn columns(lite: &rusqlite::Connection, table: &str) -> rusqlite::Result<(Vec<String>, Vec<bool>)> {
    let create: String = lite.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    let mut stmt = lite.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let rowid = super::schema::keeps_rowid(&create).then(|| ("rowid".to_string(), true));
    let cols = rowid.into_iter().chain(
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?.eq_ignore_ascii_case("INTEGER"),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?,
    );
    Ok(cols.into_iter().unzip())
}

/// A cell as `PostgreSQL` takes it: an integer column's value, or text.
#[derive(Debug)]
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

/// One row's cells: an integer column's value, or text (a number in a text column as its text).
fn cells(
    r: &rusqlite::Row,
    table: &str,
    columns: &[String],
    integer: &[bool],
) -> rusqlite::Result<Vec<Cell>> {
    (0..columns.len())
        .map(|i| {
            let v: Value = r.get(i)?;
            Ok(match (integer[i], v) {
                (true, Value::Null) => Cell::Int(None),
                (false, Value::Null) => Cell::Text(None),
                (true, Value::Integer(n)) => Cell::Int(Some(n)),
                (false, Value::Text(s)) => Cell::Text(Some(s)),
                (false, Value::Integer(n)) => Cell::Text(Some(n.to_string())),
                (false, Value::Real(x)) => Cell::Text(Some(x.to_string())),
                (_, other) => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        i,
                        format!("{table}.{} holds {other:?}", columns[i]),
                        rusqlite::types::Type::Integer,
                    ));
                }
            })
        })
        .collect()
}

async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    columns: &[String],
    rows: &[Vec<Cell>],
) -> Result<u64, tokio_postgres::Error> {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("INSERT INTO \"{table}\" ({list}) VALUES ");
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * columns.len());
    for (r, row) in rows.iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            params.push(match cell {
                Cell::Int(v) => v,
                Cell::Text(v) => v,
            });
            sql.push('$');
            sql.push_str(&params.len().to_string());
        }
        sql.push(')');
    }
    tx.execute(&sql, &params).await
}
