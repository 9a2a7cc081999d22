//! netmon-agent: a network-monitoring agent for routers. See README.md.
#![deny(unsafe_code)]

use std::process::ExitCode;

#[macro_use]
mod log;
mod agent;
mod capture;
mod cli;
mod config;
mod decode;
mod devices;
mod discovery;
mod error;
mod live;
mod net;
mod procfs;
mod replay;
mod ship;
mod snapshot;
mod sys;
mod timefmt;
mod wire;

use cli::{Cli, Command};
use error::Error;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match parse_args(&args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// argh's own `from_env` exits 1 on a usage error; we want 2, and help on stdout with 0.
fn parse_args(args: &[String]) -> Result<Cli, ExitCode> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = std::path::Path::new(strs.first().copied().unwrap_or("netmon-agent"))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("netmon-agent");
    match <Cli as argh::FromArgs>::from_args(&[cmd], strs.get(1..).unwrap_or(&[])) {
        Ok(cli) => Ok(cli),
        Err(early) => {
            if early.status.is_ok() {
                print!("{}", early.output);
                Err(ExitCode::SUCCESS)
            } else {
                eprint!("{}", early.output);
                eprintln!("Run {cmd} --help for usage.");
                Err(ExitCode::from(2))
            }
        }
    }
}

fn print_version() -> ExitCode {
    println!("netmon-agent {VERSION}");
    ExitCode::SUCCESS
}

fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    if cli.version {
        return Ok(print_version());
    }
    let Some(command) = cli.command else {
        return Err(Error::Usage(
            "no subcommand given: try `netmon-agent run`, `snapshot` or `check` (--help lists them)".into(),
        ));
    };
    match command {
        Command::Run(a) if a.version => Ok(print_version()),
        Command::Snapshot(a) if a.version => Ok(print_version()),
        Command::Check(a) if a.version => Ok(print_version()),
        Command::Scan(a) if a.version => Ok(print_version()),
        Command::Capture(a) if a.version => Ok(print_version()),
        Command::Replay(a) if a.version => Ok(print_version()),
        Command::Register(a) if a.version => Ok(print_version()),
        Command::Run(a) => {
            let opts = a.common().load_options()?;
            agent::run(opts).map(|()| ExitCode::SUCCESS)
        }
        Command::Snapshot(a) => {
            let opts = a.common().load_options()?;
            if !(a.window.is_finite() && a.window >= 0.0 && a.window <= 3600.0) {
                return Err(Error::Usage(format!(
                    "--window {}: expected seconds between 0 and 3600",
                    a.window
                )));
            }
            agent::snapshot(opts, std::time::Duration::from_secs_f64(a.window))
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Check(a) => {
            let opts = a.common().load_options()?;
            agent::check(opts, a.offline)
        }
        Command::Register(a) => {
            let cfg = agent::load_config(&a.common().load_options()?)?;
            let mut wait = |d: std::time::Duration| {
                std::thread::sleep(d);
                true
            };
            let path = ship::register::register(&cfg, &mut wait)
                .map_err(|e| Error::Other(e.to_string()))?;
            println!("API key written to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(a) => {
            let cfg = agent::load_config(&a.common().load_options()?)?;
            live::scan_command(&cfg, a.json).map(|()| ExitCode::SUCCESS)
        }
        Command::Capture(a) => {
            let Some(file) = a.write.clone() else {
                return Err(Error::Usage("capture: -w FILE is required".into()));
            };
            if a.seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return Err(Error::Usage("--seconds: expected a positive number".into()));
            }
            let cfg = agent::load_config(&a.common().load_options()?)?;
            live::capture_command(&cfg, &file, a.count, a.seconds).map(|()| ExitCode::SUCCESS)
        }
        Command::Replay(a) => {
            let opts = a.common().load_options()?;
            let Some(file) = a.file.clone() else {
                return Err(Error::Usage("replay: no capture file given".into()));
            };
            if a.every_cycle && !a.json {
                return Err(Error::Usage("replay: --every-cycle needs --json".into()));
            }
            let range = match a.range.as_deref() {
                Some(r) => Some(
                    net::Ipv4Cidr::parse(r).map_err(|e| Error::Usage(format!("--range: {e}")))?,
                ),
                None => None,
            };
            let ro = replay::ReplayOptions {
                file,
                range,
                json: a.json,
                every_cycle: a.every_cycle,
            };
            replay::run(opts, ro).map(|()| ExitCode::SUCCESS)
        }
    }
}
