//! The command line (argh): busybox-style subcommands. Each subcommand takes the common options
//! (`--config`, `-i`, `-r`, `--cycle`, `--log-level`, `--set KEY=VALUE`) that become the
//! highest-precedence config layer; `config::load` does the rest.

use argh::FromArgs;
use std::path::PathBuf;

use crate::config::{LoadOptions, Origin, Setting};

#[derive(FromArgs, Debug)]
/// netmon-agent: system metrics, interface statistics, LAN devices and per-device bandwidth,
/// shipped as JSON snapshots to a platform (or printed).
pub struct Cli {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(RunArgs),
    Snapshot(SnapshotArgs),
    Check(CheckArgs),
    Replay(ReplayArgs),
}

/// The options every subcommand accepts.
#[derive(Debug, Default, Clone)]
pub struct Common {
    pub config: Option<PathBuf>,
    pub interface: Option<String>,
    pub range: Option<String>,
    pub cycle: Option<String>,
    pub log_level: Option<String>,
    pub set: Vec<String>,
}

impl Common {
    /// Turns the flags into the top config layer. `--set` refuses API_KEY: a key on the command
    /// line is visible to every user through `ps`.
    pub fn load_options(&self) -> Result<LoadOptions, crate::error::Error> {
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
                return Err(crate::error::Error::Usage(format!(
                    "--set {kv}: expected KEY=VALUE"
                )));
            };
            let key = k.trim().to_ascii_uppercase();
            if key == "API_KEY" {
                return Err(crate::error::Error::Usage(
                    "--set API_KEY: refused, a key on the command line is visible in ps; put it in the config file or NETMON_API_KEY".into(),
                ));
            }
            if !crate::config::is_known(&key) {
                return Err(crate::error::Error::Usage(format!(
                    "--set {key}: unknown key"
                )));
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

/// Implements the common options on a subcommand struct, so each one spells them out once.
macro_rules! common_options {
    ($name:ident) => {
        impl $name {
            pub fn common(&self) -> Common {
                Common {
                    config: self.config.clone(),
                    interface: self.interface.clone(),
                    range: self.range.clone(),
                    cycle: self.cycle.clone(),
                    log_level: self.log_level.clone(),
                    set: self.set.clone(),
                }
            }
        }
    };
}

#[derive(FromArgs, Debug)]
/// Run the agent: a snapshot every CYCLE_TIME seconds, shipped to the platform or, with no
/// platform configured, printed to stdout as one JSON line each.
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// config file (default /etc/netmon-agent.conf)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// interface to watch (INTERFACE)
    #[argh(option, short = 'i')]
    pub interface: Option<String>,
    /// LAN range in CIDR (NETWORK_RANGE)
    #[argh(option, short = 'r')]
    pub range: Option<String>,
    /// seconds per cycle (CYCLE_TIME)
    #[argh(option)]
    pub cycle: Option<String>,
    /// error, warn, info or debug (LOG_LEVEL)
    #[argh(option)]
    pub log_level: Option<String>,
    /// set any config KEY=VALUE (repeatable; not API_KEY)
    #[argh(option)]
    pub set: Vec<String>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}
common_options!(RunArgs);

#[derive(FromArgs, Debug)]
/// Measure for a window and print one pretty JSON snapshot.
#[argh(subcommand, name = "snapshot")]
pub struct SnapshotArgs {
    /// seconds to measure rates and CPU over (default 1)
    #[argh(option, default = "1.0")]
    pub window: f64,
    /// config file (default /etc/netmon-agent.conf)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// interface to watch (INTERFACE)
    #[argh(option, short = 'i')]
    pub interface: Option<String>,
    /// LAN range in CIDR (NETWORK_RANGE)
    #[argh(option, short = 'r')]
    pub range: Option<String>,
    /// seconds per cycle (CYCLE_TIME)
    #[argh(option)]
    pub cycle: Option<String>,
    /// error, warn, info or debug (LOG_LEVEL)
    #[argh(option)]
    pub log_level: Option<String>,
    /// set any config KEY=VALUE (repeatable; not API_KEY)
    #[argh(option)]
    pub set: Vec<String>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}
common_options!(SnapshotArgs);

#[derive(FromArgs, Debug)]
/// Validate the config and print what the agent would do (the API key redacted).
#[argh(subcommand, name = "check")]
pub struct CheckArgs {
    /// config file (default /etc/netmon-agent.conf)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// interface to watch (INTERFACE)
    #[argh(option, short = 'i')]
    pub interface: Option<String>,
    /// LAN range in CIDR (NETWORK_RANGE)
    #[argh(option, short = 'r')]
    pub range: Option<String>,
    /// seconds per cycle (CYCLE_TIME)
    #[argh(option)]
    pub cycle: Option<String>,
    /// error, warn, info or debug (LOG_LEVEL)
    #[argh(option)]
    pub log_level: Option<String>,
    /// set any config KEY=VALUE (repeatable; not API_KEY)
    #[argh(option)]
    pub set: Vec<String>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}
common_options!(CheckArgs);

#[derive(FromArgs, Debug)]
/// Feed a pcap/pcapng file through the packet path (capture time is the clock) and print the
/// device table, or a schema-valid snapshot with --json.
#[argh(subcommand, name = "replay")]
pub struct ReplayArgs {
    /// the capture file (pcap or pcapng)
    #[argh(positional)]
    pub file: Option<PathBuf>,
    /// LAN range in CIDR: IPv4 addresses are learned only inside it (NETWORK_RANGE)
    #[argh(option, short = 'r')]
    pub range: Option<String>,
    /// device table capacity (DEVICE_TABLE_SIZE)
    #[argh(option)]
    pub table_size: Option<String>,
    /// seconds per cycle of capture time (CYCLE_TIME)
    #[argh(option)]
    pub cycle: Option<String>,
    /// print a JSON snapshot instead of a table
    #[argh(switch)]
    pub json: bool,
    /// with --json: one snapshot per cycle, as JSON lines
    #[argh(switch)]
    pub every_cycle: bool,
    /// config file (default /etc/netmon-agent.conf)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// error, warn, info or debug (LOG_LEVEL)
    #[argh(option)]
    pub log_level: Option<String>,
    /// set any config KEY=VALUE (repeatable; not API_KEY)
    #[argh(option)]
    pub set: Vec<String>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

impl ReplayArgs {
    pub fn common(&self) -> Common {
        let mut set = self.set.clone();
        if let Some(n) = &self.table_size {
            set.push(format!("DEVICE_TABLE_SIZE={n}"));
        }
        Common {
            config: self.config.clone(),
            interface: None,
            range: self.range.clone(),
            cycle: self.cycle.clone(),
            log_level: self.log_level.clone(),
            set,
        }
    }
}
