use super::runs::*;
use super::ticks::*;
use super::*;
use crate::status::RunStatus::*;

fn t(s: &str) -> DateTime<Utc> {
    parse_ts(s).unwrap()
}

fn new_run(job: &str) -> NewRun {
    NewRun {
        job: job.into(),
        action_name: "act".into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        body: serde_json::json!({"input": {"q": 1}}).to_string(),
        callback_url: None,
        owner: None,
    }
}

fn page(items: &[String]) -> PageToStore<'_> {
    PageToStore {
        page_no: 1,
        url: "http://x/1",
        items,
        keys: &[],
        content_hash: "0",
        next_url: Some("http://x/2"),
        callback: None,
        input: None,
    }
}

/// The store under test: `SQLite` in `dir`, or with `WATCHBELL_TEST_STORE=postgres` a new
/// database on the `PostgreSQL` at `WATCHBELL_TEST_PG_URL` (`.ci/run` runs these tests both ways).
///
/// On `PostgreSQL` the store leads (node `unit`, epoch 1), so every write the suite makes is
/// fenced as a leader's are.
fn open(dir: &tempfile::TempDir) -> Store {
    match on_postgres() {
        Some(admin) => {
            let target = fresh_database(&admin);
            let s = Store::open_postgres(&target, DEFAULT_PATIENCE).unwrap();
            lead(&target, "unit", 1);
            block_on(s.set_fence(Some(("unit".into(), 1)))).unwrap();
            s
        }
        None => open_lite(dir),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The writer's `SQLite` pragma `name`.
fn pragma(s: &Store, name: &'static str) -> i64 {
    s.call_blocking(move |c| {
        Ok(c.as_lite()
            .expect("a SQLite store")
            .pragma_query_value(None, name, |r| r.get(0))?)
    })
    .unwrap()
}

/// Makes `node` the leader of `target`'s cluster under `epoch`, for an hour.
fn lead(target: &pg::Target, node: &str, epoch: i64) {
    block_on(async {
        let c = pg::connect(target).await.unwrap();
        c.execute(
            "UPDATE watchbell_leader SET holder = $1, epoch = $2,
               expires_at = clock_timestamp() + interval '1 hour'",
            &[&node, &epoch],
        )
        .await
        .unwrap();
    });
}

/// A leader's writes are fenced by its epoch: once another node took the lead, a write is
/// refused, nothing of it lands, and the store says the lead is lost.
#[test]
fn a_write_after_the_lead_moved_is_refused_whole() {
    let Some(admin) = on_postgres() else {
        return; // PostgreSQL only: SQLite has one daemon per database
    };
    let target = fresh_database(&admin);
    let s = Store::open_postgres(&target, DEFAULT_PATIENCE).unwrap();
    lead(&target, "a", 1);
    block_on(s.set_fence(Some(("a".into(), 1)))).unwrap();
    let now = t("2026-01-01T00:00:00Z");
    s.call_blocking(move |c| create_run(c, &new_run("j"), now))
        .unwrap();
    lead(&target, "b", 2);
    let err = s
        .call_blocking(move |c| create_run(c, &new_run("j"), now))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Sql(db::DbError::Fenced { epoch: 1, .. })),
        "{err}"
    );
    assert!(!err.is_transient());
    block_on(async {
        tokio::time::timeout(Duration::from_secs(5), s.health().lost_lead())
            .await
            .expect("the store said the lead was lost");
    });
    let runs = s
        .call_blocking(|c| list_runs(c, &RunFilter::default()))
        .unwrap_err();
    assert!(matches!(runs, StoreError::Sql(db::DbError::Fenced { .. })));
    // Unfenced (a standby reads), the one run of epoch 1 is all there is.
    block_on(s.set_fence(None)).unwrap();
    let runs = s
        .call_blocking(|c| list_runs(c, &RunFilter::default()))
        .unwrap();
    assert_eq!(runs.len(), 1);
}

/// For what only `SQLite` has (its file, pragmas, WAL).
fn open_lite(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("w.db")).unwrap()
}

