//! The schedules endpoints: list (limit/offset paging), get, create (`run/schedule`) and manage
//! (pause/resume/cancel). Paced and retried like every other request.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiFailure, Attempts, Client};

/// A remote schedule as the API describes it (the fields watchbell reads).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RemoteSchedule {
    pub uid: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub action_name: String,
    /// Null in some answers: then the schedule counts as neither ACTIVE nor PAUSED.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub next_execution_at: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl RemoteSchedule {
    /// CANCELLED and COMPLETED schedules never run again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status(), "CANCELLED" | "COMPLETED")
    }

    /// The status, `"UNKNOWN"` when the API gave none.
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("UNKNOWN")
    }

    pub fn timezone(&self) -> &str {
        self.timezone.as_deref().unwrap_or("UTC")
    }
}

/// A string field the API may send as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

const PAGE: usize = 100;

/// A 2xx answer's JSON body as `T`, or why it is not one.
pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    status: u16,
    body: &[u8],
) -> Result<T, ApiFailure> {
    serde_json::from_slice(body).map_err(|e| ApiFailure::BadBody {
        status,
        detail: format!("not the expected JSON ({e})"),
    })
}

impl Client {
    /// The account's credits, plan and billing period from v1 `GET /quotas` when the job file
    /// names v1, else from v4 `GET /workspaces` (the key goes to no origin the user did not name).
    /// Both are cheap calls with the same fields.
    pub async fn credits(&self) -> Result<crate::store::account::Account, ApiFailure> {
        let url = match self.v1_base() {
            Some(v1) => super::under(v1, "quotas"),
            None => self.url("workspaces"),
        };
        let answer = self
            .request(Method::GET, url, None, &mut Attempts::default())
            .await?;
        let mut a: crate::store::account::Account = parse(answer.status.as_u16(), &answer.body)?;
        a.read_at = self.clock.now();
        Ok(a)
    }

    /// Every schedule of the account, paging until a short page.
    pub async fn list_schedules(&self) -> Result<Vec<RemoteSchedule>, ApiFailure> {
        let mut all = Vec::new();
        loop {
            let mut url = self.url("schedules");
            url.query_pairs_mut()
                .append_pair("limit", &PAGE.to_string())
                .append_pair("offset", &all.len().to_string());
            let answer = self
                .request(Method::GET, url, None, &mut Attempts::default())
                .await?;
            let page: Vec<RemoteSchedule> = parse(answer.status.as_u16(), &answer.body)?;
            let short = page.len() < PAGE;
            all.extend(page);
            if short {
                return Ok(all);
            }
        }
    }

    /// One schedule; `None` when the API does not know it.
    pub async fn get_schedule(&self, uid: &str) -> Result<Option<RemoteSchedule>, ApiFailure> {
        let url = self.url(&format!("schedules/{uid}"));
        match self
            .request(Method::GET, url, None, &mut Attempts::default())
            .await
        {
            Ok(a) => parse(a.status.as_u16(), &a.body).map(Some),
            Err(ApiFailure::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a remote schedule of `action`; returns its uid.
    pub async fn create_schedule(&self, action: &str, body: &Value) -> Result<String, ApiFailure> {
        let url = self.url(&format!("actions/{action}/run/schedule"));
        let a = self
            .request(Method::POST, url, Some(body), &mut Attempts::default())
            .await?;
        let v: Value = parse(a.status.as_u16(), &a.body)?;
        v.get("schedule_uid")
            .or_else(|| v.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiFailure::BadBody {
                status: a.status.as_u16(),
                detail: "the answer has no schedule_uid".into(),
            })
    }

    /// `pause`, `resume` or `cancel`; returns the updated schedule.
    pub async fn manage_schedule(
        &self,
        uid: &str,
        action: &str,
    ) -> Result<RemoteSchedule, ApiFailure> {
        let url = self.url(&format!("schedules/{uid}/{action}"));
        let a = self
            .request(
                Method::POST,
                url,
                Some(&serde_json::json!({})),
                &mut Attempts::default(),
            )
            .await?;
        parse(a.status.as_u16(), &a.body)
    }
}
