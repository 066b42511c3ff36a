//! Migrations by `PRAGMA user_version`: each step runs once, in its own transaction.

use std::path::Path;

use rusqlite::{Connection, Transaction, params};

use super::{Result, StoreError};
use crate::fnv::fnv64;

/// A migration step: SQL, or code where SQL alone cannot say it.
enum Step {
    Sql(&'static str),
    Code(fn(&Transaction) -> rusqlite::Result<()>),
}

const STEPS: &[Step] = &[
    // 1: runs, their transitions, result pages and items, ticks.
    Step::Sql(
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
    ),
    // 2: the remote schedules watchbell created or adopted, per job, with a hash of what it sent.
    Step::Sql(
        r"
    CREATE TABLE remote_links (
        job           TEXT PRIMARY KEY,
        uid           TEXT NOT NULL,
        hash          TEXT,
        adopted_from  TEXT,
        created_at    TEXT NOT NULL
    );
    ",
    ),
    // 3: webhook deliveries for local runs, queued so a receiver that is down loses nothing;
    // the last known status of each linked remote schedule, for `watchbell status`.
    Step::Sql(
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
    ),
    // 4: a hash of each page's items, so a page served again behind a new URL is seen as a loop.
    Step::Sql(
        r"
    ALTER TABLE pages ADD COLUMN content_hash TEXT;
    ",
    ),
    // 5: identity lanes shared by every process (slots in flight, gaps, pauses, daily counts),
    // the plan-rate slot, and the time each run waited for its lanes.
    Step::Sql(
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
    ),
    // 6: what each job has seen, so a run's items can be told new or already known; kept apart
    // from the runs so pruning old runs does not make old items new again.
    Step::Sql(
        r"
    CREATE TABLE seen (
        job           TEXT NOT NULL,
        key           TEXT NOT NULL,
        first_run_id  INTEGER NOT NULL,
        PRIMARY KEY (job, key)
    ) WITHOUT ROWID;
    ALTER TABLE items ADD COLUMN is_new INTEGER NOT NULL DEFAULT 0;
    ",
    ),
    // 7: notifications and pings ride the delivery queue beside callbacks; a run's retries
    // (`retry_count`, run-level as in the API) apart from its requests' retries.
    Step::Sql(
        r"
    ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'callback';
    ALTER TABLE runs ADD COLUMN request_retries INTEGER NOT NULL DEFAULT 0;
    ",
    ),
    // 8: the account's credits as last read from the API, for `status` and `/metrics`.
    Step::Sql(
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
    ),
    // 9: the end of the billing period, as v1 `/quotas` tells it (402-blocked runs resume then).
    Step::Sql(
        r"
    ALTER TABLE account ADD COLUMN period_end TEXT;
    ",
    ),
    // 10: the seen-record keeps a 64-bit hash of each item's identity instead of its text.
    Step::Code(hash_seen_keys),
    // 11: unfinished runs by owner, so a tick batch counts other processes' runs without
    // reading its own (10,000 in flight took 2 ms of every batch under saturation).
    Step::Sql(
        r"
    CREATE INDEX runs_open_owner ON runs(owner) WHERE status IN ('CREATED', 'QUEUED', 'RUNNING');
    ",
    ),
    // 12: runs over a list of inputs: each input with its own cursor, counts and outcome, and
    // each page with the input it belongs to.
    Step::Sql(
        r"
    CREATE TABLE run_inputs (
        run_id        INTEGER NOT NULL REFERENCES runs(id),
        idx           INTEGER NOT NULL,
        input         TEXT NOT NULL,
        outcome       TEXT NOT NULL DEFAULT 'pending',
        next_url      TEXT,
        pages         INTEGER NOT NULL DEFAULT 0,
        items         INTEGER NOT NULL DEFAULT 0,
        error_label   TEXT,
        error_message TEXT,
        PRIMARY KEY (run_id, idx)
    ) WITHOUT ROWID;
    ALTER TABLE pages ADD COLUMN input_idx INTEGER;
    CREATE INDEX pages_input ON pages(run_id, input_idx, page_no);
    ",
    ),
    // 13: what an outreach job has sent from its lists, by input: each input at most once per
    // job, ever. A row is written in the transaction that lets its request go (`lane_enter`).
    Step::Sql(
        r"
    CREATE TABLE sent_inputs (
        job        TEXT NOT NULL,
        input      TEXT NOT NULL,
        run_id     INTEGER NOT NULL,
        input_idx  INTEGER NOT NULL,
        state      TEXT NOT NULL,
        at         TEXT NOT NULL,
        PRIMARY KEY (job, input)
    ) WITHOUT ROWID;
    ",
    ),
    // 14: chained jobs: each job's source (`inputs_from`) and the source's new items queued for
    // it, with what became of each; `after` links and the firings they write; each input of a
    // chained run with the item it came from.
    Step::Sql(
        r"
    CREATE TABLE chain_links (
        job    TEXT PRIMARY KEY,
        src    TEXT NOT NULL,
        since  TEXT NOT NULL
    );
    CREATE INDEX chain_links_src ON chain_links(src);
    CREATE TABLE chain_items (
        job         TEXT NOT NULL,
        key         INTEGER NOT NULL,
        src         TEXT NOT NULL,
        src_run_id  INTEGER NOT NULL,
        page_no     INTEGER NOT NULL,
        idx         INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        run_id      INTEGER,
        tries       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job, key)
    ) WITHOUT ROWID;
    CREATE INDEX chain_items_state ON chain_items(job, state, src_run_id, page_no, idx);
    CREATE INDEX chain_items_run ON chain_items(run_id) WHERE run_id IS NOT NULL;
    CREATE INDEX chain_items_src ON chain_items(src_run_id) WHERE state IN ('pending', 'held');
    CREATE TABLE after_links (
        job  TEXT PRIMARY KEY,
        src  TEXT NOT NULL
    );
    CREATE INDEX after_links_src ON after_links(src);
    CREATE TABLE firings (
        id          INTEGER PRIMARY KEY,
        job         TEXT NOT NULL,
        src_run_id  INTEGER NOT NULL,
        at          TEXT NOT NULL,
        outcome     TEXT,
        run_uid     TEXT
    );
    CREATE INDEX firings_open ON firings(id) WHERE outcome IS NULL;
    ALTER TABLE run_inputs ADD COLUMN src_key INTEGER;
    ",
    ),
    // 15: runs the vendor executes (async mode, received remote schedules): the API's uid, the
    // hash of the callback token, where completeness stands; each callback batch stored once;
    // the replays asked for; the tokens of received remote schedules.
    Step::Sql(
        r"
    CREATE TABLE async_runs (
        run_id        INTEGER PRIMARY KEY,
        api_uid       TEXT UNIQUE,
        token_hash    TEXT NOT NULL,
        sent_at       TEXT,
        heard_at      TEXT,
        closing       INTEGER NOT NULL DEFAULT 0,
        remote_status TEXT,
        lost          INTEGER NOT NULL DEFAULT 0,
        probe_failing_since TEXT
    );
    CREATE TABLE batches (
        run_id     INTEGER NOT NULL,
        batch_uid  TEXT NOT NULL,
        status     TEXT NOT NULL,
        page_no    INTEGER,
        items      INTEGER NOT NULL,
        how        TEXT NOT NULL,
        at         TEXT NOT NULL,
        PRIMARY KEY (run_id, batch_uid)
    ) WITHOUT ROWID;
    CREATE TABLE replays (
        run_id        INTEGER NOT NULL,
        callback_uid  TEXT NOT NULL,
        batch_uid     TEXT,
        count         INTEGER NOT NULL,
        at            TEXT NOT NULL,
        PRIMARY KEY (run_id, callback_uid)
    ) WITHOUT ROWID;
    CREATE TABLE receive_tokens (
        token_hash  TEXT PRIMARY KEY,
        job         TEXT NOT NULL,
        schedule    TEXT,
        until       TEXT
    );
    ",
    ),
];

