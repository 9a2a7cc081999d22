//! `netmon-agent run`: the agent's loop (`crate::agent`), until SIGINT/SIGTERM.

use std::process::ExitCode;

use crate::cli::Common;
use crate::error::Error;

/// Runs the agent.
pub fn command(common: &Common) -> Result<ExitCode, Error> {
    crate::agent::run(common.load_options()?).map(|()| ExitCode::SUCCESS)
}
