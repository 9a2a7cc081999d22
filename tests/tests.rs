//! The one integration-test binary: each module tests the built `netmon-agent` from outside.

mod cli;
mod common;
mod config;
mod hostile_net;
mod install;
mod internet;
mod lab;
mod luci;
mod openwrt;
mod privdrop;
mod procfs;
mod register;
mod replay;
mod run;
mod ship;
