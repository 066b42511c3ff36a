//! Helpers shared by the integration tests.

use assert_cmd::Command;

/// The watchbell binary, run in `dir` with no API key in its environment.
pub fn watchbell(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("watchbell").expect("binary built");
    cmd.current_dir(dir).env_remove("CAPTAIN_DATA_API_KEY");
    cmd
}
