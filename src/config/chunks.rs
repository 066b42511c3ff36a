//! A job file read one `[[job]]` at a time. toml builds the whole file's tree before anything
//! is read from it: for 10,000 jobs that is 45 MiB at its peak, which the allocator keeps as
//! resident memory long after the tree is gone. Read entry by entry, the tree never holds more
//! than one job. This path only ever accepts a clean file: at the first error or warning, or
//! anything a piecewise reading could misread (a table after the jobs, a `[[job]]` line inside a
//! multi-line string), the caller reads the whole file instead, which places every message
//! exactly.

use std::collections::HashMap;

use toml::de::DeTable;

use super::job::read_jobs;
use super::read::{Diags, Section};
use super::{Config, Head};

/// The configuration of a clean file, or `None` to read it whole.
pub(super) fn parse(path: &str, text: &str) -> Option<Config> {
    let starts = job_starts(text);
    let first = *starts.first()?;
    let mut d = Diags::new(text);
    d.dir = super::dir_of(path);
    let head = {
        let (root, syntax) = DeTable::parse_recoverable(&text[..first]);
        let root = Section {
            name: "the file".into(),
            table: root.get_ref(),
        };
        if !syntax.is_empty() || root.get("job").is_some() {
            return None;
        }
        Head::read(&mut d, &root)
    };
    let ctx = head.ctx();
    let mut jobs = Vec::with_capacity(starts.len());
    let mut seen = HashMap::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let (root, syntax) = DeTable::parse_recoverable(&text[start..end]);
        if !syntax.is_empty() || root.get_ref().len() != 1 || !d.is_clean() {
            return None;
        }
        let root = Section {
            name: "the file".into(),
            table: root.get_ref(),
        };
        d.offset = start;
        read_jobs(
            &mut d,
            root.get("job"),
            &head.defaults,
            ctx,
            (&mut jobs, &mut seen),
        );
    }
    d.offset = 0;
    if !d.is_clean() {
        return None;
    }
    head.finish(d, path, jobs).ok()
}

/// Where each line that opens a `[[job]]` entry starts.
fn job_starts(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let rest = line.trim_start().strip_prefix("[[job]]");
        if rest.is_some_and(|r| r.trim().is_empty() || r.trim_start().starts_with('#')) {
            out.push(at);
        }
        at += line.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[defaults]
timezone = "Europe/Paris"

[[job]]   # the first
name = "a"
cron = "0 9 * * *"
action = "linkedin-me"

[[job]]
name = "b"
cron = "0 10 * * *"
action = "googlemaps-search-places"
input = { google_maps_search_url = "https://www.google.com/maps/search/x" }
dst = { gap = "skip" }
"#;

    #[test]
    fn a_clean_file_read_piecewise_is_the_file_read_whole() {
        let piecewise = parse("s.toml", FILE).expect("clean");
        let whole = Config::parse("s.toml", &FILE.replace("[[job]]", "[[ job ]]")).unwrap();
        assert_eq!(piecewise.jobs.len(), 2);
        for (p, w) in piecewise.jobs.iter().zip(&whole.jobs) {
            assert_eq!(p.fingerprint(), w.fingerprint());
            assert_eq!(p.line, w.line);
        }
        assert_eq!(piecewise.jobs[1].line, 10);
    }

    #[test]
    fn anything_unclear_is_left_to_the_whole_reading() {
        // A table after the jobs, a duplicate name, a warning, an error.
        assert!(parse("s", &format!("{FILE}\n[daemon]\nmax_concurrent_runs = 2\n")).is_none());
        assert!(parse("s", &FILE.replace("name = \"b\"", "name = \"a\"")).is_none());
        assert!(
            parse(
                "s",
                &format!(
                    "[api]\ncatalog = \"warn\"\n{}",
                    FILE.replace("linkedin-me", "linkedin-new")
                )
            )
            .is_none()
        );
        assert!(parse("s", &FILE.replace("0 10", "0 99")).is_none());
        // A `[[job]]` line inside a multi-line string.
        let text = format!("{FILE}notes = '''\n[[job]]\n'''\n");
        assert!(parse("s", &text).is_none());
        assert_eq!(
            job_starts("x = 1\n  [[job]] # c\n[[job]]x\n[[job]]\n"),
            [6, 29]
        );
    }
}
