//! The run lifecycle: Captain Data's statuses and the one function that says which moves are legal.
//! The store refuses any transition this module does not allow.

use std::fmt;
use std::str::FromStr;

/// A run's status, with Captain Data's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Created,
    Queued,
    Running,
    Succeeded,
    PartialSucceeded,
    Failed,
    Blocked,
    Stopped,
    Invalid,
}

use RunStatus::{
    Blocked, Created, Failed, Invalid, PartialSucceeded, Queued, Running, Stopped, Succeeded,
};

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 9] = [
        Created,
        Queued,
        Running,
        Succeeded,
        PartialSucceeded,
        Failed,
        Blocked,
        Stopped,
        Invalid,
    ];

    /// The API's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Created => "CREATED",
            Queued => "QUEUED",
            Running => "RUNNING",
            Succeeded => "SUCCEEDED",
            PartialSucceeded => "PARTIAL_SUCCEEDED",
            Failed => "FAILED",
            Blocked => "BLOCKED",
            Stopped => "STOPPED",
            Invalid => "INVALID",
        }
    }

    /// True once the run will not move again by itself.
    pub fn is_final(self) -> bool {
        !matches!(self, Created | Queued | Running)
    }

    /// True for the statuses a run can be resumed from (it continues from its cursor).
    pub fn is_resumable(self) -> bool {
        matches!(self, Stopped | Blocked | Failed | PartialSucceeded)
    }

    /// Whether a run may move from `self` to `to`.
    ///
    /// `CREATED -> QUEUED -> RUNNING -> terminal`; a run that never started can be stopped or
    /// failed on the way; a resumable terminal run goes back to QUEUED.
    pub fn can_move_to(self, to: RunStatus) -> bool {
        match (self, to) {
            // INVALID: an inputs file that vanished or went bad (or a chained run found nothing
            // waiting) before the first request; a ticked run is created QUEUED.
            (Created, Queued | Stopped | Failed | Invalid)
            | (Queued, Running | Stopped | Failed | Blocked | Invalid) => true,
            (Running, t) => t.is_final(),
            (from, Queued) => from.is_resumable(),
            _ => false,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_legal() {
        assert!(Created.can_move_to(Queued));
        assert!(Queued.can_move_to(Running));
        for t in [
            Succeeded,
            PartialSucceeded,
            Failed,
            Blocked,
            Stopped,
            Invalid,
        ] {
            assert!(Running.can_move_to(t), "RUNNING -> {t}");
        }
    }

    #[test]
    fn skipping_ahead_or_leaving_a_final_status_is_illegal() {
        assert!(!Created.can_move_to(Running));
        assert!(!Created.can_move_to(Succeeded));
        assert!(!Queued.can_move_to(Succeeded));
        assert!(!Succeeded.can_move_to(Queued));
        assert!(!Invalid.can_move_to(Queued));
        assert!(!Succeeded.can_move_to(Running));
        assert!(!Stopped.can_move_to(Running));
    }

    #[test]
    fn resumable_statuses_go_back_to_queued() {
        for s in [Stopped, Blocked, Failed, PartialSucceeded] {
            assert!(s.can_move_to(Queued), "{s} -> QUEUED");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
    }
}