/// The administrative target when this run tests the `PostgreSQL` backend.
fn on_postgres() -> Option<pg::Target> {
    if std::env::var("WATCHBELL_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    let url = std::env::var("WATCHBELL_TEST_PG_URL")
        .expect("WATCHBELL_TEST_STORE=postgres needs WATCHBELL_TEST_PG_URL");
    Some(pg::Target::parse(&url).unwrap())
}

/// A new, empty database on `admin`'s server, for one test.
fn fresh_database(admin: &pg::Target) -> pg::Target {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "wb_unit_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    block_on(async {
        let c = pg::connect(admin).await.unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    admin.database(&name)
}

#[test]
fn legal_transitions_are_recorded_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    assert_eq!(run.status, Created);
    let uid = run.uid.clone();
    for (to, why) in [
        (Queued, "slot"),
        (Running, "go"),
        (Stopped, "shutdown"),
        (Queued, "resume"),
    ] {
        let uid = uid.clone();
        let r = s
            .call_blocking(move |c| transition(c, &uid, to, why, None, now))
            .unwrap();
        assert_eq!(r.status, to);
    }
    let history = s
        .call_blocking(move |c| {
            let r = get_run(c, &uid)?.unwrap();
            transitions(c, r.id)
        })
        .unwrap();
    let moves: Vec<_> = history
        .iter()
        .map(|h| {
            format!(
                "{:?}->{} ({})",
                h.from,
                h.to,
                h.reason.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            "None->CREATED (manual)",
            "Some(\"CREATED\")->QUEUED (slot)",
            "Some(\"QUEUED\")->RUNNING (go)",
            "Some(\"RUNNING\")->STOPPED (shutdown)",
            "Some(\"STOPPED\")->QUEUED (resume)"
        ]
    );
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    let uid = run.uid.clone();
    let err = s
        .call_blocking(move |c| transition(c, &uid, Succeeded, "x", None, now))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: Created,
                to: Succeeded,
                ..
            }
        ),
        "{err}"
    );
    let uid = run.uid.clone();
    let still = s.call_blocking(move |c| get_run(c, &uid)).unwrap().unwrap();
    assert_eq!(still.status, Created);
}

#[test]
fn a_page_stored_twice_is_refused_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    let items = vec![r#"{"id":1}"#.to_string(), r#"{"id":2}"#.to_string()];
    let (uid, it) = (run.uid.clone(), items.clone());
    s.call_blocking(move |c| store_page(c, &uid, &page(&it), now))
        .unwrap();
    let (uid, it) = (run.uid.clone(), items.clone());
    let err = s
        .call_blocking(move |c| store_page(c, &uid, &page(&it), now))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PageAlreadyStored { page: 1, .. }),
        "{err}"
    );
    let uid = run.uid.clone();
    let r = s.call_blocking(move |c| get_run(c, &uid)).unwrap().unwrap();
    assert_eq!((r.pages, r.items), (1, 2));
    assert_eq!(r.next_url.as_deref(), Some("http://x/2"));
}

#[test]
fn reopening_keeps_everything_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let now = t("2026-01-01T00:00:00Z");
    let uid = {
        let s = open_lite(&dir);
        let r = s
            .call_blocking(move |c| create_run(c, &new_run("a"), now))
            .unwrap();
        s.call_blocking(move |c| skip_tick(c, "a", now, SkipReason::Overlap))
            .unwrap();
        r.uid
    };
    let s = open_lite(&dir);
    let version: i64 = pragma(&s, "user_version");
    assert_eq!(version, schema::VERSION);
    let u = uid.clone();
    assert!(s.call_blocking(move |c| get_run(c, &u)).unwrap().is_some());
    let ticks = s.call_blocking(|c| list_ticks(c, None, None)).unwrap();
    assert_eq!(ticks.len(), 1);
    // A third open over a current database is a no-op, and read-only opening works beside it.
    drop(open_lite(&dir));
    let ro = open_read_only(&dir.path().join("w.db")).unwrap();
    assert_eq!(ro.list_runs(&RunFilter::default()).unwrap().len(), 1);
}

#[test]
fn a_tick_is_fired_at_most_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let nominal = t("2026-01-01T00:00:00Z");
    let mut nr = new_run("a");
    nr.trigger = Trigger::Tick;
    nr.scheduled_for = Some(nominal);
    let nr2 = nr.clone();
    let fire =
        |nr: NewRun| move |c: &mut Db| record_ticks(c, &[], &[(nominal, nr.clone())], nominal);
    let first = s.call_blocking(fire(nr)).unwrap();
    assert!(first.fired[0].is_some());
    let second = s.call_blocking(fire(nr2)).unwrap();
    assert!(second.fired[0].is_none());
    assert!(
        !s.call_blocking(move |c| skip_tick(c, "a", nominal, SkipReason::Overlap))
            .unwrap()
    );
    let runs = s
        .call_blocking(|c| list_runs(c, &RunFilter::default()))
        .unwrap();
    assert_eq!(runs.len(), 1);
}

