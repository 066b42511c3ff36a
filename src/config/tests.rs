use super::*;
use crate::schedule::{Fold, Gap};
use chrono_tz::Tz;

const GOOD: &str = r#"
[api]
plan = "mid"

[defaults]
timezone = "Europe/Paris"
catchup = "10m"

[[job]]
name = "cto-search"
cron = "30 2 * * 1-5"
action = "salesnavigator-search-company-employees"
input = { sales_navigator_company_url = "https://www.linkedin.com/sales/company/123" }
parameters = { keywords = "cto", seniority = ["cxo", "vp"] }
identity_mode = "auto"
dst = { gap = "skip", fold = "both" }

[[job]]
name = "every-second"
cron = "* * * * * *"
timezone = "UTC"
action = "linkedin-me"
"#;

/// The errors of `text` as "line:col: message" strings.
fn errors(text: &str) -> Vec<String> {
    let d = Config::parse("schedules.toml", text).expect_err("should be rejected");
    d.errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
        .collect()
}

/// The single error of `text`, asserting its position and a fragment of its message.
fn one_error(text: &str, line: usize, col: usize, fragment: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(&format!("{line}:{col}: ")),
        "expected {line}:{col}, got {}",
        errs[0]
    );
    assert!(errs[0].contains(fragment), "{} lacks {fragment:?}", errs[0]);
}

/// A valid job in four lines (`linkedin-me` takes no input and needs no identity key).
const JOB: &str = "[[job]]\nname = \"a\"\ncron = \"* * * * *\"\naction = \"linkedin-me\"\n";

#[test]
fn a_good_file_is_read_with_defaults_applied() {
    let c = Config::parse("schedules.toml", GOOD).unwrap();
    assert_eq!(c.api.plan, Plan::Mid);
    assert_eq!(c.api.base_url.as_str(), DEFAULT_BASE_URL);
    assert_eq!(c.api.key, KeySource::Env(DEFAULT_KEY_ENV.into()));
    assert_eq!(c.daemon.max_concurrent_runs, 4);
    let j = c.job("cto-search").unwrap();
    assert_eq!(j.cron_schedule().tz, chrono_tz::Europe::Paris);
    assert_eq!(j.catchup, Duration::from_mins(10));
    assert_eq!(j.cron_schedule().gap, Gap::Skip);
    assert_eq!(j.cron_schedule().fold, Fold::Both);
    assert_eq!(
        j.request.parameters.as_ref().unwrap().value()["seniority"][1],
        "vp"
    );
    assert_eq!(j.overlap, Overlap::Skip);
    assert_eq!(j.max_pages, 500);
    assert_eq!(j.line, 9);
    let e = c.job("every-second").unwrap();
    assert_eq!(e.cron_schedule().tz, Tz::UTC);
    assert!(e.cron_schedule().cron.has_seconds());
    assert_eq!(e.request, Request::default());
    assert_eq!(e.live_body(), serde_json::json!({}));
}

