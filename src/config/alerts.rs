//! The keys that tell people what happened: `webhook` (results), `notify` (a run ended badly),
//! `ping` (a dead-man switch), and `retry` (try a failed run again before telling anyone).
//! Header values may name an environment variable instead of holding a secret in the file.

use std::time::Duration;

use reqwest::Url;
use toml::de::DeValue;

use super::read::{self, Diags, Value};
use super::url;
use crate::status::RunStatus;

/// A header value: written in the file, or read from the environment when sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeaderValue {
    Text(String),
    Env(String),
}

impl HeaderValue {
    /// The value to send; an unset variable is an error naming it.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            HeaderValue::Text(t) => Ok(t.clone()),
            HeaderValue::Env(name) => {
                std::env::var(name).map_err(|_| format!("header variable {name} is not set"))
            }
        }
    }
}

/// Where a job's results are also delivered, in Captain Data's callback format.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Webhook {
    pub url: Url,
    pub headers: Vec<(String, HeaderValue)>,
    pub secret_env: Option<String>,
}

/// One POST when a run ends for good in one of `on`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notify {
    pub url: Url,
    pub on: Vec<RunStatus>,
    pub headers: Vec<(String, HeaderValue)>,
}

/// A failed run resumed from its cursor up to `attempts` more times, `backoff` doubling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

impl Retry {
    /// The wait before attempt `n` (1-based): `backoff`, doubled for each attempt before it.
    pub fn wait(&self, n: u32) -> Duration {
        self.backoff
            .saturating_mul(1 << n.saturating_sub(1).min(16))
            .min(Duration::from_hours(24))
    }
}

fn headers(d: &mut Diags, v: &Value, key: &str) -> Option<Vec<(String, HeaderValue)>> {
    let t = read::table(d, v, key, key)?;
    let mut out = Vec::new();
    for (k, v) in t.table {
        let value = match v.get_ref() {
            DeValue::Table(_) => {
                let inner = read::table(d, v, key, format!("{key}.{}", k.get_ref()))?;
                inner.only(d, &["env"]);
                let name = inner.get("env").and_then(|e| read::string(d, e, key));
                let Some(name) = name else {
                    d.at(
                        &v.span(),
                        format!("{key}: write a value or {{ env = \"NAME\" }}"),
                    );
                    return None;
                };
                HeaderValue::Env(name)
            }
            _ => HeaderValue::Text(read::string(d, v, key)?),
        };
        out.push((k.get_ref().to_string(), value));
    }
    Some(out)
}

pub(super) fn webhook(d: &mut Diags, v: &Value, section: &str) -> Option<Webhook> {
    let t = read::table(d, v, "webhook", format!("webhook of {section}"))?;
    t.only(d, &["url", "headers", "secret_env"]);
    let Some(url_value) = t.get("url") else {
        d.at(&v.span(), "webhook: url is required");
        return None;
    };
    let url = url(d, url_value, "webhook.url");
    let headers = match t.get("headers") {
        Some(h) => headers(d, h, "webhook.headers")?,
        None => Vec::new(),
    };
    let secret_env = t
        .get("secret_env")
        .and_then(|v| read::string(d, v, "webhook.secret_env"));
    Some(Webhook {
        url: url?,
        headers,
        secret_env,
    })
}

pub(super) fn notify(d: &mut Diags, v: &Value, section: &str) -> Option<Notify> {
    let t = read::table(d, v, "notify", format!("notify of {section}"))?;
    t.only(d, &["url", "on", "headers"]);
    let Some(url_value) = t.get("url") else {
        d.at(&v.span(), "notify: url is required");
        return None;
    };
    let url = url(d, url_value, "notify.url");
    let on = match t.get("on") {
        None => vec![RunStatus::Failed, RunStatus::Blocked, RunStatus::Invalid],
        Some(list) => {
            let mut on = Vec::new();
            for s in read::string_list(d, list, "notify.on")? {
                match s.parse::<RunStatus>() {
                    Ok(st) if st.is_final() => on.push(st),
                    _ => {
                        d.at(
                            &list.span(),
                            format!("notify.on: {s:?} is not a final status (SUCCEEDED, PARTIAL_SUCCEEDED, FAILED, BLOCKED, STOPPED, INVALID)"),
                        );
                        return None;
                    }
                }
            }
            on
        }
    };
    let headers = match t.get("headers") {
        Some(h) => headers(d, h, "notify.headers")?,
        None => Vec::new(),
    };
    Some(Notify {
        url: url?,
        on,
        headers,
    })
}

pub(super) fn retry(d: &mut Diags, v: &Value, section: &str) -> Option<Retry> {
    let t = read::table(d, v, "retry", format!("retry of {section}"))?;
    t.only(d, &["attempts", "backoff"]);
    let attempts = t
        .get("attempts")
        .map_or(Some(1), |a| read::integer(d, a, "retry.attempts", 0, 20))?;
    let backoff = t
        .get("backoff")
        .map_or(Some(Duration::from_mins(10)), |b| {
            read::positive_duration(d, b, "retry.backoff")
        })?;
    Some(Retry {
        attempts: attempts as u32,
        backoff,
    })
}

/// The text form of a URL safe for logs: userinfo and query string hidden.
pub fn redacted(u: &Url) -> String {
    let mut shown = u.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        let _ = shown.set_username("***");
        let _ = shown.set_password(None);
    }
    if shown.query().is_some() {
        shown.set_query(Some("***"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_logs_hide_their_secrets() {
        let u = Url::parse("https://user:pw@hooks.example.com/T1/B2?token=abc").unwrap();
        assert_eq!(redacted(&u), "https://***@hooks.example.com/T1/B2?***");
        let plain = Url::parse("https://hc-ping.com/uuid").unwrap();
        assert_eq!(redacted(&plain), "https://hc-ping.com/uuid");
    }

    #[test]
    fn retry_waits_double() {
        let r = Retry {
            attempts: 3,
            backoff: Duration::from_secs(10),
        };
        assert_eq!(
            [r.wait(1), r.wait(2), r.wait(3)],
            [10, 20, 40].map(Duration::from_secs)
        );
    }
}
