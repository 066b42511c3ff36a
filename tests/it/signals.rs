//! `watchbell run` as a real process: reload by SIGHUP, drain on SIGTERM, recovery after kill -9.

use std::collections::HashSet;
use std::time::Duration;

use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::RunFilter;

use crate::support::{
    WAIT, eventually, job, job_file, log, read, running_with_pages, sandbox, signal, spawn, ticks,
    wait_exit,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_keeps_the_schedule() {
    let sb = sandbox(Options {
        pages: 1,
        page_size: Some(1),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = job_file(
        &sb,
        &job("s", "* * * * * *").text("overlap", "allow").to_string(),
    );
    std::fs::write(d.join("schedules.toml"), &good).unwrap();
    let mut child = spawn(d, &sb, "err.log");
    eventually(WAIT, || async { ticks(d, "s") >= 2 }).await;
    std::fs::write(
        d.join("schedules.toml"),
        format!("{good}\n[[job]]\nname = \"Bad\"\n"),
    )
    .unwrap();
    signal(&child, "-HUP");
    eventually(WAIT, || async {
        log(d, "err.log").contains("reload rejected")
    })
    .await;
    let err = log(d, "err.log");
    let name_line = good.lines().count() + 3; // after a blank line and [[job]]
    assert!(
        err.contains(&format!("schedules.toml:{name_line}:8: name:")),
        "{err}"
    );
    let seen = ticks(d, "s");
    eventually(WAIT, || async { ticks(d, "s") >= seen + 2 }).await;
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_stops_what_is_left_and_exits_0() {
    let sb = sandbox(Options {
        pages: 30,
        page_size: Some(2),
        latency: Some(Duration::from_millis(200)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = &format!(
        "[daemon]\nshutdown_grace = \"1s\"\n{}",
        job("t", "* * * * * *")
    );
    let text = job_file(&sb, "").replace(
        "plan = \"highest\"\n",
        &format!("plan = \"highest\"\n{toml}"),
    );
    std::fs::write(d.join("schedules.toml"), text).unwrap();
    let mut child = spawn(d, &sb, "err.log");
    let running = || {
        read(d, |c| {
            c.list_runs(&RunFilter {
                status: Some(RunStatus::Running),
                ..RunFilter::default()
            })
            .unwrap_or_default()
        })
        .unwrap_or_default()
    };
    eventually(WAIT, || {
        let n = running().iter().filter(|r| r.pages >= 1).count();
        async move { n > 0 }
    })
    .await;
    signal(&child, "-TERM");
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "{}", log(d, "err.log"));
    let runs = read(d, |c| c.list_runs(&RunFilter::default()).unwrap()).unwrap();
    assert!(
        runs.iter().all(|r| r.status.is_final()),
        "a run was left unfinished"
    );
    let stopped: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Stopped)
        .collect();
    assert!(!stopped.is_empty());
    assert!(
        stopped.iter().all(|r| r.next_url.is_some()),
        "a stopped run lost its cursor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_run_then_restart_resumes_it_with_every_item_once() {
    let sb = sandbox(Options {
        pages: 8,
        page_size: Some(2),
        latency: Some(Duration::from_millis(150)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = &job("k", "* * * * * *").to_string();
    std::fs::write(d.join("schedules.toml"), job_file(&sb, toml)).unwrap();
    let mut child = spawn(d, &sb, "first.log");
    let victim = running_with_pages(d, 2).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let uid = victim.uid;
    let mut again = spawn(d, &sb, "second.log");
    let get = |uid: String| read(d, move |c| c.run(&uid).unwrap()).flatten();
    eventually(WAIT, || {
        let done = get(uid.clone()).is_some_and(|r| r.status == RunStatus::Succeeded);
        async move { done }
    })
    .await;
    let run = get(uid.clone()).unwrap();
    assert_eq!((run.pages, run.items), (8, 16));
    let (history, ids) = read(d, |c| {
        let h = c.transitions(run.id).unwrap();
        let mut ids = Vec::new();
        c.for_each_item(run.id, |v| {
            ids.push(v["id"].as_str().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        (h, ids)
    })
    .unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.to == "STOPPED" && h.reason.as_deref() == Some("owner_lost")),
        "{history:?}"
    );
    assert_eq!(ids.len(), 16);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 16);
    signal(&again, "-TERM");
    assert!(wait_exit(&mut again).await.success());
}