#[test]
fn uids_look_like_uuids_and_differ() {
    let now = t("2026-01-01T00:00:00Z");
    let (a, b) = (new_uid(now), new_uid(now));
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
}

#[test]
fn the_json_form_has_the_api_run_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let r = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    let j = r.to_json();
    for key in [
        "id",
        "uid",
        "action_id",
        "action_name",
        "retry_count",
        "user_uid",
        "workspace_uid",
        "execution_mode",
        "last_error",
        "callback",
        "status",
        "postponed_until",
        "started_at",
        "finished_at",
        "synced_at",
        "created_at",
        "updated_at",
        "job",
        "scheduled_for",
        "pages",
        "items",
        "trigger",
    ] {
        assert!(j.get(key).is_some(), "missing {key}");
    }
    assert_eq!(j["status"], "CREATED");
}

#[test]
fn the_wal_is_copied_back_by_the_checkpointer_not_inside_the_writers_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_lite(&dir);
    let auto: i64 = pragma(&s, "wal_autocheckpoint");
    assert_eq!(auto, 0, "the writer leaves checkpoints to the checkpointer");
    let main = dir.path().join("w.db");
    let before = std::fs::metadata(&main).unwrap().len();
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    // About 2 MB of items: written to the WAL by the writer, then copied back.
    let items: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"id":{i},"text":"{}"}}"#, "x".repeat(1000)))
        .collect();
    let uid = run.uid.clone();
    s.call_blocking(move |c| store_page(c, &uid, &page(&items), now))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&main).unwrap().len() < before + 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file never took the WAL's pages"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn schema_10_keeps_each_jobs_seen_items_as_hashes_of_the_same_identities() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut c = rusqlite::Connection::open(&path).unwrap();
    schema::migrate_to(&mut c, &path, 9).unwrap();
    c.execute_batch(
        "INSERT INTO seen (job, key, first_run_id) VALUES ('j', 'k:u-1', 7), ('other', 'k:u-2', 8)",
    )
    .unwrap();
    drop(c);
    let s = open_lite(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("j"), now))
        .unwrap();
    let values = [
        serde_json::json!({"uid": "u-1"}),
        serde_json::json!({"uid": "u-2"}),
    ];
    let items: Vec<String> = values.iter().map(ToString::to_string).collect();
    let keys = crate::catalog::item_keys("act", &values, &items);
    let (uid, id) = (run.uid.clone(), run.id);
    s.call_blocking(move |c| {
        let p = PageToStore {
            keys: &keys,
            ..page(&items)
        };
        store_page(c, &uid, &p, now)
    })
    .unwrap();
    let (new, kind): (Vec<bool>, String) = s
        .call_blocking(move |c| {
            let mut q = c.prepare("SELECT is_new FROM items WHERE run_id = ?1 ORDER BY idx")?;
            let new = q
                .query_map([id], |r| r.get(0))?
                .collect::<super::db::Result<_>>()?;
            let kind = c.query_row("SELECT typeof(key) FROM seen LIMIT 1", (), |r| r.get(0))?;
            Ok((new, kind))
        })
        .unwrap();
    assert_eq!(
        new,
        [false, true],
        "u-1 was seen by j; u-2 only by another job"
    );
    assert_eq!(kind, "integer");
}

#[test]
fn runs_elsewhere_are_counted_from_the_open_runs_index_not_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_lite(&dir);
    let plan: Vec<String> = s
        .call_blocking(|c| {
            let mut q = c.prepare(&format!("EXPLAIN QUERY PLAN {OPEN_ELSEWHERE}"))?;
            let rows = q.query_map(["me", "2026-01-01T00:00:00.000Z"], |r| r.get(3))?;
            Ok(rows.collect::<super::db::Result<_>>()?)
        })
        .unwrap();
    assert!(
        plan.iter().any(|d| d.contains("runs_open_owner")),
        "{plan:?}"
    );
    let now = t("2026-01-01T00:00:00Z");
    for (job, owner) in [("a", "me"), ("a", "other"), ("b", "other"), ("c", "me")] {
        let mut new = new_run(job);
        new.owner = Some(owner.into());
        s.call_blocking(move |c| create_run(c, &new, now)).unwrap();
    }
    let counts = s
        .call_blocking(move |c| open_runs_elsewhere(c, "me", now))
        .unwrap();
    assert_eq!(counts, [("a".into(), 1), ("b".into(), 1)].into());
}