#[test]
fn the_shipped_job_file_validates() {
    let text = include_str!("../../schedules.toml");
    let c = Config::parse("schedules.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.jobs.is_empty());
}

#[test]
fn unknown_keys_are_reported_where_they_stand() {
    one_error(
        &format!("{JOB}colour = \"red\"\n"),
        5,
        1,
        "unknown key \"colour\" in job #1",
    );
    one_error(
        "[daemon]\nmax_runs = 3\n",
        2,
        1,
        "unknown key \"max_runs\" in [daemon]",
    );
    one_error(
        "[api]\napi_key = \"secret\"\n",
        2,
        1,
        "never goes in the file",
    );
}

#[test]
fn duplicate_job_names_are_reported_at_the_second() {
    one_error(
        &format!("{JOB}\n{JOB}"),
        7,
        8,
        "duplicate job name \"a\" (first defined on line 2)",
    );
}

#[test]
fn names_outside_the_alphabet_are_refused() {
    one_error(
        &JOB.replace("\"a\"", "\"Daily Export\""),
        2,
        8,
        "must be 1 to 64 characters",
    );
}

#[test]
fn bad_cron_is_refused() {
    one_error(
        &JOB.replace("* * * * *", "61 * * * *"),
        3,
        8,
        "cron: invalid expression \"61 * * * *\"",
    );
}

#[test]
fn unknown_zones_are_refused() {
    one_error(
        &format!("{JOB}timezone = \"Mars/Olympus\"\n"),
        5,
        12,
        "unknown IANA zone",
    );
}

#[test]
fn bad_durations_are_refused() {
    one_error(
        &format!("{JOB}catchup = \"an hour\"\n"),
        5,
        11,
        "catchup: invalid duration",
    );
    one_error(
        "[daemon]\nshutdown_grace = 30\n",
        2,
        18,
        "expected a string, found integer",
    );
}

#[test]
fn identity_mode_outside_its_set_is_refused() {
    one_error(
        &format!("{JOB}identity_mode = \"sometimes\"\n"),
        5,
        17,
        "\"sometimes\" is not one of direct, auto, managed",
    );
}

#[test]
fn two_key_sources_are_refused() {
    one_error(
        "[api]\napi_key_env = \"K\"\napi_key_file = \"/run/k\"\n",
        3,
        1,
        "both set",
    );
}

#[test]
fn missing_required_keys_are_named() {
    let errs = errors("[[job]]\nname = \"a\"\n");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("cron (or after, for a job fired when another ends) is required"))
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("action (or endpoint, for a v1 job) is required"))
    );
}

#[test]
fn every_error_is_reported_in_one_pass_in_file_order() {
    let text = "[[job]]\nname = \"a\"\ncron = \"* * *\"\naction = \"linkedin-me\"\ntimezone = \"Nowhere/City\"\novertime = 1\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("3:8:"));
    assert!(errs[1].starts_with("5:12:"));
    assert!(errs[2].starts_with("6:1:"));
}

#[test]
fn syntax_errors_have_a_position() {
    let errs = errors("[api\nplan = \"mid\"\n");
    assert!(!errs.is_empty());
    assert!(errs[0].starts_with("1:"), "{errs:?}");
}

#[test]
fn defaults_apply_and_are_themselves_checked() {
    let c = Config::parse("s", &format!("[defaults]\novershoot = 1\n{JOB}"));
    assert!(c.is_err());
    let c = Config::parse(
        "s",
        &format!("[defaults]\noverlap = \"queue\"\nmax_pages = 3\n{JOB}"),
    )
    .unwrap();
    assert_eq!(c.jobs[0].overlap, Overlap::Queue);
    assert_eq!(c.jobs[0].max_pages, 3);
    one_error(
        &format!("[defaults]\nname = \"x\"\n{JOB}"),
        2,
        1,
        "name cannot be defaulted",
    );
}

#[test]
fn remote_jobs_need_a_webhook_and_plain_posix_cron() {
    let text = "[[job]]\nname = \"a\"\ncron = \"0 * * * * *\"\naction = \"linkedin-me\"\nidentity_mode = \"auto\"\nrunner = \"remote\"\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("3:8:") && errs[0].contains("6 fields"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("6:10:") && errs[1].contains("webhook"),
        "{errs:?}"
    );
    for (cron, why) in [
        ("@daily", "macro"),
        ("0 9 * * MON", "uses 'M'"),
        ("0 9 * * 7", "outside 0-6"),
        ("0 9 L * *", "uses 'L'"),
        ("0 9 * * 1#2", "uses '#'"),
    ] {
        let text = format!(
            "[[job]]\nname = \"a\"\ncron = \"{cron}\"\naction = \"linkedin-me\"\nidentity_mode = \"auto\"\nrunner = \"remote\"\nwebhook = {{ url = \"https://e.com/h\" }}\n"
        );
        let errs = errors(&text);
        assert!(errs.len() == 1 && errs[0].contains(why), "{cron}: {errs:?}");
    }
    let ok = "[[job]]\nname = \"a\"\ncron = \"*/15 9-17 1,15 * 1-5\"\naction = \"linkedin-me\"\nidentity_mode = \"auto\"\nrunner = \"remote\"\nwebhook = { url = \"https://e.com/h\" }\n";
    assert!(Config::parse("s", ok).is_ok());
}

