//! Group commit for result pages: pages that wait for the writer together are written in one
//! transaction. A commit writes every database page it touched
//! to the WAL, and the job's seen-record takes random keys, so one page of 100 items touched
//! about 120 index pages; four runs' pages committed together share many of them. A page still
//! gets its own answer (a page stored twice is refused alone), and none is answered before
//! the commit that holds it. A fault of the whole transaction (busy, full) falls back to one
//! transaction per page, each retried for the store's patience as every other write is.

use std::sync::Arc;
use std::time::Duration;

use super::db::Db;
use chrono::{DateTime, Utc};

use super::door::NewPage;
use super::runs::{self, PageToStore};
use super::{Health, Result, StoreError};

/// The most pages one transaction takes: it bounds the time a tick waits behind a group.
pub const MOST: usize = 16;

/// A page waiting for the writer, with where its answer goes.
pub struct PageTask {
    pub uid: String,
    pub page: Arc<NewPage>,
    pub now: DateTime<Utc>,
    pub reply: tokio::sync::oneshot::Sender<Result<()>>,
}

impl PageTask {
    fn to_store(&self) -> PageToStore<'_> {
        let p = &self.page;
        PageToStore {
            page_no: p.page_no,
            url: &p.url,
            items: &p.texts,
            keys: &p.keys,
            content_hash: &p.content_hash,
            next_url: p.next_url.as_deref(),
            callback: p.callback.as_ref().map(|(u, b)| (u.as_str(), b)),
            input: p.input,
        }
    }
}

/// Stores `pages` (in the order they came), together when there are several, and answers each.
pub fn store(conn: &mut Db, pages: Vec<PageTask>, health: &Health, patience: Duration) {
    if pages.len() > 1
        && let Ok(answers) = conn.fenced(|c| together(c, &pages))
    {
        super::wrote(health);
        for (p, answer) in pages.into_iter().zip(answers) {
            let _ = p.reply.send(answer);
        }
        return;
    }
    for p in pages {
        let answer = super::patiently(
            conn,
            &|c| runs::store_page(c, &p.uid, &p.to_store(), p.now),
            health,
            patience,
        );
        let _ = p.reply.send(answer);
    }
}

/// One transaction for every page. A page refused before it wrote anything (stored already, its
/// run gone) gets that answer; any other error aborts the whole (rolled back, nothing answered).
/// No savepoints: SQLite keeps a savepoint's undo in a temporary file, which cost more than the
/// group saved.
fn together(conn: &mut Db, pages: &[PageTask]) -> Result<Vec<Result<()>>> {
    let tx = super::write_tx(conn)?;
    let mut answers = Vec::with_capacity(pages.len());
    for p in pages {
        match runs::insert_page(&tx, &p.uid, &p.to_store(), p.now) {
            Ok(()) => answers.push(Ok(())),
            Err(e @ (StoreError::PageAlreadyStored { .. } | StoreError::NotFound(_))) => {
                answers.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit()?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::store::{NewRun, Store, StoreError, Trigger};

    #[tokio::test]
    async fn pages_waiting_together_are_answered_each_and_a_repeat_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).unwrap();
        let now = crate::store::parse_ts("2026-01-01T00:00:00Z").unwrap();
        let mut uids = Vec::new();
        for job in ["a", "b"] {
            let new = NewRun {
                job: job.into(),
                action_name: "act".into(),
                trigger: Trigger::Manual,
                scheduled_for: None,
                body: serde_json::json!({"input": {}}).to_string(),
                callback_url: None,
                owner: None,
            };
            uids.push(store.create_run(new, now).await.unwrap().uid);
        }
        let page = |n: u32, id: &str| {
            let items = [serde_json::json!({ "uid": id })];
            NewPage::new("act", n, format!("http://x/{n}"), &items, None)
        };
        // Hold the writer so that the pages queue up behind it.
        let (release, held) = mpsc::channel::<()>();
        let blocker = store.call(move |_| {
            let _ = held.recv();
            Ok(())
        });
        let queued = async {
            tokio::join!(
                store.store_page(&uids[0], page(1, "x"), now),
                store.store_page(&uids[1], page(1, "y"), now),
                store.store_page(&uids[0], page(1, "z"), now),
                store.store_page("no-such-run", page(1, "w"), now),
                store.store_page(&uids[1], page(2, "x"), now),
            )
        };
        let released = async {
            tokio::task::yield_now().await;
            release.send(()).unwrap();
        };
        let (held, (a1, b1, again, gone, b2), ()) = tokio::join!(blocker, queued, released);
        held.unwrap();
        a1.unwrap();
        b1.unwrap();
        b2.unwrap();
        assert!(matches!(
            again,
            Err(StoreError::PageAlreadyStored { page: 1, .. })
        ));
        assert!(matches!(gone, Err(StoreError::NotFound(_))));
        let a = store.existing_run(&uids[0]).await.unwrap();
        let b = store.existing_run(&uids[1]).await.unwrap();
        assert_eq!((a.pages, a.items, b.pages, b.items), (1, 1, 2, 2));
        let a_items = store.items(a.id).await.unwrap();
        assert_eq!(
            a_items,
            [serde_json::json!({"uid": "x"})],
            "the repeat wrote nothing"
        );
    }
}
