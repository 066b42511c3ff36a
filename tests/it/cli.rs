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

#[test]
fn runs_list_on_a_fresh_machine_says_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let out = watchbell(dir.path())
        .args(["runs", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no runs");
}
