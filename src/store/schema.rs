//! Migrations by `PRAGMA user_version`: each step runs once, in its own transaction.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

const STEPS: &[&str] = &[
    // 1: runs, their transitions, result pages and items, ticks.
    r"
    CREATE TABLE runs (
        id              INTEGER PRIMARY KEY,
        uid             TEXT NOT NULL UNIQUE,
        job             TEXT NOT NULL,
        action_name     TEXT NOT NULL,
        trigger         TEXT NOT NULL,
        scheduled_for   TEXT,
        body            TEXT NOT NULL,
        status          TEXT NOT NULL,
        next_url        TEXT,
        pages           INTEGER NOT NULL DEFAULT 0,
        items           INTEGER NOT NULL DEFAULT 0,
        retry_count     INTEGER NOT NULL DEFAULT 0,
        rate_limit_waits INTEGER NOT NULL DEFAULT 0,
        last_error_label   TEXT,
        last_error_message TEXT,
        callback_url    TEXT,
        owner           TEXT,
        lease_until     TEXT,
        postponed_until TEXT,
        created_at      TEXT NOT NULL,
        started_at      TEXT,
        finished_at     TEXT,
        updated_at      TEXT
    );
    CREATE INDEX runs_job_created ON runs(job, created_at);
    CREATE INDEX runs_status ON runs(status);
    CREATE TABLE transitions (
        run_id      INTEGER NOT NULL REFERENCES runs(id),
        from_status TEXT,
        to_status   TEXT NOT NULL,
        at          TEXT NOT NULL,
        reason      TEXT
    );
    CREATE INDEX transitions_run ON transitions(run_id);
    CREATE TABLE pages (
        run_id     INTEGER NOT NULL REFERENCES runs(id),
        page_no    INTEGER NOT NULL,
        url        TEXT NOT NULL,
        item_count INTEGER NOT NULL,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (run_id, page_no)
    );
    CREATE TABLE items (
        run_id  INTEGER NOT NULL,
        page_no INTEGER NOT NULL,
        idx     INTEGER NOT NULL,
        data    TEXT NOT NULL,
        PRIMARY KEY (run_id, page_no, idx),
        FOREIGN KEY (run_id, page_no) REFERENCES pages(run_id, page_no)
    );
    CREATE TABLE ticks (
        job           TEXT NOT NULL,
        scheduled_for TEXT NOT NULL,
        outcome       TEXT NOT NULL,
        reason        TEXT,
        run_uid       TEXT,
        fired_at      TEXT,
        PRIMARY KEY (job, scheduled_for)
    );
    ",
    // 2: the remote schedules watchbell created or adopted, per job, with a hash of what it sent.
    r"
    CREATE TABLE remote_links (
        job           TEXT PRIMARY KEY,
        uid           TEXT NOT NULL,
        hash          TEXT,
        adopted_from  TEXT,
        created_at    TEXT NOT NULL
    );
    ",
    // 3: webhook deliveries for local runs, queued so a receiver that is down loses nothing;
    // the last known status of each linked remote schedule, for `watchbell status`.
    r"
    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        run_id           INTEGER NOT NULL REFERENCES runs(id),
        seq              INTEGER NOT NULL,
        job              TEXT NOT NULL,
        url              TEXT NOT NULL,
        body             TEXT NOT NULL,
        state            TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  TEXT NOT NULL,
        claimed_until    TEXT,
        last_http_status INTEGER,
        last_error       TEXT,
        created_at       TEXT NOT NULL,
        delivered_at     TEXT,
        UNIQUE (run_id, seq)
    );
    CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
    ALTER TABLE remote_links ADD COLUMN remote_status TEXT;
    ",
    // 4: a hash of each page's items, so a page served again behind a new URL is seen as a loop.
    r"
    ALTER TABLE pages ADD COLUMN content_hash TEXT;
    ",
    // 5: identity lanes shared by every process (slots in flight, gaps, pauses, daily counts),
    // the plan-rate slot, and the time each run waited for its lanes.
    r"
    CREATE TABLE lane_slots (
        lane        TEXT NOT NULL,
        holder      TEXT NOT NULL,
        lease_until TEXT NOT NULL
    );
    CREATE INDEX lane_slots_lane ON lane_slots(lane);
    CREATE TABLE lanes (
        lane         TEXT PRIMARY KEY,
        next_at      TEXT,
        paused_until TEXT,
        pause_reason TEXT,
        first_used   TEXT
    );
    CREATE TABLE lane_days (
        lane     TEXT NOT NULL,
        day      TEXT NOT NULL,
        outreach INTEGER NOT NULL DEFAULT 0,
        visits   INTEGER NOT NULL DEFAULT 0,
        reads    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (lane, day)
    );
    CREATE TABLE pace (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        next_slot TEXT NOT NULL
    );
    ALTER TABLE runs ADD COLUMN lane_wait_ms INTEGER NOT NULL DEFAULT 0;
    ",
    // 6: what each job has seen, so a run's items can be told new or already known; kept apart
    // from the runs so pruning old runs does not make old items new again.
    r"
    CREATE TABLE seen (
        job           TEXT NOT NULL,
        key           TEXT NOT NULL,
        first_run_id  INTEGER NOT NULL,
        PRIMARY KEY (job, key)
    ) WITHOUT ROWID;
    ALTER TABLE items ADD COLUMN is_new INTEGER NOT NULL DEFAULT 0;
    ",
    // 7: notifications and pings ride the delivery queue beside callbacks; a run's retries
    // (`retry_count`, run-level as in the API) apart from its requests' retries.
    r"
    ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'callback';
    ALTER TABLE runs ADD COLUMN request_retries INTEGER NOT NULL DEFAULT 0;
    ",
    // 8: the account's credits as last read from the API, for `status` and `/metrics`.
    r"
    CREATE TABLE account (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        credits_left INTEGER NOT NULL,
        credits_max  INTEGER NOT NULL,
        credits_used INTEGER NOT NULL,
        plan         TEXT,
        read_at      TEXT NOT NULL
    );
    ",
    // 9: the end of the billing period, as v1 `/quotas` tells it (402-blocked runs resume then).
    r"
    ALTER TABLE account ADD COLUMN period_end TEXT;
    ",
];

/// The schema version this build knows.
pub const VERSION: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: VERSION,
        });
    }
    for (i, sql) in STEPS.iter().enumerate().skip(found as usize) {
        let tx = super::write_tx(conn)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
