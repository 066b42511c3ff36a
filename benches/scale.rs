//! Scale: what a daemon with N idle jobs costs. For 1,000, 10,000 and 100,000 distinct jobs in
//! four zones (none due during the measurement), the release binary is started as
//! `watchbell run --sandbox` with a notify socket, and the benchmark prints:
//! - READY: from spawn to systemd's `READY=1` (validation against the catalog included);
//! - `check`: the wall time of `watchbell check` on the same file;
//! - resident memory (`VmRSS`) once ready, and its cost per job over an empty file's;
//! - idle CPU over `SCALE_IDLE_SECS` (default 60), from `/proc/PID/task/*/schedstat`.
//!
//! Every figure is also printed against the same daemon with no job (the baseline, measured in
//! the same run) and against the goals: READY 100 ms, 32 MiB and 0.02% of a core at 10,000 jobs.
//!
//! Run: `cargo bench --bench scale` (`SCALE_SIZES=1000,10000` to pick sizes, `SCALE_BIN` to
//! measure another build's binary).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ZONES: [&str; 4] = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"];

/// A job file of `n` distinct jobs that will not fire for months.
fn job_file(jobs: usize) -> String {
    use chrono::Datelike;
    use std::fmt::Write as _;
    let month = (watchbell::clock::Clock::System.now().month() + 5) % 12 + 1; // half a year away
    let mut out = String::from("[daemon]\nmax_concurrent_runs = 4\n");
    for i in 0..jobs {
        let (minute, hour, day) = (i % 60, (i / 60) % 24, (i / 1440) % 28 + 1);
        let _ = write!(
            out,
            "\n[[job]]\nname = \"job-{i}\"\ncron = \"{minute} {hour} {day} {month} *\"\ntimezone = \"{}\"\naction = \"googlemaps-search-places\"\ninput = {{ google_maps_search_url = \"https://www.google.com/maps/search/place+{i}\" }}\n",
            ZONES[i % 4]
        );
    }
    out
}

struct Figures {
    ready: Duration,
    check: Duration,
    rss_kib: u64,
    idle_share: f64,
}

/// The binary measured: this build's, or `SCALE_BIN` (another build, e.g. an older commit's, so
/// two builds are compared in one run on one machine).
fn bin() -> String {
    std::env::var("SCALE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_watchbell").to_string())
}

/// CPU nanoseconds of every thread of `pid` so far.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn measure(dir: &Path, n: usize, idle: Duration) -> Figures {
    std::fs::write(dir.join("schedules.toml"), job_file(n)).unwrap();
    let start = Instant::now();
    let check = Command::new(bin())
        .current_dir(dir)
        .arg("check")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(check.success(), "check refused the generated file");
    let check = start.elapsed();
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_mins(2))).unwrap();
    let start = Instant::now();
    let mut child: Child = Command::new(bin())
        .current_dir(dir)
        .args(["run", "--sandbox"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let ready = loop {
        let len = sock.recv(&mut buf).expect("READY=1 within two minutes");
        if String::from_utf8_lossy(&buf[..len]).contains("READY=1") {
            break start.elapsed();
        }
    };
    std::thread::sleep(Duration::from_secs(2)); // settle: the first credits read, the first sync
    let pid = child.id();
    let rss = rss_kib(pid);
    let (cpu0, t0) = (cpu_ns(pid), Instant::now());
    std::thread::sleep(idle);
    let (cpu1, t1) = (cpu_ns(pid), Instant::now());
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    Figures {
        ready,
        check,
        rss_kib: rss,
        idle_share: (cpu1 - cpu0) as f64 / (t1 - t0).as_nanos() as f64,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES").ok().map_or_else(
        || vec![1_000, 10_000, 100_000],
        |s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
    );
    let idle = Duration::from_secs(
        std::env::var("SCALE_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let dir = tempfile::tempdir().unwrap();
    let base = measure(dir.path(), 0, idle);
    println!(
        "scale: idle daemon (run --sandbox), idle CPU over {}s; goals at 10,000 jobs: READY <= 100 ms, RSS <= 32 MiB, idle <= 0.02% of a core",
        idle.as_secs()
    );
    println!(
        "{:>8} {:>10} {:>10} {:>9} {:>12} {:>12} {:>11}",
        "jobs", "READY ms", "check ms", "RSS MiB", "B/job (RSS)", "idle % core", "vs no jobs"
    );
    let row = |n: usize, f: &Figures| {
        let per_job = if n == 0 {
            "-".to_string()
        } else {
            format!(
                "{}",
                (f.rss_kib.saturating_sub(base.rss_kib) * 1024) / n as u64
            )
        };
        println!(
            "{:>8} {:>10.1} {:>10.1} {:>9.1} {:>12} {:>12.4} {:>10.2}x",
            n,
            f.ready.as_secs_f64() * 1000.0,
            f.check.as_secs_f64() * 1000.0,
            f.rss_kib as f64 / 1024.0,
            per_job,
            f.idle_share * 100.0,
            f.idle_share / base.idle_share.max(1e-9)
        );
    };
    row(0, &base);
    for &n in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let f = measure(dir.path(), n, idle);
        row(n, &f);
        if n == 10_000 {
            println!(
                "         at 10,000 jobs vs goals: READY {:.2}x of 100 ms, RSS {:.2}x of 32 MiB, idle {:.2}x of 0.02%",
                f.ready.as_secs_f64() / 0.1,
                f.rss_kib as f64 / (32.0 * 1024.0),
                f.idle_share / 0.0002
            );
        }
    }
}
