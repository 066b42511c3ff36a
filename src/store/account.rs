//! The account's credits as the API last reported them (v1 `/quotas`, else v4 `/workspaces`): one row, replaced at each read,
//! so `status` and `/metrics` show them without holding the key or calling the API.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::Result;

/// Credits and plan, with when they were read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Account {
    #[serde(deserialize_with = "whole")]
    pub credits_left: i64,
    #[serde(deserialize_with = "whole")]
    pub credits_max: i64,
    #[serde(default, deserialize_with = "whole")]
    pub credits_used: i64,
    #[serde(default, rename = "plan_name")]
    pub plan: Option<String>,
    /// The end of the billing period (v1 `/quotas`: `current_month_end`).
    #[serde(default, rename = "current_month_end")]
    pub period_end: Option<DateTime<Utc>>,
    #[serde(skip, default = "DateTime::<Utc>::default")]
    pub read_at: DateTime<Utc>,
}

/// A count the API may write as a float (`credits_left` is a `number` in v1): whole credits,
/// rounded down; null is 0.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    let n: Option<f64> = serde::Deserialize::deserialize(d)?;
    Ok(n.unwrap_or(0.0).floor() as i64)
}

pub fn record(c: &mut Db, a: &Account) -> Result<()> {
    let tx = super::write_tx(c)?;
    tx.execute(
        "INSERT INTO account (id, credits_left, credits_max, credits_used, plan, read_at, period_end)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET credits_left = ?1, credits_max = ?2, credits_used = ?3,
             plan = ?4, read_at = ?5, period_end = ?6",
        params![
            a.credits_left,
            a.credits_max,
            a.credits_used,
            a.plan,
            a.read_at.to_rfc3339(),
            a.period_end.map(|t| t.to_rfc3339())
        ],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn read(c: &Db) -> Result<Option<Account>> {
    Ok(c.query_row(
        "SELECT credits_left, credits_max, credits_used, plan, read_at, period_end FROM account WHERE id = 1",
        (),
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
                period_end: r
                    .get::<_, Option<String>>(5)?
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.to_utc()),
            })
        },
    )
    .optional()?)
}
