//! `[store]`: the state in `PostgreSQL` instead of the `SQLite` file. The file names where the
//! URL is (`url_env`, or `url_file` for a credential systemd hands over), never the URL itself:
//! it holds a password, and the job file is world-readable.

use super::read::{self, Diags, Value};
use crate::store::pg::UrlSource;

pub(super) fn read(d: &mut Diags, v: &Value) -> Option<UrlSource> {
    let s = read::table(d, v, "store", "[store]")?;
    s.only(d, &["url_env", "url_file"]);
    match (s.get("url_env"), s.get("url_file")) {
        (Some(_), Some(f)) => {
            d.at(
                &f.span(),
                "[store]: url_env and url_file are both set; name one place for the URL",
            );
            None
        }
        (Some(e), None) => {
            let name = read::string(d, e, "url_env")?;
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !valid {
                d.at(
                    &e.span(),
                    format!("url_env: {name:?} is not an environment variable name"),
                );
                return None;
            }
            Some(UrlSource::Env(name))
        }
        (None, Some(f)) => {
            let path = read::string(d, f, "url_file")?;
            if path.is_empty() {
                d.at(&f.span(), "url_file: empty path");
                return None;
            }
            Some(UrlSource::File(path.into()))
        }
        (None, None) => {
            d.at(
                &v.span(),
                "[store]: url_env or url_file is required (where the PostgreSQL URL is)",
            );
            None
        }
    }
}
