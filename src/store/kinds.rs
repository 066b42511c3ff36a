//! States stored as text: each enum has one mapping to the words in the database and in JSON
//! output, used both ways (so no code compares or branches on those words itself).

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("{other:?} is not a {}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    };
}

text_enum!(
    /// Why a run was created.
    Trigger {
        /// A CRON tick of the daemon.
        Tick = "tick",
        /// `watchbell trigger`.
        Manual = "manual",
        /// `watchbell backfill`: a past tick that had no run.
        Backfill = "backfill",
        /// A run of the job's `after` source ended well.
        After = "after",
        /// A run of the job's remote schedule, received through `[receiver]`.
        Remote = "remote",
    }
);

text_enum!(
    /// Why a tick did not fire.
    SkipReason {
        /// The job's previous run was still going (`overlap = "skip"`, or a full queue).
        Overlap = "overlap",
        /// `enabled = false`.
        Disabled = "disabled",
        /// Missed while the daemon was down, and older than `catchup`.
        CatchupWindow = "catchup_window",
        /// Missed while the daemon was down; the one catch-up run covers it.
        DaemonDown = "daemon_down",
        /// Missed while a cluster's lead passed from a node that stopped to this one; the one
        /// catch-up run covers it.
        Failover = "failover",
        /// The account had no credits left when the tick came (as last read from the API).
        NoCredits = "no_credits",
        /// A chained job (`inputs_from`) had nothing waiting from its source.
        NoInputs = "no_inputs",
        /// A received remote job's tick with no run from the vendor within `callback_timeout`.
        RemoteNotRun = "remote_not_run",
    }
);

text_enum!(
    /// What a queued delivery is.
    DeliveryKind {
        /// Captain Data's callback format, to the job's webhook.
        Callback = "callback",
        /// A run ended for good in a status the job's `notify` lists.
        Notify = "notify",
        /// A dead-man ping (`ping`): start, success or fail.
        Ping = "ping",
    }
);

text_enum!(
    /// Where a webhook callback stands.
    DeliveryState {
        Pending = "pending",
        Delivered = "delivered",
        /// Given up after [`super::MAX_ATTEMPTS`].
        Failed = "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_maps_back_to_its_state() {
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(*t));
        }
        for r in SkipReason::ALL {
            assert_eq!(r.as_str().parse::<SkipReason>(), Ok(*r));
        }
        for d in DeliveryState::ALL {
            assert_eq!(d.as_str().parse::<DeliveryState>(), Ok(*d));
        }
        assert!("sometimes".parse::<SkipReason>().is_err());
        assert_eq!(
            serde_json::to_string(&SkipReason::CatchupWindow).unwrap(),
            "\"catchup_window\""
        );
    }
}
