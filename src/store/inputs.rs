//! The inputs of a run over a list: each with its own cursor, counts and outcome, written in the
//! same transaction as its pages (see `runs::insert_page`), so a crash resumes at the input and
//! page where the run was, and a finished input is never called again in that run.

use super::db::Db;
use rusqlite::params;
use serde::Serialize;

use super::Result;
use super::runs::LastError;

/// Where one input of a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputOutcome {
    /// Not called yet in this run.
    Pending,
    /// Its pagination ended.
    Succeeded,
    /// The API refused it (400 `INVALID_INPUT`, 404): final, never called again.
    Refused,
    /// A failure of its own (a 424 of an action through no identity): tried again by `retry`.
    Failed,
    /// Errors left after request retries, or the run stopped on it: resumed from its cursor.
    Unfinished,
    /// An outreach input this job sent before (or whose send is unknown): not sent again.
    AlreadySent,
    /// An outreach input whose request may have reached the server (in flight at a crash or
    /// stop, a timeout, a 5xx): counted as sent, never sent again.
    OutcomeUnknown,
    /// A chained input its run gave back when it ended (to the job's next run).
    Released,
}

impl InputOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            InputOutcome::Pending => "pending",
            InputOutcome::Succeeded => "succeeded",
            InputOutcome::Refused => "refused",
            InputOutcome::Failed => "failed",
            InputOutcome::Unfinished => "unfinished",
            InputOutcome::AlreadySent => "already_sent",
            InputOutcome::OutcomeUnknown => "outcome_unknown",
            InputOutcome::Released => "released",
        }
    }

    fn parse(s: &str) -> InputOutcome {
        match s {
            "succeeded" => InputOutcome::Succeeded,
            "refused" => InputOutcome::Refused,
            "failed" => InputOutcome::Failed,
            "unfinished" => InputOutcome::Unfinished,
            "already_sent" => InputOutcome::AlreadySent,
            "outcome_unknown" => InputOutcome::OutcomeUnknown,
            "released" => InputOutcome::Released,
            _ => InputOutcome::Pending,
        }
    }

    /// True when no later attempt of the run calls it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            InputOutcome::Succeeded
                | InputOutcome::Refused
                | InputOutcome::AlreadySent
                | InputOutcome::OutcomeUnknown
                | InputOutcome::Released
        )
    }
}

impl std::fmt::Display for InputOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input of a run.
#[derive(Clone, Debug, Serialize)]
pub struct InputRecord {
    /// Its place in the list, from 0 (`_input` on its items).
    pub index: u32,
    /// The input as sent, `custom_data` included.
    pub input: serde_json::Value,
    pub outcome: InputOutcome,
    /// The next page's URL; `None` before its first page and after its last.
    #[serde(skip)]
    pub next_url: Option<String>,
    pub pages: u32,
    pub items: u64,
    pub error: Option<LastError>,
}

/// Stores a run's inputs (JSON texts, in order) from index `start`, once: a second call adds
/// nothing.
pub fn add(conn: &Db, run_id: i64, start: u32, inputs: &[String]) -> Result<()> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO run_inputs (run_id, idx, input) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for (i, input) in inputs.iter().enumerate() {
        ins.execute(params![run_id, i64::from(start) + i as i64, input])?;
    }
    Ok(())
}

/// A run's inputs, in order (none for a run over one input).
pub fn list(conn: &Db, run_id: i64) -> Result<Vec<InputRecord>> {
    list_from(conn, run_id, 0, u32::MAX)
}

/// At most `limit` of a run's inputs, in order, from index `from`.
pub fn list_from(conn: &Db, run_id: i64, from: u32, limit: u32) -> Result<Vec<InputRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, input, outcome, next_url, pages, items, error_label, error_message
         FROM run_inputs WHERE run_id = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![run_id, from, limit], |r| {
        let text: String = r.get(1)?;
        let outcome: String = r.get(2)?;
        let label: Option<String> = r.get(6)?;
        Ok(InputRecord {
            index: r.get(0)?,
            input: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            outcome: InputOutcome::parse(&outcome),
            next_url: r.get(3)?,
            pages: r.get(4)?,
            items: r.get::<_, i64>(5)? as u64,
            error: label.map(|label| LastError {
                label,
                message: r
                    .get::<_, Option<String>>(7)
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            }),
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Records where an input ended in this attempt of its run.
pub fn set_outcome(
    conn: &Db,
    run_id: i64,
    index: u32,
    outcome: InputOutcome,
    error: Option<&LastError>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE run_inputs SET outcome = ?3, error_label = ?4, error_message = ?5 WHERE run_id = ?1 AND idx = ?2",
    )?
    .execute(params![
        run_id,
        index,
        outcome.as_str(),
        error.map(|e| e.label.as_str()),
        error.map(|e| e.message.as_str())
    ])?;
    super::chain::on_outcome(conn, run_id, index, outcome)
}

/// The items stored for one input of a run, in order.
pub fn items(conn: &Db, run_id: i64, index: u32) -> Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.data FROM items i JOIN pages p ON p.run_id = i.run_id AND p.page_no = i.page_no
         WHERE i.run_id = ?1 AND p.input_idx = ?2 ORDER BY i.page_no, i.idx",
    )?;
    let rows = stmt.query_map(params![run_id, index], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for text in rows {
        let text = text?;
        out.push(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
    }
    Ok(out)
}
