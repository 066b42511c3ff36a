//! The soak with `--postgres`: the state on a `PostgreSQL` database of the run's own, two
//! nodes on it, the vendor's callbacks through a front that reaches either node (a load
//! balancer's part), and at the end the database read back into a `SQLite` file so the one
//! auditor checks both backends alike.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::Type;

/// A database of the run's own (dropped when the run passes).
pub struct Database {
    admin: String,
    pub name: String,
    pub url: String,
}

/// A session as watchbell opens one (its TLS, its timeouts).
async fn client(url: &str) -> tokio_postgres::Client {
    let target = watchbell::store::pg::Target::parse(url).unwrap();
    watchbell::store::pg::connect(&target)
        .await
        .unwrap_or_else(|e| panic!("soak: cannot reach PostgreSQL: {}", e.message))
}

impl Database {
    pub async fn create(admin: &str, name: String) -> Database {
        let c = client(admin).await;
        // One statement each: a batch of two runs as one transaction, which these refuse.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql).await.unwrap();
        }
        let mut url = reqwest::Url::parse(admin).unwrap();
        url.set_path(&name);
        Database {
            admin: admin.to_string(),
            name,
            url: url.to_string(),
        }
    }

    pub async fn drop_it(self) {
        let c = client(&self.admin).await;
        let _ = c
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }

    /// The node holding the lead row, if any.
    pub async fn leader(&self) -> Option<String> {
        let c = client(&self.url).await;
        c.query_opt("SELECT holder FROM watchbell_leader WHERE id = 1", &[])
            .await
            .ok()
            .flatten()
            .and_then(|r| r.get(0))
    }

    /// `pg_terminate_backend` on every session of node `name`; how many.
    pub async fn terminate(&self, name: &str) -> i64 {
        let c = client(&self.admin).await;
        c.query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = $1 AND application_name = $2",
            &[&self.name, &format!("watchbell {name}")],
        )
        .await
        .map_or(0, |r| r.get(0))
    }

    /// Every watchbell table, read into a fresh `SQLite` database at `to` (the schema made by
    /// the store itself).
    pub async fn to_sqlite(&self, to: &Path) {
        drop(watchbell::store::Store::open(to).unwrap());
        let lite = rusqlite::Connection::open(to).unwrap();
        let c = client(&self.url).await;
        for table in watchbell::store::pg::schema::tables() {
            let rows = c
                .query(&format!("SELECT * FROM \"{table}\""), &[])
                .await
                .unwrap();
            let Some(first) = rows.first() else { continue };
            let columns: Vec<String> = first
                .columns()
                .iter()
                .map(|c| format!("\"{}\"", c.name()))
                .collect();
            let marks = vec!["?"; columns.len()].join(", ");
            let sql = format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({marks})",
                columns.join(", ")
            );
            let mut stmt = lite.prepare(&sql).unwrap();
            for r in &rows {
                let values: Vec<Value> = (0..r.len()).map(|i| value(r, i)).collect();
                stmt.execute(rusqlite::params_from_iter(values)).unwrap();
            }
        }
    }
}

/// Column `i` of `r` as `SQLite` holds it.
fn value(r: &tokio_postgres::Row, i: usize) -> Value {
    let t = r.columns()[i].type_();
    let v = if *t == Type::INT8 {
        r.get::<_, Option<i64>>(i).map(Value::Integer)
    } else if *t == Type::INT4 {
        r.get::<_, Option<i32>>(i).map(|v| Value::Integer(v.into()))
    } else if *t == Type::FLOAT8 {
        r.get::<_, Option<f64>>(i).map(Value::Real)
    } else if *t == Type::BYTEA {
        r.get::<_, Option<Vec<u8>>>(i).map(Value::Blob)
    } else if *t == Type::BOOL {
        r.get::<_, Option<bool>>(i)
            .map(|b| Value::Integer(b.into()))
    } else {
        r.get::<_, Option<String>>(i).map(Value::Text)
    };
    v.unwrap_or(Value::Null)
}

/// The receiver's public address in front of the nodes: each connection goes to the first
/// node that accepts it, from a rotating start, as a load balancer with health checks would.
pub async fn front(nodes: Vec<u16>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut turn = 0usize;
        while let Ok((mut inbound, _)) = l.accept().await {
            turn += 1;
            let order: Vec<u16> = (0..nodes.len())
                .map(|k| nodes[(turn + k) % nodes.len()])
                .collect();
            tokio::spawn(async move {
                for p in order {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", p)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        return;
                    }
                }
            });
        }
    });
    port
}
