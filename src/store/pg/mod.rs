//! The state in `PostgreSQL`, for more than one node on one database: where it is
//! ([`Target`]), its tables ([`schema`], the same as `SQLite`'s), moving a `SQLite` state over
//! ([`copy`]) and who leads ([`leader`]). Errors say which user at which host, never the
//! password, and tell a configuration to fix (exit 2) from a server to wait for (exit 1).

pub mod copy;
pub mod lead;
pub mod leader;
pub mod offset;
pub mod schema;
mod target;
mod tls;

use std::fmt;

pub use target::{Target, Tls, UrlSource};
use tokio_postgres::error::SqlState;
use tracing::warn;

/// What went wrong with the database, and whether waiting can mend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub kind: PgErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgErrorKind {
    /// The URL, its source or the credentials: someone must change the configuration.
    Config,
    /// The server cannot be reached or stopped answering: it may come back.
    Unreachable,
    /// The server answered with an error.
    Sql,
}

impl PgError {
    pub fn config(message: impl Into<String>) -> PgError {
        PgError {
            kind: PgErrorKind::Config,
            message: message.into(),
        }
    }

    fn sql(message: impl Into<String>) -> PgError {
        PgError {
            kind: PgErrorKind::Sql,
            message: message.into(),
        }
    }

    /// 2 for a configuration to fix, 1 otherwise (systemd restarts the service).
    pub fn exit_code(&self) -> u8 {
        if self.kind == PgErrorKind::Config {
            2
        } else {
            1
        }
    }

    /// A driver error met while talking to `target`, classified; the password never appears
    /// (the driver does not put it in its messages).
    pub fn of(target: &Target, e: &tokio_postgres::Error) -> PgError {
        let code = e.code();
        let auth = [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
        ];
        let detail = e.as_db_error().map_or_else(
            || {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(cause) = src {
                    s = format!("{s}: {cause}");
                    src = cause.source();
                }
                s
            },
            |d| d.message().to_string(),
        );
        let message = format!("PostgreSQL {target}: {detail}");
        // A certificate that does not verify, or a server without TLS under sslmode=require:
        // waiting mends neither.
        let tls = code.is_none()
            && (detail.contains("TLS handshake") || detail.contains("does not support TLS"));
        match code {
            Some(c) if auth.contains(c) => PgError::config(message),
            None if tls => PgError::config(message),
            Some(_) => PgError::sql(message),
            None => PgError {
                kind: PgErrorKind::Unreachable,
                message,
            },
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PgError {}

/// Opens one connection to `target`; its I/O runs on a task of the current runtime until the
/// client is dropped or the server goes away.
///
/// Every session is bounded on the server's side ([`SESSION`]): a node cut off in the middle of
/// a transaction (a partition hangs, it does not refuse) must not keep its locks, the leader
/// row's above all, until the server notices the connection is dead, which can take hours.
pub async fn connect(target: &Target) -> Result<tokio_postgres::Client, PgError> {
    let fail = |e: tokio_postgres::Error| PgError::of(target, &e);
    let mut config = target.config.clone();
    let options = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {SESSION}"),
        _ => SESSION.to_string(),
    };
    config.options(&options);
    match target.rustls()? {
        None => Ok(drive(
            target,
            config.connect(tokio_postgres::NoTls).await.map_err(fail)?,
        )),
        Some(tls) => Ok(drive(
            target,
            config.connect(tls::Rustls::new(tls)).await.map_err(fail)?,
        )),
    }
}

/// The server ends a session idle inside a transaction for 5 s (its locks go with it), and a
/// statement waits at most 5 s for a lock (then fails, and is tried again): a takeover never
/// waits behind a cut-off leader's transaction for longer than that, well within the row's
/// 15 s expiry.
const SESSION: &str = "-c idle_in_transaction_session_timeout=5000 -c lock_timeout=5000";

/// Spawns the connection's I/O and hands back its client.
fn drive<S, T>(
    target: &Target,
    (client, conn): (tokio_postgres::Client, tokio_postgres::Connection<S, T>),
) -> tokio_postgres::Client
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let name = target.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(database = %name, error = %e, "PostgreSQL connection ended");
        }
    });
    client
}
