//! `netmon-agent register`: ask GENERATE_KEY_URL for an API key and store it
//! (`crate::ship::register`).

use std::process::ExitCode;

use crate::cli::Common;
use crate::error::Error;

/// Registers and says where the key went (never the key).
pub fn command(common: &Common) -> Result<ExitCode, Error> {
    let cfg = crate::agent::load_config(&common.load_options()?)?;
    // An issued key that cannot be written yet is kept and the write retried (Ctrl-C ends it).
    let mut wait = |d: std::time::Duration| {
        std::thread::sleep(d);
        true
    };
    let path = crate::ship::register::register(&cfg, &mut wait)
        .map_err(|e| Error::Other(e.to_string()))?;
    println!("API key written to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
