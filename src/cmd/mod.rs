//! The subcommands, one module each: each takes the common options and its own arguments,
//! validates them and runs.

pub mod capture;
pub mod check;
pub mod register;
pub mod replay;
pub mod run;
pub mod scan;
pub mod snapshot;

use std::process::ExitCode;

use crate::cli::{Cli, Command, Common};
use crate::error::Error;

/// Runs the subcommand the command line names.
pub fn dispatch(common: Common, cli: Cli) -> Result<ExitCode, Error> {
    // Signals were blocked before main (sys::signals): only `run` and `capture` read them from
    // a signalfd; the other commands stop on SIGINT/SIGTERM as usual.
    if !matches!(cli.command, Some(Command::Run(_) | Command::Capture(_))) {
        crate::sys::signals::unblock();
    }
    if common.version {
        println!("netmon-agent {}", crate::VERSION);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(command) = cli.command else {
        return Err(Error::Usage(
            "no subcommand given: try `netmon-agent run`, `snapshot` or `check` (--help lists them)".into(),
        ));
    };
    match command {
        Command::Run(_) => run::command(&common),
        Command::Snapshot(a) => snapshot::command(&common, &a),
        Command::Check(a) => check::command(&common, &a),
        Command::Scan(a) => scan::command(&common, &a),
        Command::Capture(a) => capture::command(&common, &a),
        Command::Replay(a) => replay::command(&common, &a),
        Command::Register(_) => register::command(&common),
    }
}