/// A run of job `src` that stored one page: an item `{"k": KEY}` for each of `keys`, each
/// keyed by its number.
fn source_run(s: &Store, keys: Vec<u64>, now: DateTime<Utc>) -> RunRecord {
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("src"), now))
        .unwrap();
    let uid = run.uid.clone();
    let items: Vec<String> = keys.iter().map(|k| format!("{{\"k\":{k}}}")).collect();
    s.call_blocking(move |c| {
        let p = PageToStore {
            keys: &keys,
            ..page(&items)
        };
        store_page(c, &uid, &p, now)
    })
    .unwrap();
    run
}

/// Makes `job` take the new items of `src` from `now` on (or its whole history, `backlog`).
fn link(s: &Store, job: &str, backlog: bool, now: DateTime<Utc>) {
    let link = ChainLink {
        job: job.into(),
        src: "src".into(),
        backlog,
    };
    s.call_blocking(move |c| chain::set_links(c, std::slice::from_ref(&link), &[], now))
        .unwrap();
}

/// A chained job's tick with nothing waiting from its source is skipped `no_inputs`; one
/// after its source stored new items fires. Items its source stored before the job appeared
/// are not its inputs (no `backlog`), and an item new to the source is queued once.
#[test]
fn a_chained_tick_fires_only_when_its_source_stored_something_new() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    source_run(&s, vec![1, 2], now); // before the chain existed
    link(&s, "dst", false, now);
    let tick = |s: &Store, at: &str| {
        let nominal = t(at);
        let nr = new_run("dst");
        s.call_blocking(move |c| record_ticks(c, &[], &[(nominal, nr.clone())], nominal))
            .unwrap()
            .fired
            .pop()
            .unwrap()
    };
    assert_eq!(tick(&s, "2026-01-01T01:00:00Z"), None);
    let skipped = s
        .call_blocking(|c| list_ticks(c, Some("dst"), None))
        .unwrap();
    assert_eq!(skipped[0].reason, Some(SkipReason::NoInputs));
    source_run(&s, vec![2, 3, 3], now); // 2 is not new to the source; 3 is, once
    assert_eq!(s.call_blocking(|c| chain::pending(c, "dst")).unwrap(), 1);
    assert!(tick(&s, "2026-01-01T02:00:00Z").is_some());
}

/// Prune keeps a source run whose items a chained job has not consumed or failed yet, and
/// keeps the job's record of what it consumed once the run goes.
#[test]
fn prune_keeps_what_a_chain_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    link(&s, "dst", false, now);
    let mut runs = Vec::new();
    for key in [7u64, 8] {
        let run = source_run(&s, vec![key], now);
        let uid = run.uid.clone();
        s.call_blocking(move |c| {
            transition(c, &uid, Queued, "go", None, now)?;
            transition(c, &uid, Running, "go", None, now)?;
            transition(c, &uid, Succeeded, "done", None, now).map(|_| ())
        })
        .unwrap();
        runs.push(run.id);
    }
    let later = t("2026-02-01T00:00:00Z");
    let pruned = s
        .call_blocking(move |c| prune::prune(c, later, false))
        .unwrap();
    assert_eq!(
        pruned.runs, 0,
        "the first run holds an item dst has not taken"
    );
    let first = runs[0];
    s.call_blocking(move |c| {
        c.execute(
            "UPDATE chain_items SET state = 'consumed' WHERE src_run_id = ?1",
            [first],
        )?;
        Ok(())
    })
    .unwrap();
    let pruned = s
        .call_blocking(move |c| prune::prune(c, later, false))
        .unwrap();
    assert_eq!(pruned.runs, 1);
    let report = s.call_blocking(|c| chain::report(c, "dst")).unwrap();
    assert_eq!((report.consumed, report.pending), (1, 1));
}

