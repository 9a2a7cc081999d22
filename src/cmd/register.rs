//! `netmon-agent register`: ask GENERATE_KEY_URL for an API key and store it
//! (`crate::ship::register`).

use std::process::ExitCode;

use crate::cli::Common;
use crate::error::Error;

/// Registers and says where the key went (never the key).
pub fn command(common: &Common) -> Result<ExitCode, Error> {
    let cfg = crate::agent::load_config(&common.load_options()?)?;
    let path = crate::ship::register::register(&cfg).map_err(|e| Error::Other(e.to_string()))?;
    println!("API key written to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
