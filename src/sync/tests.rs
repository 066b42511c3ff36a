use super::*;
use serde_json::json;

const ACTION: &str = "googlemaps-search-places";
const INPUT: &str = "google_maps_search_url = \"https://www.google.com/maps/search/pizza\"";

fn config(jobs: &str) -> Config {
    Config::parse("t", &format!("[api]\nplan = \"mid\"\n{jobs}")).unwrap()
}

fn remote_job(name: &str, cron: &str, enabled: bool) -> String {
    format!(
        "[[job]]\nname = \"{name}\"\ncron = \"{cron}\"\naction = \"{ACTION}\"\ninput = {{ {INPUT} }}\nrunner = \"remote\"\nenabled = {enabled}\nwebhook = {{ url = \"https://example.com/h\" }}\n"
    )
}

fn sched(uid: &str, status: &str, cron: &str) -> RemoteSchedule {
    RemoteSchedule {
        uid: uid.into(),
        action_name: ACTION.into(),
        status: Some(status.into()),
        cron: Some(cron.into()),
        timezone: Some("UTC".into()),
        next_execution_at: None,
        created_at: None,
    }
}

fn link(job: &str, uid: &str, c: &Config) -> Link {
    Link {
        job: job.into(),
        uid: uid.into(),
        hash: c.job(job).map(definition_hash),
        adopted_from: None,
    }
}

fn acts(steps: &[Step]) -> Vec<(&str, Act)> {
    steps.iter().map(|s| (s.job.as_str(), s.act)).collect()
}

#[test]
fn an_empty_account_gets_a_schedule_per_remote_job() {
    let c = config(
        &(remote_job("r", "0 9 * * *", true)
            + "[[job]]\nname = \"l\"\ncron = \"@daily\"\naction = \"linkedin-me\"\n"),
    );
    assert_eq!(acts(&plan(&c, &[], &[], false)), [("r", Act::Create)]);
}

#[test]
fn a_matching_account_plans_nothing() {
    let c = config(&remote_job("r", "0 9 * * *", true));
    let links = [link("r", "u1", &c)];
    assert!(plan(&c, &links, &[sched("u1", "ACTIVE", "0 9 * * *")], false).is_empty());
}

#[test]
fn a_local_job_keeps_its_linked_schedule_paused() {
    let c = config("[[job]]\nname = \"l\"\ncron = \"0 9 * * *\"\naction = \"linkedin-me\"\n");
    let links = [link("l", "u1", &c)];
    assert_eq!(
        acts(&plan(
            &c,
            &links,
            &[sched("u1", "ACTIVE", "0 9 * * *")],
            false
        )),
        [("l", Act::Pause)]
    );
    assert!(plan(&c, &links, &[sched("u1", "PAUSED", "0 9 * * *")], false).is_empty());
    assert!(plan(&c, &links, &[sched("u1", "CANCELLED", "0 9 * * *")], false).is_empty());
}

#[test]
fn enabled_follows_the_file() {
    let off = config(&remote_job("r", "0 9 * * *", false));
    let links = [link("r", "u1", &off)];
    assert_eq!(
        acts(&plan(
            &off,
            &links,
            &[sched("u1", "ACTIVE", "0 9 * * *")],
            false
        )),
        [("r", Act::Pause)]
    );
    let on = config(&remote_job("r", "0 9 * * *", true));
    let links = [link("r", "u1", &on)];
    assert_eq!(
        acts(&plan(
            &on,
            &links,
            &[sched("u1", "PAUSED", "0 9 * * *")],
            false
        )),
        [("r", Act::Resume)]
    );
}

#[test]
fn drift_is_replaced_and_named() {
    let c = config(&remote_job("r", "0 10 * * *", true));
    let links = [link("r", "u1", &c)];
    let steps = plan(&c, &links, &[sched("u1", "ACTIVE", "0 9 * * *")], false);
    assert_eq!(acts(&steps), [("r", Act::Replace)]);
    assert!(
        steps[0].why.contains("cron \"0 9 * * *\" in the account"),
        "{}",
        steps[0].why
    );
    // The job changed in a way the API does not show (its input): the hash says so.
    let mut stale = link("r", "u1", &c);
    stale.hash = Some("0000".into());
    let steps = plan(&c, &[stale], &[sched("u1", "ACTIVE", "0 10 * * *")], false);
    assert_eq!(acts(&steps), [("r", Act::Replace)]);
}

#[test]
fn a_cancelled_link_of_a_remote_job_is_replaced_by_a_new_schedule() {
    let c = config(&remote_job("r", "0 9 * * *", true));
    let links = [link("r", "u1", &c)];
    let steps = plan(&c, &links, &[sched("u1", "CANCELLED", "0 9 * * *")], false);
    assert_eq!(acts(&steps), [("r", Act::Create)]);
    assert!(steps[0].why.contains("CANCELLED"));
}

