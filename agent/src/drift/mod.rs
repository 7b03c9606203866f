//! Drift: what the running generation installed, compared with what the
//! host holds now (issue 21; docs/operations.md#drift). The vocabulary
//! and the comparisons ([`compare`]) are pure functions over what was
//! seen, so every kind of drift is decided in one place and tested from
//! literal inputs; [`owned`] says what a generation owns, [`scan`] reads
//! the host (`ops::drift_task` watches for events and reports), [`objects`] keeps
//! the pristine copies a restore (`ops::restore`) writes back.

pub mod compare;
pub mod glob;
pub mod objects;
pub mod owned;
pub mod scan;

use std::path::PathBuf;
use std::sync::Mutex;

use crate::contract::GenerationId;
use crate::record::OpId;

use serde::{Deserialize, Serialize};

/// The kinds of drift, exactly those the agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// An owned file's content (or a link's target) differs, or a unit is
    /// defined by another file than the generation's.
    Modified,
    /// An owned file or link is gone.
    Removed,
    /// A drop-in of an owned unit was added (`systemctl edit`).
    DropInAdded,
    /// An owned unit is masked.
    Masked,
    /// An owned unit is not loaded (not found, or a bad setting).
    NotLoaded,
    /// An app's container runs another image than the generation's.
    Image,
}

impl DriftKind {
    pub const ALL: [DriftKind; 6] = [
        DriftKind::Modified,
        DriftKind::Removed,
        DriftKind::DropInAdded,
        DriftKind::Masked,
        DriftKind::NotLoaded,
        DriftKind::Image,
    ];

    /// The name on the bus and in the journal (`WINDLASS_DRIFT`).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Modified => "modified",
            DriftKind::Removed => "removed",
            DriftKind::DropInAdded => "drop-in-added",
            DriftKind::Masked => "masked",
            DriftKind::NotLoaded => "not-loaded",
            DriftKind::Image => "image",
        }
    }

    pub fn parse(s: &str) -> Option<DriftKind> {
        DriftKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One difference. Its identity is (kind, unit, path): the same drift
/// seen again is not news.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub kind: DriftKind,
    /// The app it belongs to; `None` for what apps share (a network, a
    /// volume, the running link).
    pub app: Option<String>,
    pub unit: Option<String>,
    pub path: Option<PathBuf>,
    /// What was expected and what was found, for a person.
    pub detail: String,
}

impl Finding {
    pub fn identity(&self) -> (DriftKind, Option<&str>, Option<&std::path::Path>) {
        (self.kind, self.unit.as_deref(), self.path.as_deref())
    }
}

/// What drift detection covers on a platform (the table in
/// docs/operations.md#drift).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The kinds this platform can report.
    pub kinds: Vec<DriftKind>,
    /// Whether a restore can be carried out (native only: elsewhere the
    /// system is rebuilt by its own tools).
    pub restore: bool,
    /// Owned files are hashed (and links read).
    #[serde(skip)]
    pub files: bool,
    /// Owned units are asked of systemd, and the admin directories listed.
    #[serde(skip)]
    pub units: bool,
    /// Apps' containers are inspected.
    #[serde(skip)]
    pub images: bool,
    /// Owned files are read through links (NixOS and Guix `/etc`).
    #[serde(skip)]
    pub follow_links: bool,
    /// The directories (relative to the drift root) where a file named
    /// after an owned unit, or a drop-in for it, is someone else's.
    #[serde(skip)]
    pub admin_dirs: Vec<&'static str>,
    /// Where an owned unit's `FragmentPath` may be (prefixes): elsewhere,
    /// something else defines it.
    #[serde(skip)]
    pub fragments: Vec<PathBuf>,
}

/// What the agent last found, for `Status`, the `DriftCount` property
/// and the fleet layer's heartbeat.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftReport {
    /// Whether drift detection runs at all (`windlassd --drift off`).
    pub enabled: bool,
    pub coverage: Coverage,
    /// The generation compared against (the running one).
    pub generation: Option<GenerationId>,
    pub findings: Vec<Finding>,
    /// When the last scan (of any scope) and the last full scan ended
    /// (seconds since the epoch; 0: never).
    pub scanned_at: u64,
    pub full_scan_at: u64,
    /// Whether file events are watched (inotify could be set up).
    pub watching: bool,
    /// Apps whose restore waits for the agent to be free.
    pub pending_restore: Vec<String>,
    /// The restore operation in flight, if any.
    pub restoring: Option<OpId>,
    /// How often the task woke (events, scans, requests): stays put
    /// while nothing happens.
    pub wakeups: u64,
}

/// A request to the drift task.
#[derive(Debug)]
pub enum Request {
    /// A full scan now; the report once it is done.
    Scan(tokio::sync::oneshot::Sender<DriftReport>),
}

/// The drift state shared by the task and the bus: the last report, and
/// the way to ask the task for a scan.
#[derive(Default)]
pub struct Drift {
    report: Mutex<DriftReport>,
    /// The root of the admin directories (`/`; a temp root in tests).
    root: Mutex<Option<PathBuf>>,
    requests: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Request>>>,
}

impl Drift {
    pub fn report(&self) -> DriftReport {
        self.report.lock().unwrap().clone()
    }

    pub fn count(&self) -> u32 {
        self.report.lock().unwrap().findings.len() as u32
    }

    pub fn update(&self, f: impl FnOnce(&mut DriftReport)) {
        f(&mut self.report.lock().unwrap())
    }

    pub(crate) fn connect(&self, tx: tokio::sync::mpsc::UnboundedSender<Request>, root: PathBuf) {
        *self.requests.lock().unwrap() = Some(tx);
        *self.root.lock().unwrap() = Some(root);
    }

    pub fn root(&self) -> PathBuf {
        self.root
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Asks the task for a full scan and waits for its report; `None`
    /// when no task runs.
    pub async fn scan(&self) -> Option<DriftReport> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .requests
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| r.send(Request::Scan(tx)).is_ok());
        if !sent {
            return None;
        }
        rx.await.ok()
    }
}
