//! The results of one run as the loads wrote them (`conclave-bench ... --json` into the work
//! dir), read back as the same types they were written from.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;

use super::manifest::Manifest;
use crate::stats::Report;

pub struct Results<'a> {
    work: &'a Path,
    manifest: &'a Manifest,
}

impl<'a> Results<'a> {
    pub fn new(work: &'a Path, manifest: &'a Manifest) -> Self {
        Self { work, manifest }
    }

    /// `<work>/<name>`.
    pub fn file<T: DeserializeOwned>(&self, name: &str) -> anyhow::Result<T> {
        read(&self.work.join(name))
    }

    /// One result per system in column order, from `<id>.<system>.json`.
    pub fn each<T: DeserializeOwned>(&self, id: &str) -> anyhow::Result<Vec<T>> {
        self.manifest
            .systems()
            .into_iter()
            .map(|system| self.file(&format!("{id}.{system}.json")))
            .collect()
    }

    /// One report per system in column order. A load run in rounds gives each system's round
    /// of median throughput: this machine's speed drifts by 15% and more over minutes, and
    /// the median of alternating rounds takes both systems through the same phases.
    pub fn loads(&self, id: &str) -> anyhow::Result<Vec<Report>> {
        if !self.manifest.rounds.contains_key(id) {
            return self.each(id);
        }
        self.manifest
            .systems()
            .into_iter()
            .map(|system| median_round(self.rounds(id, system)?))
            .collect()
    }

    /// Every round of a load run in rounds, for one system, in the order they ran.
    pub fn rounds(&self, id: &str, system: &str) -> anyhow::Result<Vec<Report>> {
        let Some(&n) = self.manifest.rounds.get(id) else {
            bail!("{id} was not run in rounds");
        };
        if n == 0 {
            bail!("{id} ran no rounds");
        }
        (1..=n)
            .map(|r| self.file(&format!("{id}.r{r}.{system}.json")))
            .collect()
    }

    /// `<stem>.<round>.<system>.json` for rounds 1..=n (probes repeated round by round).
    pub fn numbered<T: DeserializeOwned>(
        &self,
        stem: &str,
        n: u32,
        system: &str,
    ) -> anyhow::Result<Vec<T>> {
        (1..=n)
            .map(|r| self.file(&format!("{stem}.{r}.{system}.json")))
            .collect()
    }
}

/// The round of median throughput (the lower middle one of an even number).
fn median_round(mut rounds: Vec<Report>) -> anyhow::Result<Report> {
    if rounds.is_empty() {
        bail!("no rounds");
    }
    rounds.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    let median = rounds.len().div_ceil(2) - 1;
    Ok(rounds.swap_remove(median))
}

fn read<T: DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not the result expected", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(throughput: f64) -> Report {
        serde_json::from_value(serde_json::json!({
            "workload": "put", "command": [], "endpoints": [], "clients": 1, "conns": 1,
            "elapsed_secs": 1.0, "requests": 1, "ok": 1, "errors": 0,
            "throughput": throughput,
            "latency_ms": {"count": 1, "mean": 1.0, "min": 1.0, "p50": 1.0, "p90": 1.0,
                           "p99": 1.0, "p999": 1.0, "max": 1.0},
            "error_messages": {}
        }))
        .expect("a report")
    }

    #[test]
    fn the_median_round_is_the_middle_one_by_throughput() {
        let rounds = vec![round(300.0), round(100.0), round(200.0)];
        assert_eq!(median_round(rounds).expect("median").throughput, 200.0);
        let even = vec![round(4.0), round(1.0), round(3.0), round(2.0)];
        assert_eq!(median_round(even).expect("median").throughput, 2.0);
        assert!(median_round(Vec::new()).is_err());
    }
}
