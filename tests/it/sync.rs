//! Remote schedules reconciled with the sandbox over real HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use watchbell::api::{ApiKey, Client, Pacer};
use watchbell::clock::Clock;
use watchbell::config::Config;
use watchbell::sandbox::{Options, Sandbox};
use watchbell::store::Store;
use watchbell::sync::{self, Act, Step};

use crate::support::{job, job_file, sandbox};

struct Account {
    sb: Sandbox,
    client: Client,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn account(opts: Options) -> Account {
    let sb = sandbox(opts).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).unwrap();
    let client = Client::new(
        sb.base_url(),
        ApiKey::new(sb.api_key()),
        Arc::new(Pacer::unlimited()),
        Duration::from_secs(10),
        Clock::System,
    )
    .unwrap();
    Account {
        sb,
        client,
        store,
        _dir: dir,
    }
}

fn remote(name: &str, cron: &str, enabled: bool) -> String {
    job(name, cron)
        .text("runner", "remote")
        .set("enabled", enabled)
        .set("webhook", "{ url = \"https://example.com/hook\" }")
        .to_string()
}

fn local(name: &str) -> String {
    job(name, "0 9 * * *").to_string()
}

impl Account {
    fn config(&self, jobs: &str) -> Config {
        Config::parse("schedules.toml", &job_file(&self.sb, jobs)).unwrap()
    }

    async fn sync(&self, jobs: &str, prune: bool) -> Vec<Step> {
        let c = self.config(jobs);
        let (steps, applied) = sync::reconcile(
            &c,
            &self.client,
            Some(&self.store),
            &Clock::System,
            false,
            prune,
        )
        .await
        .unwrap();
        for a in &applied {
            assert!(a.result.is_ok(), "{:?}", a.result);
        }
        steps
    }

    async fn dry(&self, jobs: &str) -> Vec<Step> {
        let c = self.config(jobs);
        sync::reconcile(
            &c,
            &self.client,
            Some(&self.store),
            &Clock::System,
            true,
            false,
        )
        .await
        .unwrap()
        .0
    }

