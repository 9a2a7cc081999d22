//! /proc and /sys: pure parsers over text (one module per file format) and a thin `Collector`
//! that reads them under configurable roots and turns two samples into rates.
//!
//! INTERFACE CONTRACT (used by agent.rs): `Collector::new`, `prime`, `sample`.

use std::path::PathBuf;
use std::time::Instant;

use crate::snapshot::{Cpu, Interface, Memory, Metrics};

/// Everything the procfs side contributes to one snapshot.
#[derive(Debug, Clone)]
pub struct Sample {
    pub metrics: Metrics,
    pub interfaces: Vec<Interface>,
}

pub struct Collector {
    #[allow(dead_code)]
    proc_root: PathBuf,
    #[allow(dead_code)]
    sys_root: PathBuf,
}

impl Collector {
    pub fn new(proc_root: PathBuf, sys_root: PathBuf) -> Collector {
        Collector {
            proc_root,
            sys_root,
        }
    }

    /// Takes the baseline sample that the first `sample` computes CPU and rates against.
    pub fn prime(&mut self, _now: Instant) {}

    /// Samples everything; CPU percent and rates cover the time since the previous call.
    /// Never fails as a whole: a part that cannot be read is logged once and left empty.
    pub fn sample(&mut self, _now: Instant) -> Sample {
        // Placeholder until the parsers land (issue 2, procfs part).
        Sample {
            metrics: Metrics {
                cpu: Cpu {
                    percent: 0.0,
                    cores: 1,
                    load_average: [0.0; 3],
                },
                memory: Memory {
                    total_bytes: 0,
                    used_bytes: 0,
                    free_bytes: 0,
                    available_bytes: 0,
                    percent_used: 0.0,
                },
                disk: Vec::new(),
                uptime_seconds: 0,
            },
            interfaces: Vec::new(),
        }
    }
}
