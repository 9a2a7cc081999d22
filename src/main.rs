//! netmon-agent's command line: parse the arguments, run the subcommand, turn the outcome
//! into an exit code (2 for usage and config errors). Everything else is the library.
#![deny(unsafe_code)]

use std::process::ExitCode;

use netmon_agent::{cli, cmd, error};

// SIGINT, SIGTERM and SIGHUP blocked before anything else (see sys::signals).
netmon_agent::block_signals_before_main!();

fn main() -> ExitCode {
    // std::env::args panics on an argument that is not UTF-8: take them as OsStrings and
    // refuse such an argument as a usage error, naming its position.
    let mut args: Vec<String> = Vec::new();
    for (index, arg) in std::env::args_os().enumerate() {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                eprintln!(
                    "netmon-agent: argument {index} is not valid UTF-8: {}",
                    arg.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = std::path::Path::new(strs.first().copied().unwrap_or("netmon-agent"))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("netmon-agent");
    // argh's own `from_env` exits 1 on a usage error; we want 2, and help on stdout with 0.
    let (common, cli) = match cli::parse(name, strs.get(1..).unwrap_or(&[])) {
        Ok(parsed) => parsed,
        Err(early) if early.ok => {
            print!("{}", early.output);
            return ExitCode::SUCCESS;
        }
        Err(early) => {
            eprint!("{}", early.output);
            eprintln!("Run {name} --help for usage.");
            return ExitCode::from(2);
        }
    };
    // Under procd the init script sets NETMON_LOG_TARGET=syslog in the environment: switch
    // now, so that even a config error (before the config is read) reaches syslog as one
    // err line instead of a stderr line that procd tags a second time.
    if std::env::var_os("NETMON_LOG_TARGET").is_some_and(|v| v.eq_ignore_ascii_case("syslog")) {
        netmon_agent::log::set_target(netmon_agent::log::Target::Syslog);
    }
    match cmd::dispatch(common, cli) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
