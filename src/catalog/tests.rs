use super::*;
use crate::config::Config;
use crate::fnv::fnv64;

#[test]
fn the_embedded_catalog_has_what_its_readme_says() {
    let c = v4();
    assert_eq!(c.actions.len(), 71);
    let live: Vec<&Mode> = c
        .actions
        .values()
        .filter_map(|a| a.modes.live.as_ref())
        .collect();
    assert_eq!(live.len(), 71);
    // 10 take no identity_mode; one of them (linkedin-me) takes identity_ids only.
    assert_eq!(
        live.iter().filter(|m| !m.takes("identity_mode")).count(),
        10
    );
    assert_eq!(live.iter().filter(|m| !m.takes_identities()).count(), 9);
    assert_eq!(live.iter().filter(|m| !m.takes_parameters()).count(), 23);
    assert_eq!(c.actions.values().filter(|a| !a.takes_input()).count(), 8);
    let a = c.action("salesnavigator-search-company-employees").unwrap();
    assert!(a.paginated() && a.takes_identities() && !a.output_is_object);
    assert_eq!(a.output_fields().next(), Some("full_name"));
    assert!(!c.action("linkedin-extract-people").unwrap().paginated());
}

#[test]
fn a_misspelt_action_is_matched_to_the_nearest_name() {
    let c = v4();
    assert_eq!(
        c.closest("salesnavigator-search-company-employes"),
        Some("salesnavigator-search-company-employees")
    );
    assert_eq!(
        c.closest("linkedn-extract-people"),
        Some("linkedin-extract-people")
    );
    assert_eq!(c.closest("bake-a-cake"), None);
}

#[test]
fn aliases_satisfy_an_alternative() {
    let a = v4()
        .action("salesnavigator-search-company-employees")
        .unwrap();
    let input = |v: serde_json::Value| v.as_object().unwrap().clone();
    assert_eq!(
        a.matching_alternative(&input(serde_json::json!({"company_url": "x"}))),
        Some(0)
    );
    assert_eq!(
        a.matching_alternative(&input(serde_json::json!({"company_id": "1"}))),
        Some(1)
    );
    assert_eq!(
        a.matching_alternative(&input(serde_json::json!({"keywords": "x"}))),
        None
    );
}

/// Every example job validates in the mode each runner uses.
#[test]
fn every_example_job_passes_check_locally_and_remotely() {
    for name in v4().actions.keys() {
        let job =
            example_job(name, ModeName::Live).unwrap_or_else(|| panic!("no example for {name}"));
        let local = format!("[[job]]\nname = \"j\"\ncron = \"0 9 * * 1\"\n{job}");
        if let Err(e) = Config::parse("examples", &local) {
            panic!("{name} (live):\n{e}\n{local}");
        }
        let job = example_job(name, ModeName::Schedule).unwrap();
        let remote = format!(
            "[[job]]\nname = \"j\"\ncron = \"0 9 * * 1\"\n{job}runner = \"remote\"\nwebhook = {{ url = \"https://example.com/h\" }}\n"
        );
        if let Err(e) = Config::parse("examples", &remote) {
            panic!("{name} (schedule):\n{e}\n{remote}");
        }
    }
}

#[test]
fn old_bodies_are_cleaned_to_what_the_action_takes() {
    let old = serde_json::json!({"input": {}, "parameters": {}, "identity_mode": "direct", "identity_ids": null});
    assert_eq!(
        clean_live_body("linkedin-accept-invitations", &old),
        serde_json::json!({"identity_mode": "direct"})
    );
    let old = serde_json::json!({"input": {"google_maps_search_url": "u"}, "parameters": {}, "identity_mode": "direct", "identity_ids": null});
    assert_eq!(
        clean_live_body("googlemaps-search-places", &old),
        serde_json::json!({"input": {"google_maps_search_url": "u"}})
    );
    let unknown = serde_json::json!({"input": {"a": 1}, "identity_ids": null});
    assert_eq!(
        clean_live_body("newer-action", &unknown),
        serde_json::json!({"input": {"a": 1}})
    );
}

#[test]
fn every_action_names_an_identity_field_it_returns() {
    let fields: toml::Table = toml::from_str(IDENTITY).unwrap();
    for (name, action) in &v4().actions {
        let field = fields[name].as_str().unwrap();
        assert!(
            action.output.get(field).is_some(),
            "{name}: {field} is not a result field"
        );
    }
    let a = serde_json::json!({"linkedin_profile_url": "https://www.linkedin.com/in/a", "x": 1});
    assert_eq!(
        item_key("linkedin-search-people", &a, "ignored"),
        fnv64(b"k:https://www.linkedin.com/in/a")
    );
    let v1 = serde_json::json!({"uid": "u-1"});
    assert_eq!(item_key("/people/search", &v1, "{}"), fnv64(b"k:u-1"));
    let bare = serde_json::json!({"name": "n"});
    let text = "{\"name\":\"n\"}";
    let identity = format!("h:{:016x}", fnv64(text.as_bytes()));
    assert_eq!(
        item_key("linkedin-search-people", &bare, text),
        fnv64(identity.as_bytes())
    );
}

#[test]
fn the_verb_says_what_a_request_counts_against() {
    assert_eq!(Count::of("linkedin-connect-profile"), Count::Outreach);
    assert_eq!(Count::of("salesnavigator-inmail-profile"), Count::Outreach);
    assert_eq!(Count::of("linkedin-mark-message-as-read"), Count::Outreach);
    assert_eq!(Count::of("linkedin-visit-profile"), Count::Visit);
    assert_eq!(Count::of("linkedin-extract-people"), Count::Visit);
    assert_eq!(Count::of("linkedin-search-people"), Count::Read);
    let outreach = v4()
        .actions
        .keys()
        .filter(|a| Count::of(a) == Count::Outreach)
        .count();
    assert_eq!(
        outreach, 13,
        "connect x2, message, inmail x2, invite, follow, like, comment, accept, withdraw, archive, mark"
    );
}

#[test]
fn lanes_follow_the_identities_a_request_goes_through() {
    let b = |v: serde_json::Value| v;
    assert_eq!(
        lanes(
            "linkedin-search-people",
            &b(serde_json::json!({"identity_mode": "auto"}))
        ),
        ["workspace"]
    );
    assert_eq!(
        lanes(
            "linkedin-search-people",
            &b(serde_json::json!({"identity_ids": ["b", "a", "b"]}))
        ),
        ["identity:a", "identity:b"]
    );
    assert!(
        lanes(
            "linkedin-search-people",
            &b(serde_json::json!({"identity_mode": "managed"}))
        )
        .is_empty()
    );
    assert!(
        lanes(
            "googlemaps-search-places",
            &b(serde_json::json!({"input": {}}))
        )
        .is_empty()
    );
    assert_eq!(
        lanes("linkedin-me", &b(serde_json::json!({}))),
        ["workspace"]
    );
}
