//! Jobs held to the action catalog: each mistake found where it was written.

use super::super::{CatalogMode, Config};

const PLACES: &str = "action = \"googlemaps-search-places\"\ninput = { google_maps_search_url = \"https://www.google.com/maps/search/pizza\" }\n";

fn job(body: &str) -> String {
    format!("[[job]]\nname = \"a\"\ncron = \"0 9 * * *\"\n{body}")
}

/// Every error of `text` as "line:col: message".
fn errors(text: &str) -> Vec<String> {
    let d = Config::parse("s", text).expect_err("should be rejected");
    d.errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
        .collect()
}

fn only(text: &str, at: &str, fragment: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(at), "expected {at}, got {}", errs[0]);
    assert!(errs[0].contains(fragment), "{} lacks {fragment:?}", errs[0]);
}

#[test]
fn a_misspelt_action_names_the_closest_one() {
    only(
        &job(&PLACES.replace("places\"", "place\"")),
        "4:10:",
        "did you mean \"googlemaps-search-places\"?",
    );
}

/// The rest of a job with a misspelt action is held to the closest one in the same pass, so
/// its other mistakes do not wait for the next `check`.
#[test]
fn a_misspelt_actions_input_and_parameters_are_checked_as_meant() {
    let text = job(
        "action = \"googlemaps-search-place\"\ninput = { google_maps_search_url = \"nope\" }\nparameters = { colour = \"red\", max_results = \"x\" }\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs[0].starts_with("4:10:") && errs[0].contains("did you mean"));
    let meant = "if you meant googlemaps-search-places: ";
    assert!(
        errs[1].starts_with("5:36: ") && errs[1].contains(meant),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("6:16: ") && errs[2].contains(meant),
        "{errs:#?}"
    );
    assert!(
        errs[2].contains("unknown parameter \"colour\""),
        "{errs:#?}"
    );
    assert!(
        errs[3].contains(meant) && errs[3].contains("max_results"),
        "{errs:#?}"
    );
    // An action with no close name has nothing to be held to.
    assert_eq!(errors(&job("action = \"zzzzzzzzzzzzzzzzz\"\n")).len(), 1);
}

#[test]
fn unknown_parameters_wrong_types_enums_and_bounds_are_refused_where_written() {
    let text = job(&format!(
        "{PLACES}parameters = {{ country = \"XX\", language = 3, colour = \"red\" }}\n"
    ));
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("6:26:") && errs[0].contains("\"XX\" is not one of"));
    assert!(errs[1].starts_with("6:43:") && errs[1].contains("expected a string"));
    // An unknown key is pointed at, not its value.
    assert!(errs[2].starts_with("6:46:") && errs[2].contains("unknown parameter \"colour\""));
    only(
        &job(
            "action = \"linkedin-extract-people\"\ninput = { url = \"https://www.linkedin.com/in/x\" }\nidentity_mode = \"auto\"\nparameters = { keyword = 1 }\n",
        ),
        "7:",
        "unknown parameter",
    );
}

#[test]
fn input_on_an_action_without_input_is_refused() {
    only(
        &job(
            "action = \"linkedin-accept-invitations\"\nidentity_mode = \"auto\"\ninput = { url = \"x\" }\n",
        ),
        "6:9:",
        "takes no input",
    );
}

#[test]
fn identity_keys_on_an_action_without_identities_are_refused() {
    let errs = errors(&job(&format!(
        "{PLACES}identity_mode = \"auto\"\nidentity_ids = [\"u\"]\n"
    )));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("6:17:") && errs[0].contains("acts through no identity"));
    assert!(errs[1].starts_with("7:16:"));
}

#[test]
fn direct_without_identity_ids_is_refused_with_the_fix() {
    only(
        &job(
            "action = \"linkedin-extract-people\"\ninput = { linkedin_profile_url = \"https://www.linkedin.com/in/x\" }\n",
        ),
        "4:10:",
        "use identity_mode = \"auto\" or \"managed\", or list identity_ids",
    );
    let ok = job(
        "action = \"linkedin-extract-people\"\ninput = { linkedin_profile_url = \"https://www.linkedin.com/in/x\" }\nidentity_ids = [\"00000000-0000-4000-8000-000000000009\"]\n",
    );
    assert!(Config::parse("s", &ok).is_ok());
}

