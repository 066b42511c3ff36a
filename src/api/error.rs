//! What can go wrong talking to the API, and what each failure means for a run's status.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::status::RunStatus;

/// The API's error body (every non-2xx answer should carry one).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error_label: Option<String>,
    pub error_scope: Option<String>,
    pub error_ref: Option<String>,
    pub message: Option<String>,
}

/// Why a request finally failed (after the retries it deserved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFailure {
    /// A non-2xx answer. `body` is `None` when the body was not the API's error shape.
    Http {
        status: u16,
        body: Option<ErrorBody>,
        /// The start of a body that was not the API's shape (HTML from a proxy, say).
        raw: String,
    },
    /// Rate limited beyond what waiting can cure now: a daily quota (with its reset) or a run of
    /// 429s longer than the retry budget.
    RateLimited {
        kind: String,
        reset: Option<DateTime<Utc>>,
        daily: bool,
    },
    /// No answer: connection refused, reset, timed out.
    Transport(String),
    /// A 2xx answer whose body is not JSON results (malformed, truncated, too large).
    BadBody { status: u16, detail: String },
    /// A Next URL on another origin: the key would leave the configured API.
    ForeignNext(String),
    /// A Next URL already visited in this run.
    PaginationLoop(String),
    /// A page whose items are those of a page already stored in this run, behind a new URL.
    PageRepeated { url: String, page: u32 },
    /// An identity lane refused the request before it was sent (daily cap, pause).
    Lane(crate::lanes::Denial),
    /// The run cannot be turned into a request (a v1 run when the file names no v1 API).
    Unsendable(String),
}

impl ApiFailure {
    /// The API-style label recorded as the run's `last_error.label`.
    pub fn label(&self) -> String {
        match self {
            ApiFailure::Http {
                body: Some(b),
                status,
                ..
            } => b
                .error_label
                .clone()
                .unwrap_or_else(|| format!("HTTP_{status}")),
            ApiFailure::Http { status, .. } => format!("HTTP_{status}"),
            ApiFailure::RateLimited { daily: true, .. } => "DAILY_QUOTA_EXCEEDED".into(),
            ApiFailure::RateLimited { .. } => "RATE_LIMIT_EXCEEDED".into(),
            ApiFailure::Transport(_) => "TRANSPORT_ERROR".into(),
            ApiFailure::BadBody { .. } => "INVALID_RESPONSE".into(),
            ApiFailure::ForeignNext(_) => "FOREIGN_PAGINATION_URL".into(),
            ApiFailure::PaginationLoop(_) | ApiFailure::PageRepeated { .. } => {
                "PAGINATION_LOOP".into()
            }
            ApiFailure::Lane(crate::lanes::Denial::DailyCap { .. }) => "DAILY_CAP".into(),
            ApiFailure::Lane(crate::lanes::Denial::Paused { .. }) => "LANE_PAUSED".into(),
            ApiFailure::Unsendable(_) => "UNSENDABLE_RUN".into(),
        }
    }

    /// True for what a later attempt may cure: the network, or the server's own errors (5xx),
    /// once the request's own retries are spent. Never a refusal, a 424, or a loop.
    pub fn worth_retrying(&self) -> bool {
        matches!(self, ApiFailure::Transport(_))
            || matches!(self, ApiFailure::Http { status, .. } if *status >= 500)
    }

    /// True when the API says the identity behind the request cannot be used: 424 from the
    /// integration, or `NO_VALID_ACCOUNT_CONFIGURED`.
    pub fn identity_unusable(&self) -> bool {
        matches!(self, ApiFailure::Http { status: 424, .. })
            || matches!(self, ApiFailure::Http { body: Some(b), .. }
                if b.error_label.as_deref() == Some("NO_VALID_ACCOUNT_CONFIGURED"))
    }

    /// The status a run ends in when this failure stops it, given whether pages were stored.
    pub fn run_status(&self, stored_pages: bool) -> RunStatus {
        use crate::catalog::Count;
        use crate::lanes::Denial;
        let blocked = match self {
            // An outreach run is not resumed after its cap: the next tick does that work, and a
            // resumed run would send the same invitation again.
            ApiFailure::Lane(Denial::DailyCap {
                count: Count::Outreach,
                ..
            }) => return RunStatus::Stopped,
            ApiFailure::RateLimited { .. } | ApiFailure::Lane(_) => true,
            ApiFailure::Http { status, body, .. } => {
                matches!(status, 402 | 403)
                    || body.as_ref().and_then(|b| b.error_label.as_deref())
                        == Some("NO_VALID_ACCOUNT_CONFIGURED")
            }
            _ => false,
        };
        let invalid = matches!(self, ApiFailure::Http { status: 400, body: Some(b), .. }
            if b.error_label.as_deref() == Some("INVALID_INPUT"));
        if blocked {
            RunStatus::Blocked
        } else if invalid {
            RunStatus::Invalid
        } else if stored_pages {
            RunStatus::PartialSucceeded
        } else {
            RunStatus::Failed
        }
    }

