use std::process::ExitCode;

use clap::Parser;
use watchbell::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run(Cli::parse())
}
