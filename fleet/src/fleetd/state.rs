//! fleetd's persisted state (`<state>/state.json`) and the durable write
//! every file of fleetd goes through.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Epoch, GenerationRef, HostState, OpId, Order, OrderId};

/// Writes `bytes` to `path` so that after a crash the file holds either
/// the old or the new content: a temporary file beside it, fsync, rename,
/// fsync of the directory.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// fsync of a directory (after a rename or a removal in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// An order fleetd accepted and drives until its final result is written
/// to the outbox. Kept across restarts: a restarted fleetd drives it on,
/// asking windlassd for the operation of its request id first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    pub order: Order,
    /// The agent's operation, once a call answered it.
    #[serde(default)]
    pub op: Option<OpId>,
    /// What the host ran when the order was accepted.
    #[serde(default)]
    pub from: Option<GenerationRef>,
    /// Where the order goes (switch, rollback).
    #[serde(default)]
    pub to: Option<GenerationRef>,
    /// Steps already put in the outbox (`started`, `awaiting`).
    #[serde(default)]
    pub steps: Vec<String>,
    /// A later `cancel` or `rollback` order of this one arrived: if its
    /// operation has not been started yet, it never is.
    #[serde(default)]
    pub superseded_by: Option<OrderId>,
}

/// `state.json`: the design's [`HostState`] plus the orders in flight.
///
/// Where this differs from the design's step list (§4): `last_seq` is
/// raised, and `in_progress` cleared, as soon as an order is accepted and
/// persisted in `open` — not at its end — because the next order (the
/// `Confirm` of a switch waiting for it) arrives while the switch is
/// still running. A restart resumes every `open` order through
/// `OperationByRequest`, so nothing is started twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetdState {
    #[serde(flatten)]
    pub host: HostState,
    #[serde(default)]
    pub open: BTreeMap<OrderId, OpenOrder>,
}

impl FleetdState {
    pub fn max_epoch(&self) -> Option<Epoch> {
        self.host.max_epoch
    }
}

/// The state file and its in-memory copy.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    pub st: FleetdState,
}

impl StateFile {
    /// Loads `<dir>/state.json` (an empty state when there is none).
    pub fn open(dir: &Path) -> anyhow::Result<StateFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("state.json");
        let st = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a fleetd state ({e}); move it away to start afresh \
                     (orders already done would then be judged by their epoch and seq again)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FleetdState::default(),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        Ok(StateFile { path, st })
    }

    /// Writes the in-memory state durably.
    pub fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.st).expect("serializes");
        write_durable(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_reads_the_designs_host_state() {
        let d = tempfile::tempdir().unwrap();
        let mut f = StateFile::open(d.path()).unwrap();
        assert_eq!(f.st, FleetdState::default());
        f.st.host.last_seq = 4;
        f.st.host.max_epoch = Some(Epoch { era: 1, rev: 2 });
        f.save().unwrap();
        let g = StateFile::open(d.path()).unwrap();
        assert_eq!(g.st, f.st);
        // A plain HostState (no `open`) loads.
        std::fs::write(
            d.path().join("state.json"),
            serde_json::to_vec(&HostState::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            StateFile::open(d.path()).unwrap().st,
            FleetdState::default()
        );
        std::fs::write(d.path().join("state.json"), b"{").unwrap();
        let e = StateFile::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a fleetd state"), "{e}");
    }
}