#[test]
fn the_message_format_names_the_file() {
    let d = Config::parse("schedules.toml", "[daemon]\nx = 1\n").unwrap_err();
    assert!(
        d.to_string()
            .starts_with("schedules.toml:2:1: unknown key \"x\"")
    );
}

mod mutations {
    //! Thousands of damaged job files and cron strings: the reader never panics, and every
    //! error it reports has a line and a column inside the file.

    use proptest::prelude::*;

    use super::super::Config;
    use crate::schedule::{CronExpr, Fold, Gap, Schedule};

    const SHIPPED: &str = include_str!("../../schedules.toml");
    const PIECES: &[&str] = &[
        "\"",
        "=",
        "[",
        "]",
        "{",
        "}",
        "\n",
        "#",
        "0",
        "a",
        " ",
        "-",
        "*",
        "/",
        ",",
        "é",
        "\\",
        "[[job]]\n",
        "jitter = \"",
        "100000000y",
        "0s",
        "\"\n",
        "'''",
        "1e400",
        "-1",
        "@",
        ".",
    ];

    #[derive(Clone, Debug)]
    enum Edit {
        Delete(usize),
        Insert(usize, &'static str),
        DuplicateLine(usize),
        SwapLines(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..SHIPPED.len()).prop_map(Edit::Delete),
            (0..SHIPPED.len(), prop::sample::select(PIECES)).prop_map(|(i, p)| Edit::Insert(i, p)),
            (0..80usize).prop_map(Edit::DuplicateLine),
            (0..80usize, 0..80usize).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut s = text.to_string();
        for e in edits {
            let at = |i: usize, s: &str| {
                let mut i = i.min(s.len());
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            match *e {
                Edit::Delete(i) => {
                    let i = at(i, &s);
                    if let Some(c) = s[i..].chars().next() {
                        s.replace_range(i..i + c.len_utf8(), "");
                    }
                }
                Edit::Insert(i, p) => {
                    let i = at(i, &s);
                    s.insert_str(i, p);
                }
                Edit::DuplicateLine(k) | Edit::SwapLines(k, _) if s.lines().count() == 0 => {
                    let _ = k;
                }
                Edit::DuplicateLine(k) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    let k = k % lines.len();
                    lines.insert(k, lines[k]);
                    s = lines.join("\n");
                }
                Edit::SwapLines(a, b) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    let n = lines.len();
                    lines.swap(a % n, b % n);
                    s = lines.join("\n");
                }
            }
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn a_damaged_job_file_never_panics_and_every_error_is_placed(
            edits in prop::collection::vec(edit(), 1..6)
        ) {
            let text = apply(SHIPPED, &edits);
            if let Err(d) = Config::parse("s", &text) {
                let lines = text.lines().count().max(1) + 1;
                prop_assert!(!d.errors.is_empty());
                for e in &d.errors {
                    prop_assert!(e.line >= 1 && e.line <= lines, "{e:?} in {lines} lines");
                    prop_assert!(e.col >= 1, "{e:?}");
                }
            }
        }

        #[test]
        fn any_duration_text_is_read_or_refused_with_a_place(
            value in "[0-9]{0,25}[a-z ]{0,6}[0-9]{0,3}[a-z]{0,3}",
            key in prop::sample::select(vec!["jitter", "catchup", "run_timeout"]),
        ) {
            let text = format!("[[job]]\nname = \"a\"\ncron = \"* * * * * *\"\naction = \"linkedin-me\"\n{key} = \"{value}\"\n");
            if let Err(d) = Config::parse("s", &text) {
                prop_assert!(d.errors.iter().all(|e| e.line == 5 && e.col == key.len() + 4), "{d}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn any_cron_text_parses_or_is_refused_and_never_panics(
            text in "[0-9*/,\\-LW#? @a-zA-Z]{0,30}"
        ) {
            if let Ok(cron) = CronExpr::parse(&text) {
                let _ = cron.plain_posix();
                let s = Schedule::new("j", cron, chrono_tz::Europe::Paris, Gap::Shift, Fold::First, std::time::Duration::ZERO);
                let t = chrono::DateTime::from_timestamp(1_774_000_000, 0).unwrap();
                let _ = s.next_after(t);
            }
        }
    }
}

#[test]
fn alerting_keys_are_read_with_env_headers_and_checked() {
    let text = format!(
        "{JOB}retry = {{ attempts = 2, backoff = \"30s\" }}\nnotify = {{ url = \"https://hooks.example.com/x\", on = [\"FAILED\", \"STOPPED\"], headers = {{ Authorization = {{ env = \"NOTIFY_TOKEN\" }} }} }}\nping = \"https://hc-ping.com/abc\"\n"
    );
    let c = Config::parse("s", &text).unwrap_or_else(|e| panic!("{e}"));
    let j = &c.jobs[0];
    assert_eq!(
        j.retry,
        Some(Retry {
            attempts: 2,
            backoff: Duration::from_secs(30)
        })
    );
    let n = j.notify.as_ref().unwrap();
    assert_eq!(
        n.on,
        [
            crate::status::RunStatus::Failed,
            crate::status::RunStatus::Stopped
        ]
    );
    assert_eq!(
        n.headers,
        [(
            "Authorization".to_string(),
            HeaderValue::Env("NOTIFY_TOKEN".into())
        )]
    );
    assert_eq!(j.ping.as_ref().unwrap().as_str(), "https://hc-ping.com/abc");
    one_error(
        &format!("{JOB}notify = {{ url = \"https://h.example/x\", on = [\"RUNNING\"] }}\n"),
        5,
        46,
        "not a final status",
    );
    one_error(
        &format!("{JOB}retry = {{ attempts = 99 }}\n"),
        5,
        22,
        "from 0 to 20",
    );
}

#[test]
fn v1_tiers_are_plans_and_rate_limit_overrides_them() {
    let with = |api: &str| Config::parse("s.toml", &format!("[api]\n{api}\n{JOB}")).unwrap();
    let c = with("plan = \"titanium\"");
    assert_eq!(c.api.plan, Plan::Titanium);
    assert!((c.api.per_second() - 40.0).abs() < 1e-9);
    assert!((with("plan = \"bronze\"").api.per_second() - 2.0).abs() < 1e-9);
    assert!((with("plan = \"gold\"").api.per_second() - 10.0).abs() < 1e-9);
    let c = with("plan = \"trial\"\nrate_limit = \"5/s\"");
    assert!((c.api.per_second() - 5.0).abs() < 1e-9, "the override wins");
    let c = with("rate_limit = \"90/min\"");
    assert!((c.api.per_second() - 1.5).abs() < 1e-9);
    one_error(
        &format!("[api]\nrate_limit = \"fast\"\n{JOB}"),
        2,
        14,
        "rate_limit \"fast\": write it as N/s or N/min",
    );
    one_error(
        &format!("[api]\nrate_limit = \"0/s\"\n{JOB}"),
        2,
        14,
        "above 0",
    );
    one_error(
        &format!("[api]\nplan = \"copper\"\n{JOB}"),
        2,
        8,
        "titanium",
    );
}

const SEARCH: &str = r#"
[[job]]
name = "places"
cron = "0 9 * * *"
action = "googlemaps-search-places"
input = { google_maps_search_url = "https://www.google.com/maps/search/pizza" }
"#;

fn extract(from: &str, field: &str, after: &str) -> String {
    format!(
        "{SEARCH}\n[[job]]\nname = \"extract\"\ncron = \"0 10 * * *\"\naction = \"googlemaps-extract-place\"\n{after}inputs_from = {{ job = \"{from}\", map = {{ google_maps_place_url = \"{field}\" }} }}\n"
    )
}

#[test]
fn a_chain_reads_its_source_and_map() {
    let c = Config::parse(
        "schedules.toml",
        &extract("places", "google_maps_place_url", "after = \"places\"\n"),
    )
    .unwrap();
    let j = c.job("extract").unwrap();
    let from = j.request.inputs_from.as_ref().unwrap();
    assert_eq!(from.job, "places");
    assert_eq!(from.map["google_maps_place_url"], "google_maps_place_url");
    assert_eq!(j.after.as_deref(), Some("places"));
    assert!(j.live_body()["inputs_from"]["job"] == "places");
    let (links, afters) = c.links();
    assert_eq!(links.len(), 1);
    assert_eq!(afters, [("extract".to_string(), "places".to_string())]);
}

#[test]
fn a_chain_is_held_to_its_source() {
    let e = errors(&extract("nowhere", "google_maps_place_url", ""));
    assert!(
        e.iter().any(|e| e.contains("no job named \"nowhere\"")),
        "{e:?}"
    );
    let e = errors(&extract("places", "google_maps_place", ""));
    assert!(
        e.iter().any(
            |e| e.contains("\"google_maps_place\" is not a result field of places")
                && e.contains("did you mean \"google_maps_place_url\"")
        ),
        "{e:?}"
    );
    let e = errors(&extract(
        "places",
        "google_maps_place_url",
        "after = \"missing\"\n",
    ));
    assert!(e.iter().any(|e| e.contains("after: no job named")), "{e:?}");
    let both = extract("places", "google_maps_place_url", "")
        .replace("action = \"googlemaps-extract-place\"\n", "action = \"googlemaps-extract-place\"\ninput = { google_maps_place_url = \"https://www.google.com/maps/place/x\" }\n");
    let e = errors(&both);
    assert!(e.iter().any(|e| e.contains("write one of them")), "{e:?}");
}

#[test]
fn a_chain_that_comes_back_to_itself_is_refused() {
    let text = extract("places", "google_maps_place_url", "").replace(
        "input = { google_maps_search_url = \"https://www.google.com/maps/search/pizza\" }\n",
        "input = { google_maps_search_url = \"https://www.google.com/maps/search/pizza\" }\nafter = \"extract\"\n",
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.contains("a chain of jobs is a cycle")),
        "{e:?}"
    );
}

#[test]
fn a_job_fired_after_another_needs_no_cron_and_one_with_neither_is_refused() {
    let text = extract("places", "google_maps_place_url", "after = \"places\"\n")
        .replace("cron = \"0 10 * * *\"\n", "");
    let c = Config::parse("schedules.toml", &text).unwrap();
    let j = c.job("extract").unwrap();
    assert!(j.schedule.is_none());
    assert_eq!(j.fires(), "after places");
    let text =
        extract("places", "google_maps_place_url", "").replace("cron = \"0 10 * * *\"\n", "");
    let e = errors(&text);
    assert!(e.iter().any(|e| e.contains("cron (or after")), "{e:?}");
}

#[test]
fn inputs_paged_at_once_are_for_actions_through_no_identity() {
    let c = Config::parse(
        "schedules.toml",
        &format!("{SEARCH}input_concurrency = 4\n"),
    )
    .unwrap();
    assert_eq!(c.job("places").unwrap().input_concurrency, 4);
    let text = "[[job]]\nname = \"v\"\ncron = \"0 9 * * *\"\naction = \"linkedin-extract-people\"\ninput = { linkedin_profile_url = \"https://www.linkedin.com/in/x\" }\nidentity_mode = \"auto\"\ninput_concurrency = 2\n";
    let e = errors(text);
    assert!(
        e.iter().any(|e| e.starts_with(
            "7:21: input_concurrency: linkedin-extract-people acts through a LinkedIn identity"
        )),
        "{e:?}"
    );
    let e = errors(&format!("{SEARCH}input_concurrency = 0\n"));
    assert!(e.iter().any(|e| e.contains("input_concurrency")), "{e:?}");
}

/// An async job of a paged search, with `extra` keys.
fn async_job(extra: &str) -> String {
    format!(
        "[[job]]\nname = \"a\"\ncron = \"* * * * *\"\nrunner = \"async\"\naction = \"googlemaps-search-places\"\ninput = {{ google_maps_search_url = \"https://www.google.com/maps/search/x\" }}\n{extra}"
    )
}

const RECEIVER: &str =
    "[receiver]\nlisten = \"127.0.0.1:8787\"\npublic_url = \"https://hooks.example.com\"\n";

#[test]
fn async_jobs_need_a_receiver_and_cannot_be_replaced() {
    one_error(&async_job(""), 4, 10, "needs [receiver]");
    let replace = format!("{RECEIVER}{}", async_job("overlap = \"replace\"\n"));
    one_error(&replace, 10, 11, "not for runner = \"async\"");
    let c = Config::parse("schedules.toml", &format!("{RECEIVER}{}", async_job(""))).unwrap();
    let r = c.receiver.as_ref().unwrap();
    assert_eq!(
        r.callback_url("r", "u1"),
        "https://hooks.example.com/callbacks/r/u1"
    );
    assert_eq!(
        (r.max_body, r.callback_timeout, r.replay_after),
        (32 << 20, Duration::from_hours(1), Duration::from_mins(5))
    );
    assert_eq!(c.jobs[0].runner, Runner::Async);
}

#[test]
fn the_public_url_is_https_unless_both_ends_are_loopback() {
    let plain =
        "[receiver]\nlisten = \"127.0.0.1:8787\"\npublic_url = \"http://hooks.example.com\"\n";
    one_error(plain, 3, 14, "must be https");
    let local = "[receiver]\nlisten = \"127.0.0.1:8787\"\npublic_url = \"http://127.0.0.1:8787\"\n";
    one_error(local, 3, 14, "must be https");
    let sandbox = format!("[api]\nbase_url = \"http://127.0.0.1:9/v4\"\n{local}");
    assert!(Config::parse("schedules.toml", &sandbox).is_ok());
    one_error(
        "[receiver]\npublic_url = \"https://x.example\"\n",
        2,
        1,
        "listen is required",
    );
    one_error(
        &format!("{RECEIVER}max_body = \"2048GiB\"\n"),
        4,
        12,
        "between 1KiB and 1GiB",
    );
}

#[test]
fn receive_is_for_remote_jobs_with_a_receiver() {
    let remote = "[[job]]\nname = \"r\"\ncron = \"0 * * * *\"\nrunner = \"remote\"\naction = \"googlemaps-search-places\"\ninput = { google_maps_search_url = \"https://www.google.com/maps/search/x\" }\nreceive = true\n";
    one_error(remote, 7, 11, "needs [receiver]");
    assert!(Config::parse("schedules.toml", &format!("{RECEIVER}{remote}")).is_ok());
    one_error(
        &format!("{RECEIVER}{}", async_job("receive = true\n")),
        10,
        11,
        "only for runner = \"remote\"",
    );
}

#[test]
fn an_async_outreach_list_longer_than_the_daily_cap_is_refused() {
    let list: Vec<String> = (0..4)
        .map(|i| format!("{{ linkedin_profile_url = \"https://www.linkedin.com/in/p{i}\" }}"))
        .collect();
    let job = |n: usize| {
        format!(
            "{RECEIVER}[safety]\ndaily_cap = {{ outreach = 3 }}\n[[job]]\nname = \"o\"\ncron = \"0 9 * * *\"\nrunner = \"async\"\naction = \"linkedin-connect-profile\"\nidentity_mode = \"auto\"\ninputs = [{}]\n",
            list[..n].join(", ")
        )
    };
    assert!(Config::parse("schedules.toml", &job(3)).is_ok());
    one_error(&job(4), 12, 10, "daily cap of 3");
}