/// A chained run holds what waits; an input that succeeds consumes its item; the run's end
/// releases the rest (pending again, failed after three runs) and marks those inputs released.
#[test]
fn a_chained_run_consumes_what_succeeded_and_releases_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    link(&s, "dst", false, now);
    source_run(&s, vec![10, 11, 12], now);
    // A run of a job with inputs_from, as the job file makes it.
    let chained = NewRun {
        body:
            serde_json::json!({"inputs_from": {"job": "src", "map": {"q": "k"}, "backlog": false}})
                .to_string(),
        ..new_run("dst")
    };
    for attempt in 1..=3 {
        let chained = chained.clone();
        let run = s
            .call_blocking(move |c| create_run(c, &chained, now))
            .unwrap();
        let id = run.id;
        let taken = s
            .call_blocking(move |c| chain::take(c, id, "dst", &|text: &str| Ok(text.to_string())))
            .unwrap();
        assert_eq!(taken, if attempt == 1 { 3 } else { 2 });
        if attempt == 1 {
            s.call_blocking(move |c| {
                super::inputs::set_outcome(c, id, 0, InputOutcome::Succeeded, None)
            })
            .unwrap();
        }
        let uid = run.uid.clone();
        s.call_blocking(move |c| {
            transition(c, &uid, Queued, "go", None, now)?;
            transition(c, &uid, Running, "go", None, now)?;
            transition(c, &uid, Failed, "gave up", None, now).map(|_| ())
        })
        .unwrap();
        let outcomes = s
            .call_blocking(move |c| super::inputs::list(c, id))
            .unwrap();
        assert!(
            outcomes
                .iter()
                .filter(|i| i.outcome != InputOutcome::Succeeded)
                .all(|i| i.outcome == InputOutcome::Released)
        );
    }
    let report = s.call_blocking(|c| chain::report(c, "dst")).unwrap();
    assert_eq!((report.consumed, report.failed, report.pending), (1, 2, 0));
}

/// With `backlog = true`, a chained job also takes what its source stored before it appeared.
#[test]
fn a_backlog_takes_the_sources_history() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    source_run(&s, vec![1, 2, 2], now);
    let links = [
        ChainLink {
            job: "late".into(),
            src: "src".into(),
            backlog: false,
        },
        ChainLink {
            job: "all".into(),
            src: "src".into(),
            backlog: true,
        },
    ];
    s.call_blocking(move |c| chain::set_links(c, &links, &[], now))
        .unwrap();
    let pending = |job: &'static str| s.call_blocking(move |c| chain::pending(c, job)).unwrap();
    assert_eq!((pending("late"), pending("all")), (0, 2));
}

fn batch(api: &str, uid: &str, status: &str, items: usize) -> batches::Batch {
    batches::Batch {
        api_uid: api.into(),
        batch_uid: uid.into(),
        status: status.into(),
        items: (0..items)
            .map(|i| serde_json::json!({"uid": format!("{uid}-{i}")}))
            .collect(),
        body: serde_json::json!({}),
    }
}

#[test]
fn a_late_batch_is_stored_and_the_lost_count_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:00:00Z");
    let run = s
        .call_blocking(move |c| create_run(c, &new_run("a"), now))
        .unwrap();
    let uid = run.uid.clone();
    let done = s
        .call_blocking(move |c| {
            batches::mark_sent(c, &uid, "h", now)?;
            assert_eq!(
                batches::receive(c, &uid, &batch("api", "b1", "RUNNING", 2), now)?,
                batches::Received::Stored {
                    page: Some(1),
                    items: 2,
                    job: "a".into()
                }
            );
            assert_eq!(
                batches::receive(c, &uid, &batch("api", "b1", "RUNNING", 2), now)?,
                batches::Received::Repeat
            );
            assert_eq!(
                batches::receive(c, &uid, &batch("other", "b9", "RUNNING", 1), now)?,
                batches::Received::OtherRun
            );
            let lost = LastError {
                label: batches::LOST_LABEL.into(),
                message: batches::lost_message(2),
            };
            batches::finish(
                c,
                &uid,
                (PartialSucceeded, "callbacks_lost"),
                Some(&lost),
                2,
                now,
            )?;
            batches::receive(c, &uid, &batch("api", "b2", "RUNNING", 1), now)?;
            Ok(get_run(c, &uid)?.unwrap())
        })
        .unwrap();
    assert_eq!(
        (done.status, done.pages, done.items),
        (PartialSucceeded, 2, 3)
    );
    assert_eq!(done.last_error.unwrap().message, "callbacks_lost 1");
    let uid = run.uid.clone();
    let st = s
        .call_blocking(move |c| batches::state(c, &uid))
        .unwrap()
        .unwrap();
    assert_eq!(st.lost, 1);
    let id = run.id;
    let hows: Vec<String> = s
        .call_blocking(move |c| batches::batches(c, id))
        .unwrap()
        .into_iter()
        .map(|b| b.how)
        .collect();
    assert_eq!(hows, ["received", "late"]);
}

