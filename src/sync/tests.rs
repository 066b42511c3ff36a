use super::*;

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
