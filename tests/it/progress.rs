//! `watchbell trigger` under a pseudo-terminal, as a person sees it: the progress line moves, and
//! Ctrl-C leaves a STOPPED run with its cursor that `runs resume` finishes.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use watchbell::sandbox::Options;
use watchbell::status::RunStatus;

use crate::support::{WAIT, eventually, job, job_file, read, sandbox, watchbell};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_on_a_terminal_draws_a_moving_progress_line_and_ctrl_c_leaves_a_resumable_run() {
    let sb = sandbox(Options {
        pages: 60,
        page_size: Some(2),
        latency: Some(Duration::from_millis(150)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = job_file(&sb, &job("t", "0 0 3 * * *").to_string());
    std::fs::write(d.join("schedules.toml"), file).unwrap();

    let (pty, pts) = pty_process::blocking::open().unwrap();
    pty.resize(pty_process::Size::new(24, 120)).unwrap();
    let mut child = pty_process::blocking::Command::new(assert_cmd::cargo::cargo_bin("watchbell"))
        .current_dir(d)
        .args(["trigger", "t"])
        .env("CAPTAIN_DATA_API_KEY", sb.api_key())
        .env("COLUMNS", "120")
        .env_remove("RUST_LOG")
        .spawn(pts)
        .unwrap();
    let pty = Arc::new(pty);
    let screen = Arc::new(Mutex::new(String::new()));
    let (from, into) = (pty.clone(), screen.clone());
    std::thread::spawn(move || {
        let mut buf = [0_u8; 4096];
        while let Ok(n) = (&*from).read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let seen = |s: &str| screen.lock().unwrap().contains(s);

    // The line is redrawn in place (carriage return, erase line) and its page count moves.
    eventually(WAIT, || async { seen("page 2 · 4 items") }).await;
    eventually(WAIT, || async { seen("page 5 · 10 items") }).await;
    assert!(seen("\r\x1b[2K"), "{}", screen.lock().unwrap());
    assert!(seen(" req/s · "), "{}", screen.lock().unwrap());

    (&*pty).write_all(b"\x03").unwrap();
    let mut status = None;
    eventually(WAIT, || {
        status = child.try_wait().unwrap();
        let done = status.is_some();
        async move { done }
    })
    .await;
    assert_eq!(status.unwrap().code(), Some(1), "STOPPED is not success");
    // Give the reader a moment to drain what the child wrote last.
    eventually(WAIT, || async { seen("resume with:") }).await;
    let text = screen.lock().unwrap().clone();
    let uid = text
        .split("run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("run {uid}: STOPPED")), "{text}");
    assert!(
        text.contains(&format!("resume with: watchbell runs resume {uid}")),
        "{text}"
    );
    let stopped = read(d, |r| r.run(&uid).unwrap().unwrap()).unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    assert!(
        stopped.pages >= 5 && stopped.pages < 60,
        "{}",
        stopped.pages
    );
    assert!(stopped.next_url.is_some(), "the cursor is kept");

    // Off a terminal, the same run resumes from its cursor to the end.
    let base = d.to_path_buf();
    let key = sb.api_key().to_string();
    let out = tokio::task::spawn_blocking(move || {
        watchbell(&base)
            .env("CAPTAIN_DATA_API_KEY", key)
            .args(["runs", "resume", &uid])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("SUCCEEDED (60 pages, 120 items)"),
        "{stdout}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "no progress line off a terminal"
    );
}
