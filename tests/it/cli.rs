//! The read-only commands, as a user types them.

use crate::support::watchbell;

#[test]
fn check_accepts_the_shipped_job_file() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = watchbell(repo.as_ref()).arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_names_every_mistake_with_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        "[[job]]\nname = \"Bad Name\"\ncron = \"* * 32 * *\"\naction = \"x\"\ntimezone = \"Europe/Pariss\"\n",
    )
    .unwrap();
    let out = watchbell(dir.path()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with("schedules.toml:2:8: name:"), "{err}");
    assert!(lines[1].starts_with("schedules.toml:3:8: cron:"), "{err}");
    assert!(
        lines[2].starts_with("schedules.toml:4:10: action: \"x\" is not in the action catalog"),
        "{err}"
    );
    assert!(
        lines[3].starts_with("schedules.toml:5:12: timezone:"),
        "{err}"
    );
}

#[test]
fn check_without_a_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = watchbell(dir.path()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn next_shifts_the_paris_spring_gap_and_marks_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = watchbell(dir.path())
        .args(["next", "--cron", "30 2 * * *", "--timezone", "Europe/Paris"])
        .args(["--after", "2026-03-28T00:00:00Z", "-n", "3", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let fires: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String)> = fires
        .iter()
        .map(|f| {
            (
                f["local"].as_str().unwrap().to_string(),
                f["dst"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2026-03-28T02:30:00+01:00".to_string(), "null".to_string()),
            (
                "2026-03-29T03:00:00+02:00".to_string(),
                "\"gap\"".to_string()
            ),
            ("2026-03-30T02:30:00+02:00".to_string(), "null".to_string()),
        ]
    );
    assert!(fires.iter().all(|f| f["job"].is_null()));
}

#[test]
fn next_rejects_a_bad_expression_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = watchbell(dir.path())
        .args(["next", "--cron", "0 25 * * *"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A read command where there is no database says so and exits 1: an empty answer would hide
/// a typo in `--db` or the wrong directory.
#[test]
fn read_commands_on_a_database_that_is_not_there_say_so_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["runs", "list"][..],
        &["--db", "nonexist.db", "runs", "list"],
        &["--db", "nonexist.db", "runs", "list", "--json"],
        &["--db", "nonexist.db", "ticks"],
        &["--db", "nonexist.db", "export"],
        &["--db", "nonexist.db", "runs", "show", "x"],
        &["--db", "nonexist.db", "lanes"],
        &["--db", "nonexist.db", "lanes", "resume", "workspace"],
        &["--db", "nonexist.db", "status"],
    ] {
        let out = watchbell(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("no database at "),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What `cargo deb` packages: every asset exists, the job file it installs under /etc does
/// nothing until edited, and the unit it installs starts the packaged binary only with a key.
#[test]
fn the_debian_package_installs_an_inert_job_file_and_a_unit_that_wants_a_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut targets = Vec::new();
    for asset in assets {
        let [from, to, _mode] = asset.as_array().unwrap().as_slice() else {
            panic!("an asset is [source, target, mode]: {asset}");
        };
        let from = from.as_str().unwrap();
        if !from.starts_with("target/") {
            assert!(root.join(from).is_file(), "{from} is packaged but missing");
        }
        targets.push(to.as_str().unwrap());
    }
    for wanted in [
        "usr/bin/",
        "usr/lib/systemd/system/watchbell.service",
        "etc/watchbell/schedules.toml",
        "usr/share/bash-completion/completions/watchbell",
        "usr/share/zsh/vendor-completions/_watchbell",
        "usr/share/fish/vendor_completions.d/watchbell.fish",
        "usr/share/man/man1/watchbell.1",
    ] {
        assert!(targets.contains(&wanted), "{wanted} is not packaged");
    }
    assert_eq!(
        deb["conf-files"].as_array().unwrap()[0].as_str(),
        Some("/etc/watchbell/schedules.toml")
    );
    // No systemd-units table: nothing generated enables or starts the service on install.
    assert!(deb.get("systemd-units").is_none());

    let example = watchbell::config::Config::load(&root.join("contrib/debian/schedules.toml"))
        .expect("the packaged job file is valid");
    assert!(!example.jobs.is_empty());
    assert!(
        example.jobs.iter().all(|j| !j.enabled),
        "every packaged job is disabled"
    );

    let unit = std::fs::read_to_string(root.join("systemd/watchbell.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/watchbell "), "{unit}");
    assert!(unit.contains("AssertPathExists=/etc/watchbell/api_key"));
    assert!(unit.contains("LoadCredential=api_key:/etc/watchbell/api_key"));
    // The run threads lower their priority (daemon::workers): the filter must allow it, after
    // the line that denies @resources (later lines add to or take from the allowed set).
    let deny = unit
        .find("SystemCallFilter=~@privileged @resources")
        .unwrap();
    let allow = unit.find("SystemCallFilter=setpriority").unwrap();
    assert!(allow > deny, "{unit}");
    let postinst = std::fs::read_to_string(root.join("contrib/debian/postinst")).unwrap();
    // The script itself only reloads systemd; enabling is a step it tells the user about.
    for line in postinst.lines().map(str::trim) {
        if line.starts_with("systemctl ") || line.starts_with("deb-systemd-invoke") {
            assert!(line.starts_with("systemctl daemon-reload"), "{line}");
        }
    }
    assert!(postinst.contains("/etc/watchbell/api_key"));
}
