//! What due ticks become, decided apart from recording it: a pure function of the batch, the
//! job file, the instant and the runs in flight, so the catch-up, enabled and overlap rules are
//! unit tests without sockets or a database.

use chrono::{DateTime, Utc};

use crate::config::{Config, Job, Overlap};
use crate::scheduler::Due;
use crate::store::{NewRun, Skip, SkipReason, Trigger};

/// A tick fired more than this after its instant counts as missed (the daemon was down, the
/// machine slept, the clock jumped) and is subject to the job's catch-up window.
pub const LATE: chrono::Duration = chrono::Duration::seconds(5);

/// What a decision looks at (the verdicts borrow the jobs, `'c`).
pub struct View<'c, 'a> {
    pub now: DateTime<Utc>,
    pub config: &'c Config,
    /// A job's runs not yet finished, in this process or any other.
    pub in_flight: &'a dyn Fn(&str) -> usize,
    /// Who will own the fired runs.
    pub owner: &'a str,
    /// The account had no credits left at its last reading (a run could only fail).
    pub credits_out: bool,
    /// Why ticks missed before this start were: [`SkipReason::DaemonDown`] or, after a
    /// cluster's failover, [`SkipReason::Failover`].
    pub missed: SkipReason,
}

/// What a batch of due ticks becomes.
#[derive(Debug, Default)]
pub struct Verdicts<'a> {
    pub skips: Vec<Skip>,
    /// Runs to create, each with its nominal tick.
    pub fires: Vec<(DateTime<Utc>, NewRun)>,
    /// The job of each fire, in the same order (borrowed: cloning 3,000 jobs a second was a
    /// third of deciding a saturated batch).
    pub fired_jobs: Vec<&'a Job>,
    /// Jobs whose runs in flight are to be stopped first (`overlap = "replace"`).
    pub replace: Vec<String>,
    /// Jobs with older missed ticks passed over without a row each, and how many.
    pub unlisted: Vec<(String, u64)>,
}

