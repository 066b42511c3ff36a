//! `[receiver]`: where the vendor's callbacks reach this daemon (async runs, remote schedules with
//! `receive = true`). The public URL is what goes into every callback; it must be https, except
//! a loopback http URL beside a loopback API (the sandbox), so a token never crosses a network
//! in clear text.

use std::net::SocketAddr;
use std::time::Duration;

use super::read::Value;
use reqwest::Url;

use super::read::{self, Diags, Section};

/// `[receiver]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub listen: SocketAddr,
    /// What the vendor reaches; callbacks go to `<public_url>/callbacks/...`. `None` until the
    /// address is known, when `run --sandbox` binds port 0 (then it is the bound address).
    pub public_url: Option<Url>,
    /// Bodies larger than this are refused (413) unread.
    pub max_body: u64,
    /// An async run with no callback for this long is checked against the API.
    pub callback_timeout: Duration,
    /// A batch missing for this long is replayed.
    pub replay_after: Duration,
}

impl Receiver {
    /// Bound on `127.0.0.1:0`, its URL set once bound (`run --sandbox`).
    pub fn sandbox() -> Receiver {
        Receiver {
            listen: "127.0.0.1:0".parse().expect("valid"),
            public_url: None,
            max_body: DEFAULT_MAX_BODY,
            callback_timeout: Duration::from_mins(2),
            replay_after: Duration::from_secs(5),
        }
    }

    /// The callback URL of a run (`r`) or of a remote job (`s`).
    pub fn callback_url(&self, kind: &str, name: &str) -> String {
        let base = self
            .public_url
            .as_ref()
            .map_or("http://127.0.0.1:0", |u| u.as_str().trim_end_matches('/'));
        format!("{}/callbacks/{kind}/{name}", base.trim_end_matches('/'))
    }
}

const DEFAULT_MAX_BODY: u64 = 32 << 20;

/// True when `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn read(d: &mut Diags, v: &Value, base_url: Option<&Url>) -> Option<Receiver> {
    let s = read::table(d, v, "receiver", "[receiver]")?;
    s.only(
        d,
        &[
            "listen",
            "public_url",
            "max_body",
            "callback_timeout",
            "replay_after",
        ],
    );
    let listen = match s.get("listen") {
        None => {
            let at = s.key_span("public_url").unwrap_or(v.span());
            d.at(
                &at,
                "[receiver]: listen is required (an address like \"127.0.0.1:8787\")",
            );
            None
        }
        Some(v) => read::string(d, v, "listen").and_then(|a| {
            let parsed = a.parse().ok();
            if parsed.is_none() {
                d.at(
                    &v.span(),
                    format!("listen: {a:?} is not an address like \"127.0.0.1:8787\""),
                );
            }
            parsed
        }),
    };
    let public_url = match s.get("public_url") {
        None => {
            d.at(
                &v.span(),
                "[receiver]: public_url is required (what Captain Data reaches, https)",
            );
            None
        }
        Some(u) => public_url(d, u, base_url),
    };
    let max_body = s.get("max_body").map_or(Some(DEFAULT_MAX_BODY), |v| {
        read::string(d, v, "max_body").and_then(|t| match size(&t) {
            Ok(n) => Some(n),
            Err(why) => {
                d.at(&v.span(), format!("max_body {t:?}: {why}"));
                None
            }
        })
    });
    let timeout = duration(d, &s, "callback_timeout", Duration::from_hours(1));
    let replay = duration(d, &s, "replay_after", Duration::from_mins(5));
    Some(Receiver {
        listen: listen?,
        public_url: Some(public_url?),
        max_body: max_body?,
        callback_timeout: timeout?,
        replay_after: replay?,
    })
}

fn duration(d: &mut Diags, s: &Section, key: &str, default: Duration) -> Option<Duration> {
    s.get(key)
        .map_or(Some(default), |v| read::positive_duration(d, v, key))
}

fn public_url(d: &mut Diags, v: &Value, base_url: Option<&Url>) -> Option<Url> {
    let u = super::url(d, v, "public_url")?;
    let loopback_pair = is_loopback(&u) && base_url.is_some_and(is_loopback);
    if u.scheme() != "https" && !loopback_pair {
        d.at(
            &v.span(),
            format!(
                "public_url: {:?} must be https (the callback token travels in it); http is accepted only for a loopback URL beside a loopback base_url",
                u.as_str()
            ),
        );
        return None;
    }
    if u.query().is_some() || u.fragment().is_some() {
        d.at(
            &v.span(),
            "public_url: no query or fragment (watchbell appends /callbacks/...)",
        );
        return None;
    }
    Some(u)
}

/// `"32MiB"`, `"512KiB"`, `"1GiB"`, `"1000"` (bytes): at least 1 KiB, at most 1 GiB.
fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| "write it as N, NKiB, NMiB or NGiB".to_string())?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use KiB, MiB or GiB")),
    };
    match n.checked_mul(mult) {
        Some(b) if (1 << 10..=1 << 30).contains(&b) => Ok(b),
        _ => Err("must be between 1KiB and 1GiB".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_units_and_bounds() {
        assert_eq!(size("32MiB"), Ok(32 << 20));
        assert_eq!(size("2048"), Ok(2048));
        assert_eq!(size("1 GiB"), Ok(1 << 30));
        assert!(size("12").is_err());
        assert!(size("2TiB").is_err());
        assert!(size("MiB").is_err());
    }
}
