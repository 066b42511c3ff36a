//! Run work on threads of its own, below the tick path. A tick's lateness is the time from its
//! instant to its row, and under saturation the runs keep every core busy: sharing threads with
//! them, a batch of 10,000 ticks waited for the CPU (tokio has no priorities, and a separate
//! runtime at the same priority changed nothing). Run tasks therefore execute on this runtime,
//! whose threads ask the kernel for a lower priority (nice +10, which any process may do):
//! when the CPU is short, the scheduler, the tick decisions and the writer go first; when it is
//! not, nothing changes. Process-wide and never dropped (a runtime cannot be dropped inside
//! another), so daemons started one after another in one process share it.

use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

/// How much lower than the process run work is scheduled (nice values: 0 to 19).
const NICER: i32 = 10;

/// The runtime run tasks are spawned on.
pub fn handle() -> &'static Handle {
    static RUNS: OnceLock<Runtime> = OnceLock::new();
    RUNS.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("watchbell-run")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .expect("a runtime for runs")
    })
    .handle()
}

/// Lowers the calling thread's priority by [`NICER`] (on Linux the nice value is per thread).
fn lower_priority() {
    let tid = rustix::thread::gettid();
    let base = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), (base + NICER).min(19)) {
        tracing::debug!(error = %e, "run threads keep the process's priority");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn run_threads_are_scheduled_below_the_process() {
        let here = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let there = super::handle()
            .spawn(async {
                rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
            })
            .await
            .unwrap();
        assert_eq!(there, (here + super::NICER).min(19));
    }
}