#[test]
fn input_must_match_an_alternative_aliases_included() {
    let ok = job(
        "action = \"salesnavigator-search-company-employees\"\ninput = { company_id = \"42\" }\nidentity_mode = \"auto\"\n",
    );
    assert!(Config::parse("s", &ok).is_ok());
    only(
        &job(
            "action = \"salesnavigator-search-company-employees\"\ninput = { custom_data = { k = 1 } }\nidentity_mode = \"auto\"\n",
        ),
        "5:9:",
        "needs sales_navigator_company_url (or company_url); or linkedin_company_id",
    );
    only(
        &job(
            "action = \"linkedin-extract-people\"\ninput = { linkedin_profile_url = \"https://example.com/in/x\" }\nidentity_mode = \"auto\"\n",
        ),
        "5:34:",
        "does not match the pattern",
    );
    only(
        &job("action = \"linkedin-extract-people\"\nidentity_mode = \"auto\"\n"),
        "1:1:",
        "input is required by linkedin-extract-people: linkedin_profile_url (or url, profile_url, linkedin_url)",
    );
}

#[test]
fn keys_inherited_from_defaults_that_the_action_does_not_take_are_dropped() {
    let text = format!(
        "[defaults]\nparameters = {{ country = \"FR\" }}\nidentity_mode = \"auto\"\n{}{}",
        job(PLACES),
        "[[job]]\nname = \"b\"\ncron = \"0 9 * * *\"\naction = \"linkedin-accept-invitations\"\n"
    );
    let c = Config::parse("s", &text).unwrap_or_else(|e| panic!("{e}"));
    let places = c.job("a").unwrap().live_body();
    assert_eq!(places["parameters"]["country"], "FR");
    assert!(places.get("identity_mode").is_none(), "{places}");
    let invitations = c.job("b").unwrap().live_body();
    assert_eq!(invitations, serde_json::json!({"identity_mode": "auto"}));
}

#[test]
fn the_body_carries_only_what_the_job_set() {
    let c = Config::parse("s", &job(PLACES)).unwrap();
    assert_eq!(
        c.jobs[0].live_body(),
        serde_json::json!({"input": {"google_maps_search_url": "https://www.google.com/maps/search/pizza"}})
    );
}

#[test]
fn a_remote_job_is_checked_in_schedule_mode() {
    // max_results exists only in schedule mode.
    let base = "action = \"salesnavigator-search-company-employees\"\ninput = { company_id = \"42\" }\nidentity_mode = \"auto\"\nparameters = { max_results = 50 }\n";
    only(&job(base), "7:16:", "unknown parameter \"max_results\"");
    let remote = job(&format!(
        "{base}runner = \"remote\"\nwebhook = {{ url = \"https://e.com/h\" }}\n"
    ));
    assert!(Config::parse("s", &remote).is_ok());
    only(
        &job(&format!(
            "{}runner = \"remote\"\nwebhook = {{ url = \"https://e.com/h\" }}\n",
            base.replace("50", "5000")
        )),
        "7:",
        "above the maximum 1000",
    );
}

#[test]
fn catalog_warn_accepts_newer_actions_and_keys_with_warnings() {
    let text = format!(
        "[api]\ncatalog = \"warn\"\n{}{}",
        job("action = \"linkedin-brand-new\"\ninput = { anything = 1 }\n"),
        "[[job]]\nname = \"b\"\ncron = \"0 9 * * *\"\naction = \"googlemaps-search-places\"\ninput = { google_maps_search_url = \"https://www.google.com/maps/search/x\", zoom = 3 }\n"
    );
    let c = Config::parse("s", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.api.catalog, CatalogMode::Warn);
    assert_eq!(c.warnings.len(), 2, "{:#?}", c.warnings);
    assert!(c.warnings[0].starts_with("s:6:10: warning: action: \"linkedin-brand-new\""));
    assert_eq!(c.job("a").unwrap().live_body()["input"]["anything"], 1);
    assert_eq!(
        c.job("b").unwrap().live_body()["input"]["zoom"],
        3,
        "kept: the user knows better"
    );
    // A bad value of a known key stays an error.
    assert!(
        Config::parse(
            "s",
            &text.replace("zoom = 3", "zoom = 3 }\nparameters = { country = \"XX\"")
        )
        .is_err()
    );
}

