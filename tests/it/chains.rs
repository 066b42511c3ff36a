//! Chained jobs over real sockets: a Google Maps search feeds `googlemaps-extract-place`
//! (`inputs_from`, `after`). Each new place is extracted exactly once over three search runs
//! and a daemon killed in between, each firing is one run, and the extract runs succeed.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use watchbell::sandbox::Options;
use watchbell::status::RunStatus;
use watchbell::store::{RunFilter, RunRecord};

use crate::support::{
    self, eventually, job_file, read, sandbox, signal, spawn, wait_exit, watchbell,
};

const NEW_PER_RUN: u32 = 3;

fn runs_of(dir: &std::path::Path, job: &str) -> Vec<RunRecord> {
    read(dir, |c| {
        c.list_runs(&RunFilter {
            job: Some(job.into()),
            limit: Some(100),
            ..RunFilter::default()
        })
        .unwrap()
    })
    .unwrap_or_default()
}

fn trigger(dir: &std::path::Path, key: &str, job: &str) {
    let out = watchbell(dir)
        .env("CAPTAIN_DATA_API_KEY", key)
        .args(["trigger", job])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_feeds_an_extract_that_takes_each_new_place_once_across_a_kill() {
    let sb = sandbox(Options {
        new_per_run: NEW_PER_RUN,
        pages: 1,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let search = support::job("places", "0 0 1 1 *").action("googlemaps-search-places");
    let extract = support::job("extract", "0 0 1 1 *")
        .action("googlemaps-extract-place")
        .set("input", "{}")
        .text("after", "places")
        .set(
            "inputs_from",
            "{ job = \"places\", map = { google_maps_place_url = \"google_maps_place_url\" } }",
        );
    let text = job_file(&sb, &format!("{search}\n{extract}")).replace("input = {}\n", "");
    std::fs::write(d.join("schedules.toml"), &text).unwrap();
    let check = watchbell(&d).arg("check").output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let key = sb.api_key().to_string();

    let mut bell = spawn(&d, &sb, "daemon.log");
    let succeeded = |job: &str, n: usize| {
        let runs = runs_of(&d, job);
        let done = runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count()
            >= n;
        async move { done }
    };
    for round in 1..=3usize {
        if round == 3 {
            // The daemon is killed: the third search's firing waits in the database.
            bell.kill().unwrap();
            bell.wait().unwrap();
        }
        let (dd, k) = (d.clone(), key.clone());
        tokio::task::spawn_blocking(move || trigger(&dd, &k, "places"))
            .await
            .unwrap();
        if round == 3 {
            bell = spawn(&d, &sb, "daemon-again.log");
        }
        eventually(Duration::from_mins(1), || succeeded("extract", round)).await;
    }
    signal(&bell, "-TERM");
    assert!(wait_exit(&mut bell).await.success());

    let extracts = runs_of(&d, "extract");
    assert_eq!(extracts.len(), 3, "one run per firing: {extracts:?}");
    assert!(extracts.iter().all(|r| r.status == RunStatus::Succeeded));
    let new_places: u64 = runs_of(&d, "places")
        .iter()
        .map(|r| read(&d, |c| c.new_items(r.id).unwrap()).unwrap())
        .sum();
    let mut taken = Vec::new();
    for r in &extracts {
        for i in read(&d, |c| c.inputs(r.id).unwrap()).unwrap() {
            taken.push(
                i.input["google_maps_place_url"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert_eq!(taken.len() as u64, new_places);
    assert_eq!(
        taken.iter().collect::<HashSet<_>>().len(),
        taken.len(),
        "a place taken twice"
    );
    assert!(
        taken
            .iter()
            .all(|u| u.starts_with("https://www.google.com/maps/place/"))
    );
    let report = watchbell(&d)
        .args(["inputs", "extract", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["consumed"], new_places);
    assert_eq!(report["pending"], 0);
    assert_eq!(report["held"], 0);
}
