//! What an outreach job has sent from its lists (PRODUCT.md, "Input lists and chained jobs"):
//! each input at most once per job, ever. The row is written `in_flight` in the same
//! transaction that lets its request go (`lanes::lane_enter`), so no crash can send an input
//! without a trace; the input's outcome then settles it. A row still `in_flight` when its run
//! comes back to the input means the request may have reached the server: `outcome_unknown`,
//! never sent again.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde_json::Value;

use super::runs::LastError;
use super::{InputOutcome, Result, ts, write_tx};

/// The input an outreach request is about to send, recorded when its lanes let it go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMark {
    pub job: String,
    /// The input's identity: [`key`].
    pub input: String,
    pub run_id: i64,
    pub index: u32,
}

/// Where an input stands in its job's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentState {
    /// Its request was let go and has no answer yet (or its process died waiting).
    InFlight,
    Sent,
    /// The API refused it: nothing went out, and it would be refused again.
    Refused,
    /// It may have reached the server: counted as sent.
    OutcomeUnknown,
}

impl SentState {
    pub fn as_str(self) -> &'static str {
        match self {
            SentState::InFlight => "in_flight",
            SentState::Sent => "sent",
            SentState::Refused => "refused",
            SentState::OutcomeUnknown => "outcome_unknown",
        }
    }

    fn parse(s: &str) -> SentState {
        match s {
            "sent" => SentState::Sent,
            "refused" => SentState::Refused,
            "in_flight" => SentState::InFlight,
            _ => SentState::OutcomeUnknown,
        }
    }
}

/// An input's row in its job's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentRow {
    pub run_id: i64,
    pub index: u32,
    pub state: SentState,
}

/// An input's identity in the record: its JSON with keys in order and without `custom_data`,
/// which only labels the results.
pub fn key(input: &Value) -> String {
    match input.as_object() {
        Some(map) if map.contains_key("custom_data") => {
            let mut map = map.clone();
            map.remove("custom_data");
            Value::Object(map).to_string()
        }
        _ => input.to_string(),
    }
}

/// Records `mark` as in flight, inside the transaction that lets its request go. A row already
/// there (a resumed run's own) stays as it was.
pub fn mark(conn: &Db, mark: &SentMark, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sent_inputs (job, input, run_id, input_idx, state, at)
         VALUES (?1, ?2, ?3, ?4, 'in_flight', ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        mark.job,
        mark.input,
        mark.run_id,
        mark.index,
        ts(now)
    ])?;
    Ok(())
}

/// The job's record of an input, if it has one.
pub fn lookup(conn: &Db, job: &str, input: &str) -> Result<Option<SentRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT run_id, input_idx, state FROM sent_inputs WHERE job = ?1 AND input = ?2",
        )?
        .query_row(params![job, input], |r| {
            Ok(SentRow {
                run_id: r.get(0)?,
                index: r.get(1)?,
                state: SentState::parse(&r.get::<_, String>(2)?),
            })
        })
        .optional()?)
}

/// Ends an outreach input in one transaction, and says how: when its request went (the record
/// is this input's), the record becomes `sent` or `refused` with the input, is removed when the
/// server `answered` with a refusal that acted on nothing, and is otherwise `outcome_unknown`,
/// the input's outcome too. An input whose request never went keeps `outcome`.
pub fn settle(
    conn: &mut Db,
    mark: &SentMark,
    outcome: InputOutcome,
    error: Option<&LastError>,
    answered: bool,
) -> Result<InputOutcome> {
    let tx = write_tx(conn)?;
    let went = lookup(&tx, &mark.job, &mark.input)?
        .is_some_and(|r| r.run_id == mark.run_id && r.index == mark.index);
    let (outcome, state) = match outcome {
        _ if !went => (outcome, None),
        InputOutcome::Succeeded => (outcome, Some(SentState::Sent)),
        InputOutcome::Refused => (outcome, Some(SentState::Refused)),
        _ if answered => (outcome, None),
        _ => (
            InputOutcome::OutcomeUnknown,
            Some(SentState::OutcomeUnknown),
        ),
    };
    super::inputs::set_outcome(&tx, mark.run_id, mark.index, outcome, error)?;
    match state {
        Some(state) => tx.execute(
            "UPDATE sent_inputs SET state = ?3 WHERE job = ?1 AND input = ?2 AND run_id = ?4 AND input_idx = ?5",
            params![mark.job, mark.input, state.as_str(), mark.run_id, mark.index],
        )?,
        None => tx.execute(
            "DELETE FROM sent_inputs WHERE job = ?1 AND input = ?2 AND run_id = ?3 AND input_idx = ?4 AND state = 'in_flight'",
            params![mark.job, mark.input, mark.run_id, mark.index],
        )?,
    };
    tx.commit()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inputs_key_leaves_out_its_custom_data_and_orders_its_keys() {
        let a = serde_json::json!({"b": 1, "a": "x", "custom_data": {"row": 7}});
        let b = serde_json::json!({"a": "x", "b": 1});
        assert_eq!(key(&a), key(&b));
        assert_eq!(key(&b), r#"{"a":"x","b":1}"#);
    }
}
