//! The operation records under `<state>/operations/<id>.json`, each
//! written atomically and durably ([`crate::durable::write_atomic`]).
//!
//! Whatever else is found there is never fatal and never silently
//! ignored: an entry that is not a regular file named `<valid id>.json`
//! holding a readable record of that id (a truncated or empty record, a
//! directory, a FIFO, a link, a foreign name) is moved aside into
//! `operations/damaged/` ([`Store::set_aside`]), logged, and listed in
//! `Status`. Temporary files a crash left behind are removed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::durable::{now, write_atomic_mode};
use crate::record::{OpId, OpKind, Record};

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// What a scan of the records found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every readable record, oldest first (ids sort by time).
    pub records: Vec<Record>,
    /// Entries that are not a readable record of their own name, with
    /// the reason.
    pub damaged: Vec<(PathBuf, String)>,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store {
            dir: state_dir.join("operations"),
        }
    }

    /// The agent's state directory (the parent of `operations/`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.parent().unwrap_or(Path::new("/")).to_path_buf()
    }

    pub fn path(&self, id: &OpId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save<O: OpKind>(&self, r: &Record<O>) -> std::io::Result<()> {
        self.save_any(&r.to_any())
    }

    pub fn save_any(&self, r: &Record) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(r).expect("records serialize");
        bytes.push(b'\n');
        // Root's only: a record may keep a unit's journal lines.
        write_atomic_mode(&self.path(&r.id), &bytes, 0o600)
    }

    pub fn load(&self, id: &OpId) -> std::io::Result<Record> {
        read_record(&self.path(id), id)
    }

    /// Where damaged entries are moved.
    pub fn damaged_dir(&self) -> PathBuf {
        self.dir.join("damaged")
    }

    /// Moves every damaged entry of a scan into `operations/damaged/`
    /// (renamed, never opened or followed), and removes temporary files
    /// left by a crash. Returns what was set aside, with the reason.
    pub fn set_aside(&self) -> Vec<(String, String)> {
        let mut moved = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') && (name.contains(".tmp-") || name.contains(".new-")) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for (p, why) in self.scan().damaged {
            if p == self.dir {
                tracing::error!("cannot read {}: {why}", p.display());
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let dest = self.damaged_dir().join(format!("{name}.{}", now()));
            let res = fs::create_dir_all(self.damaged_dir()).and_then(|()| fs::rename(&p, &dest));
            match res {
                Ok(()) => {
                    let _ = crate::durable::fsync_dir(&self.dir);
                    tracing::error!(
                        "operation record {} is damaged ({why}); moved to {}",
                        p.display(),
                        dest.display()
                    );
                    moved.push((name, why));
                }
                Err(e) => tracing::error!(
                    "operation record {} is damaged ({why}) and cannot be moved aside: {e}",
                    p.display()
                ),
            }
        }
        moved
    }

    /// The entries set aside so far (for `Status`).
    pub fn damaged(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.damaged_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    /// Every readable record, oldest first; unreadable entries are
    /// reported in the journal and skipped (see [`Store::scan`]).
    pub fn all(&self) -> Vec<Record> {
        let scan = self.scan();
        for (p, why) in &scan.damaged {
            tracing::warn!("not an operation record: {}: {why}", p.display());
        }
        scan.records
    }

    /// Reads `operations/`: only regular files named `<id>.json` are
    /// opened (never a FIFO, a device or a directory, which could block
    /// or fail the whole scan); a record must carry its file's id.
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return scan,
            Err(e) => {
                scan.damaged.push((self.dir.clone(), e.to_string()));
                return scan;
            }
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "damaged" {
                continue;
            }
            // A diagnostics bundle (`<id>.d/`), not a record.
            if name
                .strip_suffix(".d")
                .is_some_and(|stem| stem.parse::<OpId>().is_ok())
                && e.file_type().is_ok_and(|t| t.is_dir())
            {
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                scan.damaged
                    .push((p, "not an operation record (foreign name)".into()));
                continue;
            };
            let id = match stem.parse::<OpId>() {
                Ok(id) => id,
                Err(err) => {
                    scan.damaged.push((p, err.to_string()));
                    continue;
                }
            };
            match e.file_type() {
                Ok(t) if t.is_file() => {}
                Ok(_) => {
                    scan.damaged.push((p, "not a regular file".into()));
                    continue;
                }
                Err(err) => {
                    scan.damaged.push((p, err.to_string()));
                    continue;
                }
            }
            match read_record(&p, &id) {
                Ok(r) => scan.records.push(r),
                Err(err) => scan.damaged.push((p, err.to_string())),
            }
        }
        scan.records.sort_by(|a, b| a.id.cmp(&b.id));
        scan
    }

    /// A new, sortable, unique operation id: `<unix seconds>x<counter>`.
    pub fn new_id(&self) -> OpId {
        let t = now();
        let mut n = 0;
        loop {
            let id = OpId::new(t, n);
            if fs::symlink_metadata(self.path(&id)).is_err() {
                return id;
            }
            n += 1;
        }
    }
}

/// No record is this large (a sweep of many apps is tens of kB).
const MAX_RECORD_BYTES: u64 = 16 << 20;

fn read_record(p: &Path, id: &OpId) -> std::io::Result<Record> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // O_NONBLOCK: a FIFO put in place of a record must not hang us.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_RECORD_BYTES} bytes"
        )));
    }
    let r: Record = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if &r.id != id {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("holds operation {}, not {id}", r.id),
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::GenerationId;
    use crate::record::{SwitchOp, SwitchPhase};

    #[test]
    fn records_round_trip_and_replace_atomically() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let mut r = Record::new(
            s.new_id(),
            SwitchOp {
                phase: SwitchPhase::Recorded,
                from_generation: Some(GenerationId(1)),
                to_generation: GenerationId(2),
                taken_over: Vec::new(),
                hooks: Default::default(),
            },
            now(),
        );
        s.save(&r).unwrap();
        r.op.phase = SwitchPhase::Activating;
        s.save(&r).unwrap();
        assert_eq!(s.load(&r.id).unwrap(), r.to_any());
        assert_eq!(s.all(), vec![r.to_any()]);
        let names: Vec<_> = fs::read_dir(d.path().join("operations"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
