//! Prometheus exposition: the text format ([`exposition`]) and the `/metrics` listener
//! ([`server`]) that the agent's poll loop drives when METRICS_LISTEN is set.

pub mod exposition;
pub mod server;
