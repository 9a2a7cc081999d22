//! `netmon-agent snapshot`: measure for a window and print one pretty JSON snapshot.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Common, SnapshotArgs};
use crate::error::Error;

/// Checks the window and takes the snapshot.
pub fn command(common: &Common, args: &SnapshotArgs) -> Result<ExitCode, Error> {
    let opts = common.load_options()?;
    if !(args.window.is_finite() && args.window >= 0.0 && args.window <= 3600.0) {
        return Err(Error::Usage(format!(
            "--window {}: expected seconds between 0 and 3600",
            crate::decimal::short(args.window)
        )));
    }
    crate::agent::snapshot(opts, Duration::from_secs_f64(args.window)).map(|()| ExitCode::SUCCESS)
}
