//! Drift: what the running generation installed, compared with what the
//! host holds now (issue 21; the plan is `docs/design/drift.md`). This
//! first part is the vocabulary and the comparisons, pure functions
//! over what was seen, so that every kind of drift is decided in one
//! place and tested from literal inputs; the watcher, the scans and the
//! restore operation are built on them.

pub mod compare;
pub mod glob;
pub mod objects;

use std::path::PathBuf;

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
