//! The account's credits as `GET /workspaces` last reported them: one row, replaced at each read,
//! so `status` and `/metrics` show them without holding the key or calling the API.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// Credits and plan, with when they were read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Account {
    pub credits_left: i64,
    pub credits_max: i64,
    #[serde(default)]
    pub credits_used: i64,
    #[serde(default, rename = "plan_name")]
    pub plan: Option<String>,
    #[serde(skip, default = "DateTime::<Utc>::default")]
    pub read_at: DateTime<Utc>,
}

pub fn record(c: &mut Connection, a: &Account) -> Result<()> {
    let tx = super::write_tx(c)?;
    tx.execute(
        "INSERT INTO account (id, credits_left, credits_max, credits_used, plan, read_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET credits_left = ?1, credits_max = ?2, credits_used = ?3,
             plan = ?4, read_at = ?5",
        params![
            a.credits_left,
            a.credits_max,
            a.credits_used,
            a.plan,
            a.read_at.to_rfc3339()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn read(c: &Connection) -> Result<Option<Account>> {
    Ok(c.query_row(
        "SELECT credits_left, credits_max, credits_used, plan, read_at FROM account WHERE id = 1",
        [],
        |r| {
            let at: String = r.get(4)?;
            Ok(Account {
                credits_left: r.get(0)?,
                credits_max: r.get(1)?,
                credits_used: r.get(2)?,
                plan: r.get(3)?,
                read_at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.to_utc())
                    .unwrap_or_default(),
            })
        },
    )
    .optional()?)
}
