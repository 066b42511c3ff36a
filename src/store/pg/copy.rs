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

/// Copies the database at `sqlite` into `target`, which must hold no watchbell rows.
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
    for t in &tables {
        let any: bool = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM \"{t}\")"), &[])
            .await
            .map_err(fail)?
            .get(0);
        if any {
            return Err(PgError::sql(format!(
                "PostgreSQL {target} already holds a watchbell state (table {t} has rows); \
                 the copy goes only into an empty database"
            )));
        }
    }
    let mut copied = Copied::default();
    for t in &tables {
        let (columns, integer) = columns(&lite, t).map_err(|e| lite_error(sqlite, &e))?;
        let rows = read_rows(&lite, t, &columns, &integer).map_err(|e| lite_error(sqlite, &e))?;
        let n = rows.len() as u64;
        for chunk in rows.chunks(BATCH) {
            insert(&tx, t, &columns, chunk).await.map_err(fail)?;
        }
        if integer.first() == Some(&true) && columns.first().is_some_and(|c| c == "id") {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('\"{t}\"', 'id'), \
                     COALESCE((SELECT max(id) FROM \"{t}\"), 0) + 1, false)"
                ),
                &[],
            )
            .await
            .map_err(fail)?;
        }
        copied.tables.push((t.clone(), n));
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

fn lite_error(path: &Path, e: &rusqlite::Error) -> PgError {
    PgError::sql(format!("{}: {e}", path.display()))
}

/// A table's columns in order, and which are integers.
fn columns(lite: &rusqlite::Connection, table: &str) -> rusqlite::Result<(Vec<String>, Vec<bool>)> {
    let mut stmt = lite.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let cols = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?.eq_ignore_ascii_case("INTEGER"),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols.into_iter().unzip())
}

/// A cell as `PostgreSQL` takes it: an integer column's value, or text.
#[derive(Debug)]
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

fn read_rows(
    lite: &rusqlite::Connection,
    table: &str,
    columns: &[String],
    integer: &[bool],
) -> rusqlite::Result<Vec<Vec<Cell>>> {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = lite.prepare(&format!("SELECT {list} FROM \"{table}\""))?;
    let rows = stmt.query_map([], |r| {
        (0..columns.len())
            .map(|i| {
                let v: Value = r.get(i)?;
                Ok(match (integer[i], v) {
                    (_, Value::Null) if integer[i] => Cell::Int(None),
                    (_, Value::Null) => Cell::Text(None),
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
            .collect::<rusqlite::Result<Vec<Cell>>>()
    })?;
    rows.collect()
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
