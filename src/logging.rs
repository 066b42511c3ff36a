//! Logs: one line per event with `key=value` fields, on stderr; no timestamps when journald
//! captures them (it stamps lines itself); JSON lines for machines. A person watching a command
//! on a terminal gets a progress line instead (see `progress`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::cli::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info). `watched`
/// asks for the progress line, given on a terminal in the text format.
pub fn init(format: LogFormat, watched: bool) {
    let tty = std::io::stderr().is_terminal();
    if watched && tty && format == LogFormat::Text {
        let feeds = Targets::new()
            .with_default(LevelFilter::WARN)
            .with_target("watchbell", LevelFilter::DEBUG);
        let line = crate::progress::layer(terminal_width());
        let _ = tracing_subscriber::registry()
            .with(line.with_filter(feeds))
            .try_init();
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(tty);
    let _ = match (format, journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// The terminal's width as the shell exports it (`COLUMNS`), else the 80-column rule.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}
