//! What the node did with each attempt, kept across restarts: one JSON line per step, flushed
//! before the step's effect (so a crash can leave a step recorded that did not happen, never
//! the reverse). It keeps a restarted node from posting a result twice.

use anyhow::{Context, Result};
use provernet_types::JobId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use provernet_node_core::Step;

#[derive(Serialize, Deserialize)]
struct Line {
    job: String,
    attempt: u8,
    step: Step,
}

#[derive(Debug)]
pub struct Journal {
    file: std::fs::File,
    last: BTreeMap<(JobId, u8), Step>,
}

impl Journal {
    /// Opens (or creates) the journal and reads what it holds; a torn last line is ignored.
    pub fn open(path: &Path) -> Result<Journal> {
        let mut last = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                let Ok(l) = serde_json::from_str::<Line>(line) else { continue };
                if let Ok(job) = l.job.parse::<JobId>() {
                    last.insert((job, l.attempt), l.step);
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the journal {}", path.display()))?;
        Ok(Journal { file, last })
    }

    pub fn record(&mut self, job: JobId, attempt: u8, step: Step) -> Result<()> {
        let mut line = serde_json::to_vec(&Line { job: job.to_string(), attempt, step })?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.last.insert((job, attempt), step);
        Ok(())
    }

    pub fn last(&self, job: JobId, attempt: u8) -> Option<Step> {
        self.last.get(&(job, attempt)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_survive_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        let job = JobId([7; 32]);
        {
            let mut j = Journal::open(&path).expect("open");
            j.record(job, 0, Step::Started).expect("record");
            j.record(job, 0, Step::Posted).expect("record");
            j.record(job, 1, Step::Started).expect("record");
        }
        // A crash mid-write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"job\":\"07"))
            .expect("append");
        let j = Journal::open(&path).expect("reopen");
        assert_eq!(j.last(job, 0), Some(Step::Posted));
        assert_eq!(j.last(job, 1), Some(Step::Started));
        assert_eq!(j.last(job, 2), None);
    }
}
