//! netmon-agent: a network-monitoring agent for routers. Every cycle it collects /proc system
//! metrics, per-interface statistics, LAN devices and per-device bandwidth from a raw
//! AF_PACKET ring, and ships each snapshot as JSON over HTTP and WebSocket (or prints it).
//!
//! The binary (`src/main.rs`) is the command line only; everything else is this library, so
//! the fuzz targets, the examples and the benchmarks use the same code. `docs/architecture.md`
//! maps the modules and says which file fills each snapshot field.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
pub mod log;

pub mod addr;
pub mod agent;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod decimal;
pub mod decode;
pub mod devices;
pub mod discovery;
pub mod error;
pub mod frame;
pub mod locality;
pub mod metrics;
pub mod monitor;
pub mod pcap;
pub mod procfs;
pub mod ship;
pub mod snapshot;
pub mod status;
pub mod sys;
pub mod timefmt;
pub mod wire;

/// The version of this build (Cargo.toml's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
