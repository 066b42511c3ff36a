//! What a newcomer meets in the first hour: trying a job against the simulator, errors that
//! point at the mistake, read commands that say what they could not find, help that explains.

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;

use crate::support::{PAGED, WAIT, job, serve, signal, watchbell};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `trigger --sandbox` needs no key and no account: the run goes to an in-process simulator,
/// lands in watchbell-sandbox.db (the real database is not created), pages as the catalog says,
/// and its deliveries go to loopback URLs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_sandbox_runs_a_job_of_ones_own_and_keeps_it_local() {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    let hook = serve(Router::new().route(
        "/hook",
        post(move |body: String| async move {
            seen.lock().unwrap().push(body);
            "ok"
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let toml = job("mine", "0 9 * * 1")
        .set("webhook", format!("{{ url = \"{hook}/hook\" }}"))
        .set(
            "notify",
            "{ url = \"https://hooks.example.com/x\", on = [\"SUCCEEDED\"] }",
        );
    std::fs::write(dir.path().join("schedules.toml"), toml.to_string()).unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&d)
            .args(["trigger", "mine", "--sandbox"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("notify to https://hooks.example.com/x not sent in sandbox mode"),
        "{stderr}"
    );
    assert!(dir.path().join("watchbell-sandbox.db").exists());
    assert!(!dir.path().join("watchbell.db").exists());
    // The sandbox pages as `watchbell actions` says a page holds.
    let actions = watchbell(dir.path())
        .args(["actions", PAGED])
        .output()
        .unwrap();
    let per_page: u64 = text(&actions.stdout)
        .split("paginated, ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("actions names the page size");
    assert!(
        stdout.contains(&format!("SUCCEEDED (3 pages, {} items)", 3 * per_page)),
        "{stdout}"
    );
    assert!(
        stdout.contains("look at it with: watchbell --db watchbell-sandbox.db runs show "),
        "{stdout}"
    );
    // The loopback webhook got the run's callbacks: one per page and the final one.
    assert_eq!(got.lock().unwrap().len(), 4, "{stderr}");
}

/// Read commands need the database, not the job file; `status` without the file shows what
/// the database holds and says next ticks need the file; `status JOB` of a UTC job prints each
/// time once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_works_from_the_database_alone_and_json_lines_say_nothing_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        job("mine", "20 7 * * *").to_string(),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&d)
            .args(["--db", "my.db", "trigger", "mine", "--sandbox"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let detail = watchbell(dir.path())
        .args(["status", "mine"])
        .output()
        .unwrap();
    let detail = text(&detail.stdout);
    let tick = detail
        .lines()
        .find(|l| l.contains("07:20:00"))
        .expect(&detail);
    assert_eq!(tick.matches("07:20:00").count(), 1, "{detail}");

    let elsewhere = tempfile::tempdir().unwrap();
    let db = dir.path().join("my.db");
    let db = db.to_str().unwrap();
    let out = watchbell(elsewhere.path())
        .args(["--db", db, "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("next ticks need it"),
        "{}",
        text(&out.stderr)
    );
    let line = text(&out.stdout);
    let line = line.lines().find(|l| l.starts_with("mine")).expect(&line);
    assert!(
        line.contains("(no job file)") && line.contains('S'),
        "{line}"
    );
    let out = watchbell(elsewhere.path())
        .args(["--db", db, "status", "mine"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("SUCCEEDED"));

    // JSON lines: no lane is no line, and a note on stderr says why.
    let out = watchbell(elsewhere.path())
        .args(["--db", db, "lanes", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("no identity lanes yet"));
    let out = watchbell(elsewhere.path())
        .args(["--db", db, "runs", "list", "--json"])
        .output()
        .unwrap();
    let runs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1);
}

/// One `check` shows every mistake of a job with a misspelt action (its input and parameters
/// held to the closest action), a cron error names the field and its range, and an unknown key
/// is pointed at, not its value.
#[test]
fn check_shows_every_mistake_in_one_pass_where_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        "[[job]]\nname = \"a\"\ncron = \"0 8 * * 1-8\"\naction = \"googlemaps-search-place\"\ninput = { google_maps_search_url = \"https://www.google.com/maps/search/x\" }\nparameters = { language = \"fr\", colour = \"red\" }\n",
    )
    .unwrap();
    let out = watchbell(dir.path()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(
        lines[0],
        "schedules.toml:3:8: cron: invalid expression \"0 8 * * 1-8\": day of week: 8 is outside 0-7"
    );
    assert!(
        lines[1].starts_with("schedules.toml:4:10: action:"),
        "{err}"
    );
    assert!(
        lines[2].starts_with(
            "schedules.toml:6:33: if you meant googlemaps-search-places: parameters: unknown parameter \"colour\""
        ),
        "{err}"
    );
}

/// Help explains every argument, names `man`, and shows paths without stray backticks.
#[test]
fn help_texts_describe_every_argument() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| text(&watchbell(dir.path()).args(args).output().unwrap().stdout);
    let top = help(&["--help"]);
    assert!(!top.contains('`'), "{top}");
    assert!(top.contains("$STATE_DIRECTORY/watchbell.db"), "{top}");
    assert!(top.contains("\n  man "), "{top}");
    assert!(top.contains("v1 endpoints"), "{top}");
    for (args, arg) in [
        (&["trigger", "--help"][..], "<JOB>  "),
        (&["status", "--help"], "[JOB]  "),
        (&["backfill", "--help"], "<JOB>  "),
        (&["runs", "show", "--help"], "<UID>  "),
        (&["runs", "results", "--help"], "<UID>  "),
        (&["runs", "resume", "--help"], "<UID>  "),
    ] {
        assert!(help(args).contains(arg), "{args:?}: {}", help(args));
    }
}

/// The standalone sandbox says when a signal stops it.
#[test]
fn the_standalone_sandbox_logs_its_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sandbox.log");
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("watchbell"))
        .arg("sandbox")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    signal(&child, "-TERM");
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("sandbox stopping") && log.contains("signal=\"SIGTERM\"")
            || log.contains("signal=SIGTERM"),
        "{log}"
    );
    assert!(log.contains("sandbox stopped"), "{log}");
}
