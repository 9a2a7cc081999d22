//! The command line (argh): busybox-style subcommands.
//!
//! The options every subcommand takes (`--config`, `-i`, `-r`, `--cycle`, `--log-level`,
//! `--set KEY=VALUE`, `--version`) are declared once, in [`Common`], and are accepted before or
//! after the subcommand name: `netmon-agent run --config X` and `netmon-agent --config X run`
//! mean the same. argh has no "flatten", so [`parse`] works in two passes: it takes the common
//! options out of the arguments (their names and whether they take a value come from argh's own
//! description of `Common` and of the subcommands, so a subcommand's option value is never
//! mistaken for one), parses those with `Common`'s argh parser, and hands the rest to [`Cli`],
//! whose subcommands declare only their own options. `--help` lists both.
//!
//! The common options become the highest-precedence config layer; `config::load` does the rest.

use argh::{ArgsInfo, FlagInfo, FlagInfoKind, FromArgs};
use std::path::PathBuf;

use crate::config::{LoadOptions, Origin, Setting};
use crate::error::Error;

/// The options every subcommand accepts, before or after the subcommand name.
#[derive(FromArgs, ArgsInfo, Debug, Default, Clone, PartialEq)]
pub struct Common {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    /// config file (default /etc/netmon-agent.conf)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// interface to watch (INTERFACE)
    #[argh(option, short = 'i', arg_name = "IFACE")]
    pub interface: Option<String>,
    /// LAN range in CIDR (NETWORK_RANGE)
    #[argh(option, short = 'r', arg_name = "CIDR")]
    pub range: Option<String>,
    /// seconds per cycle (CYCLE_TIME)
    #[argh(option)]
    pub cycle: Option<String>,
    /// error, warn, info or debug (LOG_LEVEL)
    #[argh(option, arg_name = "LEVEL")]
    pub log_level: Option<String>,
    /// set any config KEY=VALUE (repeatable; not API_KEY), e.g. PROMISC=0, SCAN_INTERVAL=0
    #[argh(option, arg_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// netmon-agent: system metrics, interface statistics, LAN devices and per-device bandwidth,
/// shipped as JSON snapshots to a platform (or printed).
pub struct Cli {
    /// the subcommand (none given is a usage error, reported by `cmd::dispatch`)
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
#[argh(subcommand)]
pub enum Command {
    /// `run`
    Run(RunArgs),
    /// `snapshot`
    Snapshot(SnapshotArgs),
    /// `check`
    Check(CheckArgs),
    /// `scan`
    Scan(ScanArgs),
    /// `capture`
    Capture(CaptureArgs),
    /// `replay`
    Replay(ReplayArgs),
    /// `register`
    Register(RegisterArgs),
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Run the agent: a snapshot every CYCLE_TIME seconds, shipped to the platform or, with no
/// platform configured, printed to stdout as one JSON line each.
#[argh(subcommand, name = "run")]
pub struct RunArgs {}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Measure for a window and print one pretty JSON snapshot.
#[argh(subcommand, name = "snapshot")]
pub struct SnapshotArgs {
    /// seconds to measure rates and CPU over (default 1)
    #[argh(option, default = "1.0", from_str_fn(seconds_arg))]
    pub window: f64,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Validate the config and print what the agent would do (the API key redacted).
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// do not contact the platform endpoints, only validate and describe
    #[argh(switch)]
    pub offline: bool,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Scan the LAN once with ARP (who-has for every address of the range) and print who answered,
/// like arp-scan: IP, MAC, name, response time.
#[argh(subcommand, name = "scan")]
pub struct ScanArgs {
    /// print one JSON document instead of the table
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Write what the agent sees on the interface to a pcap file (frames truncated to the headers
/// it decodes, original lengths kept), for Wireshark or `replay`.
#[argh(subcommand, name = "capture")]
pub struct CaptureArgs {
    /// pcap file to write
    #[argh(option, short = 'w')]
    pub write: Option<PathBuf>,
    /// stop after this many seconds
    #[argh(option, from_str_fn(seconds_arg))]
    pub seconds: Option<f64>,
    /// stop after this many frames
    #[argh(option, short = 'c')]
    pub count: Option<u64>,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Feed a pcap/pcapng file through the packet path (capture time is the clock) and print the
/// device table, or a schema-valid snapshot with --json.
#[argh(subcommand, name = "replay")]
pub struct ReplayArgs {
    /// print a JSON snapshot instead of a table
    #[argh(switch)]
    pub json: bool,
    /// with --json: one snapshot per cycle, as JSON lines
    #[argh(switch)]
    pub every_cycle: bool,
    /// device table capacity (DEVICE_TABLE_SIZE)
    #[argh(option, arg_name = "N")]
    pub table_size: Option<String>,
    /// the router's MAC in the capture (repeatable): frames through it are split into internet
    /// and local, and it is not a device (as live); needs --range or --local
    #[argh(option, arg_name = "MAC")]
    pub gateway: Vec<String>,
    /// a local IPv4 or IPv6 range besides --range (repeatable), for the internet/local split
    /// (the router's own addresses are not known in a capture)
    #[argh(option, arg_name = "CIDR")]
    pub local: Vec<String>,
    /// the capture file (pcap or pcapng)
    #[argh(positional)]
    pub file: Option<PathBuf>,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
/// Ask GENERATE_KEY_URL for an API key and write it into the config file (mode 0600).
#[argh(subcommand, name = "register")]
pub struct RegisterArgs {}

/// What argh says to print instead of running: help (stdout, exit 0) or a usage error (stderr,
/// exit 2).
#[derive(Debug, PartialEq)]
pub struct EarlyExit {
    /// The text to print.
    pub output: String,
    /// True for help, false for a usage error.
    pub ok: bool,
}

/// Parses the arguments after the program name. `cmd` is the program name used in help.
pub fn parse(cmd: &str, args: &[&str]) -> Result<(Common, Cli), EarlyExit> {
    let common_info = Common::get_args_info();
    let cli_info = Cli::get_args_info();
    let common_flags = common_info.flags;
    let mut common_args: Vec<&str> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    // The options of the command being parsed: the top level until the subcommand name.
    let mut own_flags: &[FlagInfo] = cli_info.flags;
    let mut in_subcommand = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        i += 1;
        if arg == "--" {
            rest.extend_from_slice(&args[i - 1..]);
            break;
        }
        // `--help` belongs to the command being parsed, whose help lists the common options too.
        if let Some(flag) = find_flag(common_flags, arg).filter(|f| f.long != "--help") {
            common_args.push(arg);
            if takes_value(flag) && i < args.len() {
                common_args.push(args[i]);
                i += 1;
            }
            continue;
        }
        rest.push(arg);
        if let Some(flag) = find_flag(own_flags, arg) {
            if takes_value(flag) && i < args.len() {
                rest.push(args[i]);
                i += 1;
            }
        } else if !in_subcommand && !arg.starts_with('-') {
            if let Some(sub) = cli_info.commands.iter().find(|c| c.name == arg) {
                own_flags = sub.command.flags;
                in_subcommand = true;
            }
        }
    }
    let help = rest.iter().any(|a| *a == "--help" || *a == "help");
    let cli = Cli::from_args(&[cmd], &rest).map_err(|e| {
        let mut output = e.output;
        if help && e.status.is_ok() {
            output.push_str(&common_help(cmd));
        }
        EarlyExit {
            output,
            ok: e.status.is_ok(),
        }
    })?;
    let common = Common::from_args(&[cmd], &common_args).map_err(|e| EarlyExit {
        output: e.output,
        ok: e.status.is_ok(),
    })?;
    Ok((common, cli))
}

fn find_flag<'a>(flags: &'a [FlagInfo<'a>], arg: &str) -> Option<&'a FlagInfo<'a>> {
    flags.iter().find(|f| {
        f.long == arg
            || f.short
                .is_some_and(|s| arg.len() == 2 && arg.starts_with('-') && arg.ends_with(s))
    })
}

fn takes_value(flag: &FlagInfo) -> bool {
    matches!(flag.kind, FlagInfoKind::Option { .. })
}

/// The common options' part of `--help`, from `Common`'s own help text.
fn common_help(cmd: &str) -> String {
    let text = match Common::from_args(&[cmd], &["--help"]) {
        Ok(_) => return String::new(),
        Err(e) => e.output,
    };
    let mut out = String::from("\nCommon options (before or after the subcommand):\n");
    let lines = text
        .lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1);
    for l in lines.take_while(|l| !l.trim_start().starts_with("--help")) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

impl Common {
    /// Turns the flags into the top config layer. `--set` refuses API_KEY: a key on the command
    /// line is visible to every user through `ps`.
    pub fn load_options(&self) -> Result<LoadOptions, Error> {
        let mut flags = Vec::new();
        let mut push = |key: &str, value: &Option<String>, flag: &str| {
            if let Some(v) = value {
                flags.push(Setting {
                    key: key.into(),
                    value: v.clone(),
                    origin: Origin::Flag(flag.into()),
                });
            }
        };
        push("INTERFACE", &self.interface, "--interface");
        push("NETWORK_RANGE", &self.range, "--range");
        push("CYCLE_TIME", &self.cycle, "--cycle");
        push("LOG_LEVEL", &self.log_level, "--log-level");
        for kv in &self.set {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(Error::Usage(format!("--set {kv}: expected KEY=VALUE")));
            };
            let key = k.trim().to_ascii_uppercase();
            if key == "API_KEY" {
                return Err(Error::Usage(
                    "--set API_KEY: refused, a key on the command line is visible in ps; put it in the config file or NETMON_API_KEY".into(),
                ));
            }
            if !crate::config::is_known(&key) {
                return Err(Error::Usage(format!("--set {key}: unknown key")));
            }
            flags.push(Setting {
                key,
                value: v.to_owned(),
                origin: Origin::Flag(format!("--set {}", k.trim())),
            });
        }
        Ok(LoadOptions {
            explicit_path: self.config.clone(),
            flags,
        })
    }
}

/// A number of seconds as `str::parse::<f64>` reads it (with the same error text), through
/// [`crate::decimal::parse`].
fn seconds_arg(v: &str) -> Result<f64, String> {
    crate::decimal::parse(v).ok_or_else(|| "invalid float literal".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> (Common, Cli) {
        parse("netmon-agent", args).unwrap_or_else(|e| panic!("{args:?}: {}", e.output))
    }

    #[test]
    fn common_options_before_or_after_the_subcommand() {
        let after = ok(&["run", "--config", "/x.conf", "-i", "eth1", "--set", "A=1"]);
        let before = ok(&["--config", "/x.conf", "-i", "eth1", "run", "--set", "A=1"]);
        assert_eq!(after, before);
        assert_eq!(after.0.config, Some(PathBuf::from("/x.conf")));
        assert_eq!(after.0.interface.as_deref(), Some("eth1"));
        assert_eq!(after.0.set, vec!["A=1".to_owned()]);
        assert_eq!(after.1.command, Some(Command::Run(RunArgs {})));
    }

    #[test]
    fn subcommand_options_stay_with_the_subcommand() {
        // `-c` is capture's count, `-r` the common range; a value equal to a common option's
        // name is a value.
        let (common, cli) = ok(&["capture", "-w", "-i", "-c", "5", "-r", "10.0.0.0/24"]);
        assert_eq!(common.interface, None);
        assert_eq!(common.range.as_deref(), Some("10.0.0.0/24"));
        let Some(Command::Capture(c)) = cli.command else {
            panic!("not capture")
        };
        assert_eq!(c.write, Some(PathBuf::from("-i")));
        assert_eq!(c.count, Some(5));
        let (common, cli) = ok(&["replay", "f.pcap", "-r", "10.0.0.0/8", "--table-size", "8"]);
        assert_eq!(common.range.as_deref(), Some("10.0.0.0/8"));
        let Some(Command::Replay(r)) = cli.command else {
            panic!("not replay")
        };
        assert_eq!(r.file, Some(PathBuf::from("f.pcap")));
        assert_eq!(r.table_size.as_deref(), Some("8"));
    }

    #[test]
    fn help_lists_the_common_options_and_errors_are_usage_errors() {
        let e = parse("netmon-agent", &["check", "--help"]).unwrap_err();
        assert!(e.ok);
        assert!(e.output.contains("--offline"), "{}", e.output);
        assert!(e.output.contains("Common options"), "{}", e.output);
        assert!(e.output.contains("--config"), "{}", e.output);
        let e = parse("netmon-agent", &["run", "--no-such-flag"]).unwrap_err();
        assert!(!e.ok);
        assert!(e.output.contains("--no-such-flag"), "{}", e.output);
        let e = parse("netmon-agent", &["run", "--config"]).unwrap_err();
        assert!(!e.ok, "a missing value is an error: {}", e.output);
    }
}