/// The schema version this build knows.
pub const VERSION: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    migrate_to(conn, path, VERSION)
}

/// Migrates up to schema `version` (tests start from an older one).
pub(super) fn migrate_to(conn: &mut Connection, path: &Path, version: i64) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: VERSION,
        });
    }
    for (i, step) in STEPS
        .iter()
        .enumerate()
        .take(version as usize)
        .skip(found as usize)
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process (a `trigger` started beside a new daemon) may have taken this step
        // while this one waited for the write lock: the version is read again under it.
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        match step {
            Step::Sql(sql) => tx.execute_batch(sql)?,
            Step::Code(f) => f(&tx)?,
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The seen-record kept each item's identity as text (`k:<value>`, often a URL, or
/// `h:<hash>`): as large as the items themselves, and every stored page dirtied about one of
/// its index pages per item. It now keeps the text's 64-bit FNV-1a hash
/// ([`crate::catalog::item_key`]), a third of the size. Where two texts hash alike, the earlier
/// run's row stays.
fn hash_seen_keys(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE seen_hashed (
            job           TEXT NOT NULL,
            key           INTEGER NOT NULL,
            first_run_id  INTEGER NOT NULL,
            PRIMARY KEY (job, key)
        ) WITHOUT ROWID;",
    )?;
    {
        let mut read =
            tx.prepare("SELECT job, key, first_run_id FROM seen ORDER BY first_run_id")?;
        let mut write = tx.prepare(
            "INSERT OR IGNORE INTO seen_hashed (job, key, first_run_id) VALUES (?1, ?2, ?3)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let (job, key, first): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            write.execute(params![job, fnv64(key.as_bytes()).cast_signed(), first])?;
        }
    }
    tx.execute_batch("DROP TABLE seen; ALTER TABLE seen_hashed RENAME TO seen;")
}