    /// When a blocked run may be tried again by itself.
    pub fn resume_at(&self) -> Option<DateTime<Utc>> {
        match self {
            ApiFailure::RateLimited { reset, .. } => *reset,
            ApiFailure::Lane(crate::lanes::Denial::DailyCap { count, until, .. }) => {
                (*count != crate::catalog::Count::Outreach).then_some(*until)
            }
            ApiFailure::Lane(crate::lanes::Denial::Paused { until, .. }) => Some(*until),
            _ => None,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiFailure::Http {
                status,
                body: Some(b),
                ..
            } => write!(
                f,
                "HTTP {status} {}: {}{}",
                b.error_label.as_deref().unwrap_or("(no label)"),
                b.message.as_deref().unwrap_or("(no message)"),
                b.error_ref
                    .as_deref()
                    .map(|r| format!(" (ref {r})"))
                    .unwrap_or_default()
            ),
            ApiFailure::Http { status, raw, .. } if raw.trim().is_empty() => {
                write!(f, "HTTP {status} with an empty body")
            }
            ApiFailure::Http { status, raw, .. } => {
                write!(
                    f,
                    "HTTP {status} with a body that is not an API error: {raw:?}"
                )
            }
            ApiFailure::RateLimited { kind, reset, .. } => {
                write!(f, "rate limited ({kind})")?;
                if let Some(r) = reset {
                    write!(f, " until {}", r.to_rfc3339())?;
                }
                Ok(())
            }
            ApiFailure::Transport(e) => write!(f, "no answer from the API: {e}"),
            ApiFailure::BadBody { status, detail } => {
                write!(f, "HTTP {status} answer is not usable results: {detail}")
            }
            ApiFailure::ForeignNext(u) => write!(
                f,
                "refused to follow a next-page URL on another origin ({u}): the API key stays on the configured origin"
            ),
            ApiFailure::PaginationLoop(u) => {
                write!(
                    f,
                    "pagination loop: next-page URL {u} was already fetched in this run"
                )
            }
            ApiFailure::PageRepeated { url, page } => {
                write!(
                    f,
                    "pagination loop: the page at {url} repeats page {page} of this run (not stored again)"
                )
            }
            ApiFailure::Lane(d) => write!(f, "{d}"),
            ApiFailure::Unsendable(why) => write!(f, "cannot send this run: {why}"),
        }
    }
}

/// Reads an error answer's body: the API's shape when it is one, the raw start otherwise.
pub fn http_failure(status: u16, bytes: &[u8]) -> ApiFailure {
    let body = serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .filter(|b| b.error_label.is_some() || b.message.is_some());
    let raw: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    ApiFailure::Http { status, body, raw }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_makes_a_run_invalid() {
        let f = http_failure(
            400,
            br#"{"error_label":"INVALID_INPUT","error_scope":"input","message":"bad","status_code":400}"#,
        );
        assert_eq!(f.run_status(false), RunStatus::Invalid);
        assert_eq!(f.label(), "INVALID_INPUT");
    }

    #[test]
    fn an_html_body_is_a_clear_error() {
        let f = http_failure(502, b"<html><body>Bad Gateway</body></html>");
        assert!(f.to_string().contains("HTTP 502"));
        assert!(f.to_string().contains("Bad Gateway"));
        assert_eq!(f.label(), "HTTP_502");
        assert_eq!(f.run_status(true), RunStatus::PartialSucceeded);
    }

    #[test]
    fn credits_permissions_and_accounts_block() {
        assert_eq!(http_failure(402, b"").run_status(false), RunStatus::Blocked);
        assert_eq!(
            http_failure(403, b"{}").run_status(true),
            RunStatus::Blocked
        );
        let f = http_failure(424, br#"{"error_label":"NO_VALID_ACCOUNT_CONFIGURED"}"#);
        assert_eq!(f.run_status(false), RunStatus::Blocked);
        assert_eq!(http_failure(404, b"").run_status(false), RunStatus::Failed);
    }
}