#[test]
fn orphans_are_kept_unless_pruned() {
    let c = config("");
    let links = [Link {
        job: "gone".into(),
        uid: "u9".into(),
        hash: None,
        adopted_from: None,
    }];
    let remote = [sched("u9", "ACTIVE", "0 9 * * *")];
    let kept = plan(&c, &links, &remote, false);
    assert_eq!(acts(&kept), [("gone", Act::KeepOrphan)]);
    assert!(!kept[0].changes());
    assert_eq!(
        acts(&plan(&c, &links, &remote, true)),
        [("gone", Act::Cancel)]
    );
}

#[test]
fn an_adopted_schedule_is_used_until_watchbell_replaces_it() {
    let text = remote_job("r", "0 9 * * *", true) + "remote_schedule = \"adopted\"\n";
    let c = config(&text);
    assert!(plan(&c, &[], &[sched("adopted", "ACTIVE", "0 9 * * *")], false).is_empty());
    let replaced = Link {
        job: "r".into(),
        uid: "new".into(),
        hash: c.job("r").map(definition_hash),
        adopted_from: Some("adopted".into()),
    };
    let remote = [
        sched("adopted", "CANCELLED", "0 8 * * *"),
        sched("new", "ACTIVE", "0 9 * * *"),
    ];
    assert!(plan(&c, &[replaced], &remote, false).is_empty());
}

#[test]
fn a_link_hashed_by_an_older_version_is_not_recreated_and_is_rehashed() {
    let c = config(&remote_job("r", "0 9 * * *", true));
    // What the previous release stored for this very job: FNV-1a of "ACTION\n" + its create
    // body as then encoded (parameters {}, identity_mode "direct", identity_ids null).
    let old = Link {
        hash: Some("48b912ce544881dc".into()),
        ..link("r", "u1", &c)
    };
    assert!(
        plan(
            &c,
            std::slice::from_ref(&old),
            &[sched("u1", "ACTIVE", "0 9 * * *")],
            false
        )
        .is_empty()
    );
    let upgraded = rehashed(&c, std::slice::from_ref(&old));
    assert_eq!(upgraded.len(), 1);
    assert_eq!(upgraded[0].hash, c.job("r").map(definition_hash));
    // An old hash of another definition is drift, and is not rewritten.
    let changed = Link {
        hash: Some("48b912ce544881dd".into()),
        ..old
    };
    assert_eq!(
        acts(&plan(
            &c,
            std::slice::from_ref(&changed),
            &[sched("u1", "ACTIVE", "0 9 * * *")],
            false
        )),
        [("r", Act::Replace)]
    );
    assert!(rehashed(&c, &[changed]).is_empty());
}

#[test]
fn the_create_body_is_the_schedule_schema_and_time_changes_only_schedule_at() {
    let c = config(&remote_job("r", "0 9 * * *", true));
    let job = c.job("r").unwrap();
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let body = create_body(job, t("2026-05-01T10:00:00Z"));
    assert_eq!(
        body,
        json!({
            "inputs": [{"google_maps_search_url": "https://www.google.com/maps/search/pizza"}],
            "callback": {"url": "https://example.com/h", "headers": {}},
            "cron": "0 9 * * *",
            "timezone": "UTC",
            "schedule_at": "2026-05-02T09:00:00Z",
        })
    );
    let later = create_body(job, t("2026-06-01T10:00:00Z"));
    assert_eq!(later["schedule_at"], "2026-06-02T09:00:00Z");
    let hash = definition_hash(job);
    assert!(hash.starts_with("v2:"));
    let links = [link("r", "u1", &c)];
    assert!(plan(&c, &links, &[sched("u1", "ACTIVE", "0 9 * * *")], false).is_empty());
    // An input-less action is scheduled with one empty input.
    let c = config(
        "[[job]]\nname = \"i\"\ncron = \"0 9 * * *\"\naction = \"linkedin-accept-invitations\"\nidentity_mode = \"auto\"\nrunner = \"remote\"\nwebhook = { url = \"https://example.com/h\" }\n",
    );
    let body = create_body(c.job("i").unwrap(), t("2026-05-01T10:00:00Z"));
    assert_eq!(body["inputs"], json!([{}]));
    assert_eq!(body["identity_mode"], "auto");
}

#[test]
fn schedules_with_null_status_cron_or_timezone_are_read() {
    let list: Vec<RemoteSchedule> = serde_json::from_value(json!([
        {"uid": "u1", "action_name": null, "status": null, "cron": null, "timezone": null},
        {"uid": "u2", "status": "ACTIVE", "cron": "0 9 * * *", "timezone": "UTC"},
    ]))
    .unwrap();
    assert_eq!(list[0].status(), "UNKNOWN");
    assert!(!list[0].is_terminal());
    let c = config(&remote_job("r", "0 9 * * *", true));
    let links = [link("r", "u1", &c)];
    assert!(
        plan(&c, &links, &list, false).is_empty(),
        "nulls are not drift"
    );
}