#[test]
fn a_remote_run_takes_its_tick_once_and_a_tick_without_one_is_remote_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = t("2026-01-01T00:10:00Z");
    let (m0, m1) = (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:01:00Z"));
    let remote = |nominal| NewRun {
        trigger: Trigger::Remote,
        scheduled_for: Some(nominal),
        owner: Some(batches::ASYNC_OWNER.into()),
        ..new_run("r")
    };
    let notes = s
        .call_blocking(move |c| {
            let n = batches::not_run(c, "r", &[m0, m1])?;
            assert_eq!(n, 2);
            let (a, first) = batches::adopt_remote(c, &remote(m1), ("api-1", "h"), now)?;
            let (again, _) = batches::adopt_remote(c, &remote(m1), ("api-1", "h"), now)?;
            assert_eq!(a, again, "one local run per API run");
            let (_, second) = batches::adopt_remote(c, &remote(m1), ("api-2", "h"), now)?;
            Ok((first, second, list_ticks(c, Some("r"), None)?))
        })
        .unwrap();
    assert_eq!(
        (notes.0, notes.1),
        (batches::TickNote::Fired, batches::TickNote::Extra)
    );
    let outcomes: Vec<(String, Option<SkipReason>)> = notes
        .2
        .iter()
        .map(|t| (t.outcome.clone(), t.reason))
        .collect();
    assert!(outcomes.contains(&("skipped".into(), Some(SkipReason::RemoteNotRun))));
    assert!(outcomes.contains(&("fired".into(), None)));
}

/// The daemon's memory does not follow the database's size: the writer's page cache is bounded
/// at [`WRITER_CACHE_KIB`] (SQLite's default, about 2 MiB a connection, was what the soak's hour
/// saw climbing after every start), and a long-lived reader can be bounded too.
#[test]
fn page_caches_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_lite(&dir);
    let writer: i64 = pragma(&s, "cache_size");
    assert_eq!(writer, -WRITER_CACHE_KIB);
    let ro = open_read_only(&dir.path().join("w.db")).unwrap();
    ro.bound_cache(SIDE_CACHE_KIB).unwrap();
    assert_eq!(
        ro.conn
            .as_lite()
            .unwrap()
            .pragma_query_value(None, "cache_size", |r| r.get::<_, i64>(0))
            .unwrap(),
        -SIDE_CACHE_KIB
    );
}

/// Times other processes compare come from the database's clock on `PostgreSQL` (measured at
/// connect and at each fence check), from the test's clock whenever a test sets one, and on
/// `SQLite` from the node's own.
#[test]
fn shared_times_follow_the_databases_clock_and_a_test_clock_stays() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let (clock, _hand) = crate::clock::Clock::test(t("2026-01-01T00:00:00Z"));
    assert_eq!(s.now(&clock), t("2026-01-01T00:00:00Z"));
    // A fenced write refreshes the measure.
    s.call_blocking(|c| c.fenced(|c| create_run(c, &new_run("a"), t("2026-01-01T00:00:00Z"))))
        .unwrap();
    let system = crate::clock::Clock::System;
    let db: DateTime<Utc> = s
        .call_blocking(|c| {
            if c.is_postgres() {
                let at: f64 =
                    c.query_row(&format!("SELECT {}", pg::offset::NOW), (), |r| r.get(0))?;
                Ok(DateTime::from_timestamp_micros((at * 1e6) as i64).unwrap())
            } else {
                Ok(crate::clock::Clock::System.now())
            }
        })
        .unwrap();
    let ours = s.now(&system);
    let apart = (ours - db).num_milliseconds().abs();
    assert!(apart < 250, "{ours} is {apart} ms from the database's {db}");
}