#[test]
fn the_body_text_is_the_body_as_a_parsed_map_prints_it() {
    let text = "[[job]]\nname = \"v1\"\ncron = \"0 9 * * *\"\nendpoint = \"/companies/{company_uid}/employees\"\npath = { company_uid = \"a \\\"b\\\"\" }\n\n[[job]]\nname = \"ids\"\ncron = \"0 9 * * *\"\naction = \"linkedin-accept-invitations\"\nidentity_mode = \"managed\"\nidentity_ids = [\"id-1\", \"id-2\"]\n\n[[job]]\nname = \"none\"\ncron = \"0 9 * * *\"\nendpoint = \"/people/search\"\nquery = { query = \"x\" }\n";
    let c = Config::parse("s", text).unwrap_or_else(|e| panic!("{e}"));
    for job in &c.jobs {
        let body = job.live_body_text();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, value.to_string(), "{}", job.name);
        assert!(value.as_object().is_some_and(|o| !o.is_empty()), "{body}");
    }
    assert!(
        c.jobs[1]
            .live_body_text()
            .contains(r#""identity_ids":["id-1","id-2"]"#)
    );
}

const MAPS: &str = "action = \"googlemaps-search-places\"\n";

fn search(q: &str) -> String {
    format!("{{ google_maps_search_url = \"https://www.google.com/maps/search/{q}\" }}")
}

#[test]
fn each_input_of_a_list_is_held_to_the_schema_where_it_was_written() {
    let text = job(&format!(
        "{MAPS}inputs = [\n  {},\n  {{ google_maps_search_url = \"nope\" }},\n  {{ google_maps_search_url = \"https://www.google.com/maps/search/x\", colour = 1 }},\n  {{ custom_data = {{ watchbell = 1 }}, google_maps_search_url = \"https://www.google.com/maps/search/y\" }},\n]\n",
        search("a")
    ));
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with("7:30: inputs[1].google_maps_search_url:"),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("8:70: inputs[2]: unknown key \"colour\""),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("9:19: inputs[3].custom_data: the key \"watchbell\""),
        "{errs:#?}"
    );
}

#[test]
fn a_list_of_one_is_its_input_and_hashes_like_it() {
    let one = Config::parse("s", &job(&format!("{MAPS}input = {}\n", search("a")))).unwrap();
    let list = Config::parse("s", &job(&format!("{MAPS}inputs = [{}]\n", search("a")))).unwrap();
    let (one, list) = (&one.jobs[0], &list.jobs[0]);
    assert_eq!(one.request, list.request);
    assert_eq!(one.fingerprint(), list.fingerprint());
    assert_eq!(one.live_body_text(), list.live_body_text());
    assert_eq!(
        crate::sync::definition_hash(one),
        crate::sync::definition_hash(list)
    );
    let two = Config::parse(
        "s",
        &job(&format!(
            "{MAPS}inputs = [{}, {}]\n",
            search("a"),
            search("b")
        )),
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&two.jobs[0].live_body_text()).unwrap();
    assert_eq!(body["inputs"].as_array().unwrap().len(), 2);
    assert!(body.get("input").is_none());
    assert_ne!(two.jobs[0].fingerprint(), one.fingerprint());
}

#[test]
fn a_job_has_input_or_inputs_and_a_remote_list_keeps_the_schedules_bound() {
    only(
        &job(&format!(
            "{MAPS}input = {}\ninputs = [{}, {}]\n",
            search("a"),
            search("b"),
            search("c")
        )),
        "6:1:",
        "input and inputs: write one of them",
    );
    only(
        &job(&format!("{MAPS}inputs = []\n")),
        "5:10:",
        "an empty list",
    );
    let many: Vec<String> = (0..101).map(|i| search(&i.to_string())).collect();
    let remote = job(&format!(
        "{MAPS}inputs = [{}]\nrunner = \"remote\"\nwebhook = {{ url = \"https://e.com/h\" }}\n",
        many.join(", ")
    ));
    only(
        &remote,
        "5:10:",
        "101 inputs; a remote schedule takes at most 100",
    );
    let hundred = remote.replacen(&format!("{}, ", search("0")), "", 1);
    let c = Config::parse("s", &hundred).unwrap();
    let body = crate::sync::create_body(&c.jobs[0], crate::clock::Clock::System.now());
    assert_eq!(body["inputs"].as_array().unwrap().len(), 100);
    only(
        &job(
            "endpoint = \"/people/search\"\nquery = { query = \"x\" }\ninputs = [{ a = 1 }, { a = 2 }]\n",
        ),
        "6:10:",
        "inputs: a job on a v1 endpoint",
    );
}

