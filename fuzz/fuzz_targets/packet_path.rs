// The packet-path modules of netmon-agent, compiled by path (netmon-agent has no library
// target). Included by each fuzz target with `include!`.
#[path = "../../src/capture/mod.rs"]
pub mod capture;
#[path = "../../src/decode.rs"]
pub mod decode;
#[path = "../../src/devices.rs"]
pub mod devices;
#[path = "../../src/net.rs"]
pub mod net;
#[path = "../../src/snapshot.rs"]
pub mod snapshot;
#[path = "../../src/timefmt.rs"]
pub mod timefmt;
#[path = "../../src/wire/mod.rs"]
pub mod wire;
