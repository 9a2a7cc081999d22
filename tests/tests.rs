//! The one integration-test binary: each module tests the built `netmon-agent` from outside.

mod cli;
mod common;
mod install;
mod openwrt;
mod privdrop;
mod replay;