/// An inputs file is read row by row at `check`: each problem placed as `FILE:ROW:COL`
/// beside the job's own position, the path resolved against the job file's directory.
#[test]
fn an_inputs_file_is_checked_row_by_row_where_each_problem_is() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &[u8]| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "good.csv",
        b"google_maps_search_url,custom_data.row\nhttps://www.google.com/maps/search/a,1\n",
    );
    write(
        "bad.csv",
        b"google_maps_search_url\nnope\nhttps://www.google.com/maps/search/b\nx,y\n\xff\n",
    );
    write("cols.csv", b"google_maps_search_url,colour\n");
    write("empty.jsonl", b"\n");
    let file = dir.path().join("schedules.toml");
    let parse = |inputs_file: &str| {
        Config::parse(
            file.to_str().unwrap(),
            &job(&format!("{MAPS}inputs_file = \"{inputs_file}\"\n")),
        )
    };
    let good = parse("good.csv").unwrap();
    let body: serde_json::Value = serde_json::from_str(&good.jobs[0].live_body_text()).unwrap();
    assert!(body["inputs_file"].as_str().unwrap().ends_with("good.csv"));
    let errs = |name: &str| -> Vec<String> {
        parse(name)
            .unwrap_err()
            .errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect()
    };
    let bad = errs("bad.csv");
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(
        bad[0].starts_with("5:15: inputs_file: bad.csv:2:1: google_maps_search_url:"),
        "{bad:#?}"
    );
    assert_eq!(
        bad[1],
        "5:15: inputs_file: bad.csv:4:2: 2 fields where the header has 1"
    );
    assert_eq!(bad[2], "5:15: inputs_file: bad.csv:5:1: not UTF-8");
    assert!(errs("cols.csv")[0].contains("cols.csv:1:2: unknown column \"colour\""));
    assert_eq!(
        errs("empty.jsonl"),
        ["5:15: inputs_file: empty.jsonl has no inputs"]
    );
    assert!(errs("missing.csv")[0].contains("missing.csv:1:1: cannot read it"));
    only(
        &job(&format!(
            "{MAPS}input = {}\ninputs_file = \"x.csv\"\n",
            search("a")
        )),
        "6:1:",
        "input, inputs and inputs_file: write one of them",
    );
}

/// A remote job's inputs file is read at `check` and sent as the schedule's inputs (at most
/// 100); a file of one row is that one input, as `inputs = [X]` is.
#[test]
fn a_remote_jobs_inputs_file_becomes_its_schedules_inputs() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let rows = |n: usize| {
        let mut csv = String::from("google_maps_search_url,custom_data.row\n");
        for i in 0..n {
            let _ = writeln!(csv, "https://www.google.com/maps/search/q{i},{i}");
        }
        csv
    };
    for n in [1, 3, 101] {
        std::fs::write(dir.path().join(format!("r{n}.csv")), rows(n)).unwrap();
    }
    let file = dir.path().join("schedules.toml");
    let parse = |n: usize| {
        Config::parse(
            file.to_str().unwrap(),
            &job(&format!(
                "{MAPS}inputs_file = \"r{n}.csv\"\nrunner = \"remote\"\nwebhook = {{ url = \"https://e.com/h\" }}\n"
            )),
        )
    };
    let now = crate::clock::Clock::System.now();
    let three = parse(3).unwrap();
    let body = crate::sync::create_body(&three.jobs[0], now);
    let inputs = body["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 3);
    assert_eq!(inputs[2]["custom_data"]["row"], "2");
    let one = parse(1).unwrap();
    assert!(one.jobs[0].request.input.is_some() && one.jobs[0].request.inputs.is_none());
    let e = parse(101).unwrap_err().to_string();
    assert!(
        e.contains("r101.csv has 101 rows; a remote schedule takes at most 100"),
        "{e}"
    );
}