    fn status(&self, uid: &str) -> String {
        let all = self.sb.schedules_snapshot();
        all.iter().find(|s| s["uid"] == uid).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn live(&self) -> Vec<serde_json::Value> {
        self.sb
            .schedules_snapshot()
            .into_iter()
            .filter(|s| s["status"] != "CANCELLED")
            .collect()
    }
}

fn acts(steps: &[Step]) -> Vec<Act> {
    steps.iter().map(|s| s.act).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_account_gets_its_schedules_and_a_second_sync_plans_nothing() {
    let a = account(Options::default()).await;
    let jobs = remote("r1", "0 9 * * 1-5", true) + &remote("r2", "30 18 * * *", true) + &local("l");
    assert_eq!(
        acts(&a.sync(&jobs, false).await),
        [Act::Create, Act::Create]
    );
    let live = a.live();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|s| s["status"] == "ACTIVE"));
    assert!(live.iter().any(|s| s["cron"] == "30 18 * * *"));
    // Created with schedule_at = the next fire, so creating does not run it at once.
    let now = Clock::System.now();
    for s in &live {
        let next = s["next_execution_at"].as_str().unwrap();
        let next = chrono::DateTime::parse_from_rfc3339(next).unwrap();
        assert!(next > now + chrono::Duration::minutes(1), "{s}");
        assert_eq!(next.format("%M:%S").to_string()[3..], *"00");
    }
    assert!(a.sync(&jobs, false).await.is_empty(), "not idempotent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_job_with_an_active_linked_schedule_gets_it_paused() {
    let a = account(Options::default()).await;
    a.sync(&remote("j", "0 9 * * *", true), false).await;
    let uid = a.live()[0]["uid"].as_str().unwrap().to_string();
    assert_eq!(acts(&a.sync(&local("j"), false).await), [Act::Pause]);
    assert_eq!(a.status(&uid), "PAUSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_false_pauses_and_true_resumes() {
    let a = account(Options::default()).await;
    a.sync(&remote("j", "0 9 * * *", true), false).await;
    let uid = a.live()[0]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        acts(&a.sync(&remote("j", "0 9 * * *", false), false).await),
        [Act::Pause]
    );
    assert_eq!(a.status(&uid), "PAUSED");
    // What `watchbell status` shows: the last known remote state, recorded by the sync.
    let known = a.store.remote_statuses().await.unwrap();
    assert_eq!(
        known,
        [("j".to_string(), uid.clone(), Some("PAUSED".to_string()))]
    );
    assert_eq!(
        acts(&a.sync(&remote("j", "0 9 * * *", true), false).await),
        [Act::Resume]
    );
    assert_eq!(a.status(&uid), "ACTIVE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cron_creates_the_new_schedule_before_cancelling_the_old() {
    let a = account(Options::default()).await;
    a.sync(&remote("j", "0 9 * * *", true), false).await;
    let old = a.live()[0]["uid"].as_str().unwrap().to_string();
    let steps = a.sync(&remote("j", "0 10 * * *", true), false).await;
    assert_eq!(acts(&steps), [Act::Replace]);
    let all = a.sb.schedules_snapshot();
    let old_s = all.iter().find(|s| s["uid"] == old.as_str()).unwrap();
    let new_s = all.iter().find(|s| s["uid"] != old.as_str()).unwrap();
    assert_eq!(old_s["status"], "CANCELLED");
    assert_eq!(new_s["status"], "ACTIVE");
    assert_eq!(new_s["cron"], "0 10 * * *");
    let t =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        t(&new_s["created_at"]) <= t(&old_s["updated_at"]),
        "the old schedule was cancelled first"
    );
    assert!(
        a.sync(&remote("j", "0 10 * * *", true), false)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_kept_without_prune_and_cancelled_with_it() {
    let a = account(Options::default()).await;
    a.sync(&(remote("gone", "0 9 * * *", true) + &local("stay")), false)
        .await;
    let uid = a.live()[0]["uid"].as_str().unwrap().to_string();
    let steps = a.sync(&local("stay"), false).await;
    assert_eq!(acts(&steps), [Act::KeepOrphan]);
    assert_eq!(a.status(&uid), "ACTIVE");
    assert_eq!(acts(&a.sync(&local("stay"), true).await), [Act::Cancel]);
    assert_eq!(a.status(&uid), "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_resumed_behind_watchbells_back_is_paused_again() {
    let a = account(Options::default()).await;
    a.sync(&remote("j", "0 9 * * *", true), false).await;
    let uid = a.live()[0]["uid"].as_str().unwrap().to_string();
    a.sync(&local("j"), false).await;
    assert_eq!(a.status(&uid), "PAUSED");
    assert!(a.sb.set_schedule_status(&uid, "ACTIVE")); // someone, in the web app
    let steps = a.sync(&local("j"), false).await;
    assert_eq!(acts(&steps), [Act::Pause]);
    assert!(steps[0].why.contains("was ACTIVE"));
    assert_eq!(a.status(&uid), "PAUSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_hundred_remote_schedules_are_all_listed() {
    let a = account(Options::default()).await;
    let body = serde_json::json!({"inputs": [{}], "cron": "0 3 * * *", "timezone": "UTC",
        "callback": {"url": "https://example.com/h"}, "identity_mode": "auto"});
    let mut last = String::new();
    for _ in 0..130 {
        last = a
            .client
            .create_schedule("linkedin-accept-invitations", &body)
            .await
            .unwrap();
    }
    assert_eq!(a.client.list_schedules().await.unwrap().len(), 130);
    // Adopting the 130th (beyond the first page) works: it is found, and being local, paused.
    let jobs = format!("{}remote_schedule = \"{last}\"\n", local("j"));
    assert_eq!(acts(&a.sync(&jobs, false).await), [Act::Pause]);
    assert_eq!(a.status(&last), "PAUSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_during_sync_is_waited_out() {
    let a = account(Options {
        rate_limit: Some(3.0),
        ..Options::default()
    })
    .await;
    let jobs: String = (0..6)
        .map(|i| remote(&format!("r{i}"), "0 9 * * *", true))
        .collect();
    let steps = a.sync(&jobs, false).await;
    assert_eq!(steps.len(), 6);
    assert_eq!(a.live().len(), 6);
    assert!(
        a.sb.stats().rate_limited.load(Ordering::Relaxed) > 0,
        "no 429 was provoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let a = account(Options::default()).await;
    a.sync(&remote("j", "0 9 * * *", true), false).await;
    let before = a.sb.schedules_snapshot();
    let jobs = remote("j", "0 10 * * *", false) + &remote("k", "0 11 * * *", true);
    let plan = a.dry(&jobs).await;
    assert_eq!(acts(&plan), [Act::Replace, Act::Create]);
    assert_eq!(a.sb.schedules_snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_a_rejected_key_and_changes_nothing() {
    let sb = sandbox(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedules.toml"),
        job_file(&sb, &remote("j", "0 9 * * *", true)),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        crate::support::watchbell(&d)
            .env("CAPTAIN_DATA_API_KEY", "wrong")
            .arg("sync")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(sb.schedules_snapshot().is_empty());
    let d = dir.path().to_path_buf();
    let key = sb.api_key().to_string();
    let out = tokio::task::spawn_blocking(move || {
        crate::support::watchbell(&d)
            .env("CAPTAIN_DATA_API_KEY", key)
            .args(["sync", "--dry-run"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("create"));
    assert!(
        sb.schedules_snapshot().is_empty(),
        "a dry run changed the account"
    );
}