/// Decides every tick of `batch`: skipped with a reason, or fired.
pub fn decide<'c>(batch: Vec<Due>, view: &View<'c, '_>) -> Verdicts<'c> {
    // Sized once: growing vectors of thousands of verdicts was copying and page faults on the
    // tick path.
    let mut v = Verdicts {
        skips: Vec::with_capacity(batch.len()),
        fires: Vec::with_capacity(batch.len()),
        fired_jobs: Vec::with_capacity(batch.len()),
        ..Verdicts::default()
    };
    for due in batch {
        let Some(job) = view.config.job(&due.job) else {
            continue; // removed by a reload since the tick was computed
        };
        let skip = |nominal, reason| Skip {
            job: due.job.clone(),
            nominal,
            reason,
        };
        let window = chrono::Duration::from_std(job.catchup).unwrap_or(chrono::Duration::MAX);
        for &m in &due.missed {
            let reason = if view.now - m > window {
                SkipReason::CatchupWindow
            } else {
                view.missed
            };
            v.skips.push(skip(m, reason));
        }
        if due.unlisted > 0 {
            v.unlisted.push((job.name.clone(), due.unlisted));
        }
        let Some(schedule) = &job.schedule else {
            continue; // lost its cron in a reload since the tick was computed
        };
        let late = view.now - schedule.fire_instant(due.nominal);
        let in_flight = (view.in_flight)(&job.name);
        let reason = if late > LATE && view.now - due.nominal > window {
            Some(SkipReason::CatchupWindow)
        } else if !job.enabled {
            Some(SkipReason::Disabled)
        } else if view.credits_out {
            Some(SkipReason::NoCredits)
        } else {
            match job.overlap {
                Overlap::Skip if in_flight > 0 => Some(SkipReason::Overlap),
                Overlap::Queue if in_flight > 1 => Some(SkipReason::Overlap),
                _ => None,
            }
        };
        if let Some(reason) = reason {
            v.skips.push(skip(due.nominal, reason));
            continue;
        }
        if job.overlap == Overlap::Replace && in_flight > 0 {
            v.replace.push(job.name.clone());
        }
        let run = job.new_run(
            Trigger::Tick,
            Some(due.nominal),
            Some(view.owner.to_string()),
        );
        v.fires.push((due.nominal, run));
        v.fired_jobs.push(job);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[[job]]\nname = \"j\"\ncron = \"* * * * *\"\naction = \"linkedin-me\"\ncatchup = \"10m\"\n{extra}"
        );
        Config::parse("t", &text).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn due(nominal: &str, missed: &[&str]) -> Due {
        Due {
            job: "j".into(),
            nominal: t(nominal),
            missed: missed.iter().map(|m| t(m)).collect(),
            unlisted: 0,
        }
    }

    fn run<'a>(c: &'a Config, now: &str, in_flight: usize, batch: Vec<Due>) -> Verdicts<'a> {
        run_with(c, now, in_flight, batch, (false, SkipReason::DaemonDown))
    }

    /// [`decide`] with the account's credits out or not, and the reason missed ticks take.
    fn run_with<'a>(
        c: &'a Config,
        now: &str,
        in_flight: usize,
        batch: Vec<Due>,
        (credits_out, missed): (bool, SkipReason),
    ) -> Verdicts<'a> {
        let in_flight = |job: &str| if job == "j" { in_flight } else { 0 };
        decide(
            batch,
            &View {
                now: t(now),
                config: c,
                in_flight: &in_flight,
                owner: "me",
                credits_out,
                missed,
            },
        )
    }

    /// After a cluster's failover the ticks missed while no node led say so; the latest
    /// within `catchup` still fires once.
    #[test]
    fn ticks_missed_in_a_failover_are_skipped_failover() {
        let c = config("");
        let batch = vec![due(
            "2026-05-01T10:00:00Z",
            &["2026-05-01T09:45:00Z", "2026-05-01T09:55:00Z"],
        )];
        let v = run_with(
            &c,
            "2026-05-01T10:00:30Z",
            0,
            batch,
            (false, SkipReason::Failover),
        );
        assert_eq!(
            reasons(&v),
            [SkipReason::CatchupWindow, SkipReason::Failover]
        );
        assert_eq!(v.fires.len(), 1);
    }

    #[test]
    fn without_credits_a_due_tick_is_skipped_and_says_why() {
        let c = config("");
        let v = run_with(
            &c,
            "2026-03-01T10:00:01Z",
            0,
            vec![due("2026-03-01T10:00:00Z", &[])],
            (true, SkipReason::DaemonDown),
        );
        assert_eq!(reasons(&v), [SkipReason::NoCredits]);
        assert!(v.fires.is_empty());
        let v = run_with(
            &c,
            "2026-03-01T10:00:01Z",
            0,
            vec![due("2026-03-01T10:00:00Z", &[])],
            (false, SkipReason::DaemonDown),
        );
        assert_eq!(v.fires.len(), 1);
    }

    fn reasons(v: &Verdicts) -> Vec<SkipReason> {
        v.skips.iter().map(|s| s.reason).collect()
    }

    #[test]
    fn a_due_tick_fires_with_the_job_and_the_owner() {
        let c = config("");
        let v = run(
            &c,
            "2026-05-01T10:00:00.002Z",
            0,
            vec![due("2026-05-01T10:00:00Z", &[])],
        );
        assert!(v.skips.is_empty());
        assert_eq!(v.fires.len(), 1);
        let (nominal, new) = &v.fires[0];
        assert_eq!(*nominal, t("2026-05-01T10:00:00Z"));
        assert_eq!(
            (new.trigger, new.owner.as_deref()),
            (Trigger::Tick, Some("me"))
        );
    }

    #[test]
    fn missed_ticks_within_the_window_are_covered_by_one_catchup_run_older_ones_are_skipped() {
        let c = config("");
        let batch = vec![due(
            "2026-05-01T10:00:00Z",
            &["2026-05-01T09:45:00Z", "2026-05-01T09:55:00Z"],
        )];
        let v = run(&c, "2026-05-01T10:00:30Z", 0, batch);
        assert_eq!(
            reasons(&v),
            [SkipReason::CatchupWindow, SkipReason::DaemonDown]
        );
        assert_eq!(v.fires.len(), 1, "the latest tick fires once");
        // The latest itself beyond the window: skipped too.
        let late = run(
            &c,
            "2026-05-01T10:20:00Z",
            0,
            vec![due("2026-05-01T10:00:00Z", &[])],
        );
        assert_eq!(reasons(&late), [SkipReason::CatchupWindow]);
        assert!(late.fires.is_empty());
    }

    #[test]
    fn a_disabled_job_skips_every_tick() {
        let c = config("enabled = false\n");
        let v = run(
            &c,
            "2026-05-01T10:00:00Z",
            0,
            vec![due("2026-05-01T10:00:00Z", &[])],
        );
        assert_eq!(reasons(&v), [SkipReason::Disabled]);
    }

    #[test]
    fn overlap_counts_the_runs_in_flight_anywhere() {
        let now = "2026-05-01T10:00:00Z";
        let tick = || vec![due(now, &[])];
        let skip = config("");
        assert_eq!(reasons(&run(&skip, now, 1, tick())), [SkipReason::Overlap]);
        assert_eq!(run(&skip, now, 0, tick()).fires.len(), 1);
        let queue = config("overlap = \"queue\"\n");
        assert_eq!(run(&queue, now, 1, tick()).fires.len(), 1, "one may wait");
        assert_eq!(reasons(&run(&queue, now, 2, tick())), [SkipReason::Overlap]);
        let allow = config("overlap = \"allow\"\n");
        assert_eq!(run(&allow, now, 7, tick()).fires.len(), 1);
        let replace = config("overlap = \"replace\"\n");
        let v = run(&replace, now, 1, tick());
        assert_eq!(
            (v.fires.len(), v.replace.as_slice()),
            (1, ["j".to_string()].as_slice())
        );
        assert!(run(&replace, now, 0, tick()).replace.is_empty());
    }

    #[test]
    fn a_tick_of_a_job_that_left_the_file_is_dropped() {
        let c = config("");
        let mut gone = due("2026-05-01T10:00:00Z", &[]);
        gone.job = "gone".into();
        let v = run(&c, "2026-05-01T10:00:00Z", 0, vec![gone]);
        assert!(v.skips.is_empty() && v.fires.is_empty());
    }
}
