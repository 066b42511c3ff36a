//! Which remote schedule belongs to which job: the ones watchbell created (with a hash of what it
//! sent) or adopted. The API has no name field for schedules, so this table is the only memory.

use super::db::Db;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Result, ts};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub job: String,
    pub uid: String,
    /// Hash of the create body, when watchbell created the schedule.
    pub hash: Option<String>,
    /// The `remote_schedule` uid of the job file this link replaced, if any.
    pub adopted_from: Option<String>,
}

pub fn links(conn: &Db) -> Result<Vec<Link>> {
    let mut stmt =
        conn.prepare("SELECT job, uid, hash, adopted_from FROM remote_links ORDER BY job")?;
    let rows = stmt.query_map((), |r| {
        Ok(Link {
            job: r.get(0)?,
            uid: r.get(1)?,
            hash: r.get(2)?,
            adopted_from: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

pub fn set_link(conn: &Db, link: &Link, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "INSERT INTO remote_links (job, uid, hash, adopted_from, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(job) DO UPDATE SET uid = ?2, hash = ?3, adopted_from = ?4, created_at = ?5",
        params![link.job, link.uid, link.hash, link.adopted_from, ts(now)],
    )?;
    Ok(())
}

/// Remembers the status a linked schedule had at the last reconcile.
pub fn set_remote_status(conn: &Db, uid: &str, status: &str) -> Result<()> {
    conn.execute(
        "UPDATE remote_links SET remote_status = ?2 WHERE uid = ?1",
        params![uid, status],
    )?;
    Ok(())
}

/// The last known remote status per job.
pub fn remote_statuses(conn: &Db) -> Result<Vec<(String, String, Option<String>)>> {
    let mut stmt = conn.prepare("SELECT job, uid, remote_status FROM remote_links ORDER BY job")?;
    let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}
