//! The action catalog end to end: every live action runs against the strict sandbox, `check`
//! refuses what the API would, `actions` explains, and bodies stored before the catalog was
//! enforced still run.

use watchbell::catalog;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::{RunFilter, Store};

use crate::support::{self, job, job_file, sandbox, watchbell};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_action_runs_through_trigger_against_the_strict_sandbox() {
    let sb = sandbox(Options {
        pages: 2,
        page_size: Some(3),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = catalog::v4().actions.keys().cloned().collect();
    let jobs: String = names
        .iter()
        .map(|a| job(a, "@yearly").action(a).to_string())
        .collect();
    std::fs::write(dir.path().join("schedules.toml"), job_file(&sb, &jobs)).unwrap();
    let (base, key, all) = (
        dir.path().to_path_buf(),
        sb.api_key().to_string(),
        names.clone(),
    );
    let failures = tokio::task::spawn_blocking(move || {
        let check = watchbell(&base).arg("check").output().unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut failures = Vec::new();
        for name in &all {
            let out = watchbell(&base)
                .env("CAPTAIN_DATA_API_KEY", &key)
                .args(["trigger", name])
                .output()
                .unwrap();
            if !out.status.success() {
                failures.push(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    let store = Store::open(&dir.path().join("watchbell.db")).unwrap();
    let runs = store
        .list_runs(RunFilter {
            limit: Some(1000),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), names.len());
    for r in &runs {
        assert_eq!(
            r.status,
            RunStatus::Succeeded,
            "{} {:?}",
            r.job,
            r.last_error
        );
        let a = catalog::v4().action(&r.action_name).unwrap();
        let expected = match (a.output_is_object, a.paginated()) {
            (true, _) => (1, 1),
            (false, true) => (2, 6),
            (false, false) => (1, 3),
        };
        assert_eq!((r.pages, r.items), expected, "{}", r.job);
    }
}

#[test]
fn check_refuses_what_the_api_would_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let places = "action = \"googlemaps-search-places\"\ninput = { google_maps_search_url = \"https://www.google.com/maps/search/x\" }\n";
    let text = format!(
        "{}{}{}{}{}",
        job("unknown-param", "@daily").set("parameters", "{ zoom = 3 }"),
        job("bad-enum", "@daily").set("parameters", "{ country = \"Atlantis\" }"),
        job("misspelt", "@daily").text("action", "googlemaps-serch-places"),
        format_args!(
            "[[job]]\nname = \"inputless\"\ncron = \"@daily\"\naction = \"linkedin-accept-invitations\"\nidentity_mode = \"auto\"\ninput = {{ x = 1 }}\n"
        ),
        format_args!(
            "[[job]]\nname = \"maps-identity\"\ncron = \"@daily\"\n{places}identity_mode = \"auto\"\n"
        ),
    );
    std::fs::write(dir.path().join("schedules.toml"), &text).unwrap();
    let out = watchbell(dir.path()).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    for (line, (at, what)) in lines.iter().zip([
        ("schedules.toml:6:16:", "unknown parameter \"zoom\""),
        ("schedules.toml:12:26:", "\"Atlantis\" is not one of"),
        (
            "schedules.toml:16:10:",
            "did you mean \"googlemaps-search-places\"?",
        ),
        ("schedules.toml:23:9:", "takes no input"),
        ("schedules.toml:29:17:", "acts through no identity"),
    ]) {
        assert!(
            line.starts_with(at) && line.contains(what),
            "{line:?} is not {at} {what}\n{err}"
        );
    }
}

#[test]
fn actions_explains_one_action_like_kubectl_explain() {
    let dir = tempfile::tempdir().unwrap();
    let out = watchbell(dir.path())
        .args(["actions", "salesnavigator-search-company-employees"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "1. sales_navigator_company_url (or company_url)",
        "2. linkedin_company_id (or company_id, sales_navigator_company_id)",
        "seniority",
        "\"owner\", \"partner\", \"cxo\"",
        "paginated, 25 items a page",
        "max_results",
        "example job",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    let json = watchbell(dir.path())
        .args(["actions", "linkedin-me", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["identities"], true);
    assert_eq!(v["schema"]["output_is_object"], true);
    let list = watchbell(dir.path()).arg("actions").output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let mut parts = list.split("\n\n");
    assert_eq!(parts.next().unwrap().lines().count(), 72); // the header and 71 actions
    let v1 = parts.next().unwrap();
    assert!(v1.starts_with("V1 ENDPOINT"), "{v1}");
    assert_eq!(v1.lines().count(), 8); // the header and 7 endpoints
    let typo = watchbell(dir.path())
        .args(["actions", "linkedin-mee"])
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean \"linkedin-me\"?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stored_with_an_old_body_is_sent_cleaned_and_succeeds() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let r = support::runner(
        &dir,
        sb.base_url().as_str(),
        sb.api_key(),
        watchbell::api::Pacer::unlimited(),
    );
    // What every run carried before the catalog: keys the action refuses.
    let mut old = support::body();
    old["parameters"] = serde_json::json!({});
    old["identity_mode"] = serde_json::json!("direct");
    old["identity_ids"] = serde_json::Value::Null;
    let run = support::run_once(&r, support::PAGED, old).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.last_error);
    assert_eq!(run.pages, 3);
}
