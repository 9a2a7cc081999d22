//! Finding devices and their names: the ARP scanner, names from leases/ethers/hosts, and the
//! flow-offload check that tells why capture may miss forwarded traffic.

pub mod arp_scan;
pub mod names;
pub mod offload;
