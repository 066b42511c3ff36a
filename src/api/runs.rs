//! The runs endpoints async mode needs: the create (sent at most once: a create that may have
//! reached the API is looked for, never sent again), a run, the recent runs of an action, the
//! callback log of a run (20 a page) and its replay, and resume.

use std::future::Future;
use std::pin::Pin;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::schedules::parse;
use super::{ApiFailure, Attempts, Client, Gate};

/// A run as the API describes it (the fields watchbell reads).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RemoteRun {
    pub uid: String,
    #[serde(default)]
    pub action_name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub callback: Option<CallbackTarget>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub postponed_until: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CallbackTarget {
    #[serde(default)]
    pub url: Option<String>,
}

impl RemoteRun {
    pub fn callback_url(&self) -> Option<&str> {
        self.callback.as_ref()?.url.as_deref()
    }
}

/// One entry of the callback log (no payload).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub uid: String,
    #[serde(default)]
    pub parent_uid: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub batch_uid: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
}

impl LogEntry {
    /// An original callback (not a replay of one).
    pub fn is_original(&self) -> bool {
        self.parent_uid.is_none()
    }

    /// The vendor gave up delivering it.
    pub fn failed(&self) -> bool {
        self.status.as_deref() == Some("FAILED")
    }
}

/// The log's page size, the API's maximum.
const LOG_PAGE: usize = 20;
const RUNS_PAGE: usize = 100;

/// Lets a request through once: a create that may have reached the API is not sent again.
struct Once;

impl Gate for Once {
    fn enter(&self) -> Pin<Box<dyn Future<Output = Result<(), ApiFailure>> + Send + '_>> {
        Box::pin(async { Ok(()) })
    }
    fn leave(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
    fn may_resend(&self) -> bool {
        false
    }
}

impl Client {
    /// `POST /actions/{action}/run/async`: the API's run uid. 429s are waited out (nothing was
    /// accepted); a 5xx or a lost answer is not retried: the run may exist.
    pub async fn create_async(&self, action: &str, body: &Value) -> Result<String, ApiFailure> {
        let url = self.url(&format!("actions/{action}/run/async"));
        let a = self.post_once(url, body).await?;
        let v: Value = parse(a.status.as_u16(), &a.body)?;
        v.get("run_uid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiFailure::BadBody {
                status: a.status.as_u16(),
                detail: "the answer has no run_uid".into(),
            })
    }

    /// `GET /runs/{uid}`; `None` when the API does not know it.
    pub async fn get_run(&self, uid: &str) -> Result<Option<RemoteRun>, ApiFailure> {
        let url = self.url(&format!("runs/{uid}"));
        match self
            .request(Method::GET, url, None, &mut Attempts::default())
            .await
        {
            Ok(a) => parse(a.status.as_u16(), &a.body).map(Some),
            Err(ApiFailure::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The most recent async runs of `action`, newest first, up to `max`.
    pub async fn recent_async_runs(
        &self,
        action: &str,
        max: usize,
    ) -> Result<Vec<RemoteRun>, ApiFailure> {
        let mut all = Vec::new();
        while all.len() < max {
            let mut url = self.url("runs");
            url.query_pairs_mut()
                .append_pair("action_name", action)
                .append_pair("execution_mode", "ASYNC")
                .append_pair("sort", "-created_at")
                .append_pair("limit", &RUNS_PAGE.to_string())
                .append_pair("offset", &all.len().to_string());
            let a = self
                .request(Method::GET, url, None, &mut Attempts::default())
                .await?;
            let page: Vec<RemoteRun> = parse(a.status.as_u16(), &a.body)?;
            let short = page.len() < RUNS_PAGE;
            all.extend(page);
            if short {
                break;
            }
        }
        Ok(all)
    }

    /// The whole callback log of run `uid`, oldest first (every page, paced like any request).
    pub async fn callback_log(&self, uid: &str) -> Result<Vec<LogEntry>, ApiFailure> {
        let mut all = Vec::new();
        loop {
            let mut url = self.url("runs/callbacks");
            url.query_pairs_mut()
                .append_pair("run_uid", uid)
                .append_pair("sort", "created_at")
                .append_pair("limit", &LOG_PAGE.to_string())
                .append_pair("offset", &all.len().to_string());
            let a = self
                .request(Method::GET, url, None, &mut Attempts::default())
                .await?;
            let page: Vec<LogEntry> = parse(a.status.as_u16(), &a.body)?;
            let short = page.len() < LOG_PAGE;
            all.extend(page);
            if short {
                return Ok(all);
            }
        }
    }

    /// `POST /runs/callbacks/{uid}/replay`, sent once (each replay spends one of the three).
    pub async fn replay_callback(&self, callback_uid: &str) -> Result<(), ApiFailure> {
        let url = self.url(&format!("runs/callbacks/{callback_uid}/replay"));
        self.post_once(url, &json!({})).await.map(|_| ())
    }

    /// A POST that is not sent again once it may have reached the API (429s are waited out).
    async fn post_once(
        &self,
        url: reqwest::Url,
        body: &Value,
    ) -> Result<super::Answer, ApiFailure> {
        let deadline = tokio::time::Instant::now() + super::MAX_WAIT_OUTSIDE_RUNS;
        self.request_until(
            Method::POST,
            url,
            Some(body),
            &mut Attempts::default(),
            Some(deadline),
            Some(&Once),
        )
        .await
    }

    /// `POST /runs/{uid}/resume`: the run as the API now describes it.
    pub async fn resume_run(&self, uid: &str) -> Result<RemoteRun, ApiFailure> {
        let url = self.url(&format!("runs/{uid}/resume"));
        let a = self
            .request(
                Method::POST,
                url,
                Some(&json!({})),
                &mut Attempts::default(),
            )
            .await?;
        parse(a.status.as_u16(), &a.body)
    }
}
