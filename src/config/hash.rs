//! The configuration's hash, as the nodes of a cluster compare it: what the file *means*, not
//! its bytes. It covers the validated jobs (sorted by name, their defaults applied, their line
//! in the file aside), `[api]` but for where each node reads its key, `[safety]`, `[receiver]
//! public_url` and the content of every `inputs_file`. It leaves out what is rightly each
//! node's own: `[daemon]` (database, listen addresses, concurrency), `[store]`, `[receiver]
//! listen`, comments and order.

use std::path::Path;

use aws_lc_rs::digest;

use super::Config;

impl Config {
    /// SHA-256, hex, of what this configuration means; `dir` is the job file's directory
    /// (`inputs_file` paths are relative to it). An unreadable inputs file hashes as such, so
    /// two nodes that cannot read it agree, and one that can differs.
    pub fn cluster_hash(&self, dir: &Path) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut jobs: Vec<_> = self.jobs.iter().collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        for job in jobs {
            ctx.update(format!("job {} {:016x}\n", job.name, job.fingerprint()).as_bytes());
            if let Some(file) = &job.request.inputs_file {
                match std::fs::read(dir.join(file)) {
                    Ok(bytes) => {
                        ctx.update(format!("inputs_file {} {}\n", file, bytes.len()).as_bytes());
                        ctx.update(&bytes);
                    }
                    Err(e) => ctx.update(
                        format!("inputs_file {file} unreadable: {:?}\n", e.kind()).as_bytes(),
                    ),
                }
            }
        }
        let a = &self.api;
        ctx.update(
            format!(
                "api {} {:?} {:?} {:?} {:?} {:?} {:?} {}\n",
                a.base_url,
                a.plan,
                a.rate_limit,
                a.request_timeout,
                a.catalog,
                a.v1_base_url.as_ref().map(reqwest::Url::as_str),
                a.cursor_ttl,
                a.sandbox
            )
            .as_bytes(),
        );
        ctx.update(format!("safety {:?}\n", self.safety).as_bytes());
        let public = self
            .receiver
            .as_ref()
            .and_then(|r| r.public_url.as_ref())
            .map(reqwest::Url::as_str);
        ctx.update(format!("receiver {public:?}\n").as_bytes());
        data_encoding::HEXLOWER.encode(ctx.finish().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const HEAD: &str = "[api]\nbase_url = \"https://api.captaindata.com/v4\"\n";

    fn hash(dir: &std::path::Path, text: &str) -> String {
        let path = dir.join("schedules.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap().cluster_hash(dir)
    }

    fn job(name: &str, cron: &str) -> String {
        format!(
            "[[job]]\nname = \"{name}\"\ncron = \"{cron}\"\naction = \"googlemaps-search-places\"\n\
             input = {{ google_maps_search_url = \"https://www.google.com/maps/search/{name}\" }}\n"
        )
    }

    #[test]
    fn what_the_file_means_not_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let base = hash(
            d,
            &format!("{HEAD}{}{}", job("a", "0 9 * * *"), job("b", "0 10 * * *")),
        );
        // Comments, job order and node-local keys change nothing.
        let same = hash(
            d,
            &format!(
                "# ours\n{HEAD}[daemon]\ndatabase = \"/elsewhere.db\"\nmax_concurrent_runs = 3\nmetrics_listen = \"127.0.0.1:9\"\n\n{}\n# between\n{}",
                job("b", "0 10 * * *"),
                job("a", "0 9 * * *")
            ),
        );
        assert_eq!(base, same);
        // A job's meaning, the API or the safety caps do.
        let changed = [
            format!("{HEAD}{}{}", job("a", "0 9 * * *"), job("b", "0 11 * * *")),
            format!(
                "{HEAD}plan = \"highest\"\n{}{}",
                job("a", "0 9 * * *"),
                job("b", "0 10 * * *")
            ),
            format!(
                "{HEAD}[safety]\ndaily_cap = {{ outreach = 10 }}\n{}{}",
                job("a", "0 9 * * *"),
                job("b", "0 10 * * *")
            ),
        ];
        for text in changed {
            assert_ne!(base, hash(d, &text), "{text}");
        }
    }

    #[test]
    fn an_inputs_files_content_counts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let text = format!(
            "{HEAD}[[job]]\nname = \"f\"\ncron = \"0 9 * * *\"\naction = \"googlemaps-search-places\"\ninputs_file = \"in.csv\"\n"
        );
        std::fs::write(
            d.join("in.csv"),
            "google_maps_search_url\nhttps://www.google.com/maps/search/a\n",
        )
        .unwrap();
        let one = hash(d, &text);
        std::fs::write(
            d.join("in.csv"),
            "google_maps_search_url\nhttps://www.google.com/maps/search/b\n",
        )
        .unwrap();
        assert_ne!(one, hash(d, &text));
    }
}
