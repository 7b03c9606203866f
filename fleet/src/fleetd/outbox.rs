//! The outbox (§6): every result is first written durably to
//! `<state>/outbox/<n>.json`, then published with `create` on its key.
//! A key is written once, so a publish answered `AlreadyExists` (fleetd
//! crashed after the server stored it, before the file was removed)
//! counts as delivered; files are published in the order they were
//! written, and a transport error stops the flush until the next one
//! (after every new result and on every reconnect).
//!
//! Files are numbered in the order written (`<n>.json`, holding the key
//! and the result), not named `<seq>-<step>` as the design sketched:
//! seqs are per rollout, so two rollouts' results could share a name.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::state::{sync_dir, write_durable};
use crate::kv::{Bucket, KvError};
use crate::model::HostResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub key: String,
    pub result: HostResult,
}

#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    next: Mutex<u64>,
    flushing: tokio::sync::Mutex<()>,
}

fn number(p: &Path) -> Option<u64> {
    let name = p.file_name()?.to_str()?;
    name.strip_suffix(".json")?.parse().ok()
}

impl Outbox {
    pub fn open(state_dir: &Path) -> std::io::Result<Outbox> {
        let dir = state_dir.join("outbox");
        std::fs::create_dir_all(&dir)?;
        let o = Outbox {
            dir,
            next: Mutex::new(0),
            flushing: tokio::sync::Mutex::new(()),
        };
        let last = o.files()?.last().and_then(|p| number(p)).unwrap_or(0);
        *o.next.lock().unwrap_or_else(|p| p.into_inner()) = last + 1;
        Ok(o)
    }

    /// The waiting files, oldest first.
    fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter_map(|p| number(&p).map(|n| (n, p)))
            .collect();
        v.sort();
        Ok(v.into_iter().map(|(_, p)| p).collect())
    }

    /// How many results wait to be published.
    pub fn len(&self) -> usize {
        self.files().map(|f| f.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes a result to the outbox (durably); it is published by the
    /// next flush.
    pub fn push(&self, key: String, result: HostResult) -> std::io::Result<()> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(format!("{:020}.json", *next));
        let bytes = serde_json::to_vec(&Pending { key, result }).expect("serializes");
        write_durable(&path, &bytes)?;
        *next += 1;
        Ok(())
    }

    /// Publishes the waiting results in order; how many were delivered.
    /// Stops at the first transport error (the rest wait for the next
    /// flush). A file that is not a result is moved to `outbox/bad/`.
    pub async fn flush(&self, results: &Bucket<HostResult>) -> Result<usize, KvError> {
        let _one = self.flushing.lock().await;
        let mut n = 0;
        for path in self.files().map_err(|e| io(results, e))? {
            let p: Pending = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("outbox {}: {e}; set aside", path.display());
                    let bad = self.dir.join("bad");
                    let _ = std::fs::create_dir_all(&bad);
                    let _ = std::fs::rename(&path, bad.join(path.file_name().unwrap_or_default()));
                    continue;
                }
            };
            match results.create(&p.key, &p.result).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {
                    tracing::info!("result {} was published before", p.key);
                }
                Err(e @ (KvError::InvalidKey { .. } | KvError::Encode { .. })) => {
                    tracing::error!("result {}: {e}; dropped", p.key);
                }
                Err(e) => return Err(e),
            }
            std::fs::remove_file(&path).map_err(|e| io(results, e))?;
            let _ = sync_dir(&self.dir);
            n += 1;
        }
        Ok(n)
    }
}

fn io(b: &Bucket<HostResult>, e: std::io::Error) -> KvError {
    KvError::Transport {
        bucket: b.name().to_string(),
        op: "outbox",
        source: Box::new(e),
    }
}
