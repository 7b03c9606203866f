//! Crash-safe records: every write goes to a temporary file, is fsynced,
//! renamed over the old one, and the directory is fsynced, so a record is
//! always either the old or the new version, never a torn one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Appends one line to `path` and makes it durable (results logs).
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = line.as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Points symlink `link` at `target` atomically: a new link beside it,
/// renamed over it, directory fsynced.
pub fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.new-{}",
        link.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)?;
    fs::File::open(dir)?.sync_all()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Switch,
    Rollback,
    Cutover,
    Sweep,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Switch => "switch",
            Kind::Rollback => "rollback",
            Kind::Cutover => "cutover",
            Kind::Sweep => "sweep",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Committed,
    RolledBack,
    Failed,
    Canceled,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One operation, as persisted before each of its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub kind: Kind,
    /// The step about to run (or that ran last, once finished).
    pub phase: String,
    pub result: Option<Outcome>,
    pub error: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// The generation to return to, recorded when the operation started.
    pub from_generation: Option<String>,
    pub to_generation: String,
    /// Units the activation changed (what the health gate waits for).
    #[serde(default)]
    pub changed_units: Vec<String>,
    /// `auto` or `manual` (commit waits for Confirm).
    #[serde(default = "default_confirm")]
    pub confirm: String,
    /// Seconds the health gate (or a manual confirm) may take.
    #[serde(default)]
    pub deadline_sec: u64,
    /// The deadline was given with the operation (not the generation's).
    #[serde(default)]
    pub deadline_from_option: bool,
    /// Phases passed, with a timestamp each (the story of the operation).
    #[serde(default)]
    pub history: Vec<(String, u64)>,
    /// The operation this one runs inside (a sweep's switches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// What a sweep did per app (one result object each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<serde_json::Value>,
    /// What a cutover moves, and where to return to (cutovers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<crate::cutover::CutoverState>,
}

fn default_confirm() -> String {
    "auto".into()
}

impl Record {
    pub fn finished(&self) -> bool {
        self.result.is_some()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The operation records under `<state>/operations/`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
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

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save(&self, r: &Record) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(r).expect("records serialize");
        bytes.push(b'\n');
        write_atomic(&self.path(&r.id), &bytes)
    }

    pub fn load(&self, id: &str) -> std::io::Result<Record> {
        let bytes = fs::read(self.path(id))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Every record, oldest first (ids sort by time).
    pub fn all(&self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in entries {
            let p = e?.path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let bytes = fs::read(&p)?;
            match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("ignoring unreadable record {}: {e}", p.display()),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// A new, sortable, unique operation id: `<unix seconds>-<counter>`.
    pub fn new_id(&self) -> String {
        let existing: Vec<String> = self
            .all()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let t = now();
        let mut n = 0;
        loop {
            let id = format!("{t:012}x{n:03}");
            if !existing.contains(&id) && !self.path(&id).exists() {
                return id;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_replace_atomically() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let mut r = Record {
            id: s.new_id(),
            kind: Kind::Switch,
            phase: "recorded".into(),
            result: None,
            error: String::new(),
            started_at: now(),
            finished_at: None,
            from_generation: Some("1".into()),
            to_generation: "2".into(),
            changed_units: vec![],
            confirm: "auto".into(),
            deadline_sec: 60,
            deadline_from_option: false,
            history: vec![],
            parent: None,
            results: vec![],
            cutover: None,
        };
        s.save(&r).unwrap();
        r.phase = "activating".into();
        s.save(&r).unwrap();
        assert_eq!(s.load(&r.id).unwrap(), r);
        assert_eq!(s.all().unwrap(), vec![r.clone()]);
        let names: Vec<_> = fs::read_dir(d.path().join("operations"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn symlinks_swap_in_place() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current");
        swap_symlink(&link, Path::new("a")).unwrap();
        swap_symlink(&link, Path::new("b")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
    }
}
