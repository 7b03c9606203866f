//! Operation records: what the agent persists before every step of an
//! operation, typed. A [`Record<O>`] is the part every operation has (id,
//! result, timestamps, history) plus `O`, the part of its kind: the
//! kind's own [`OpKind::Phase`] enum and what it moves. On disk and on
//! D-Bus the strings are those of the first release of the agent
//! (`"kind": "switch"`, `"phase": "health-gate"`, `"result":
//! "rolled-back"`), and records written by it load unchanged
//! (`tests/records.rs`).
//!
//! A record is stored as a [`Record<Op>`] ([`Op`] tags the kind); an
//! operation works on its own `Record<SwitchOp>` (etc.), converted once
//! with [`Record::downcast`], so a phase of another kind cannot be set.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::contract::GenerationId;

/// An operation id: `<unix seconds, 12 digits>x<counter, 3 digits>`,
/// sortable by time. Only ASCII letters, digits and `_` (it is the last
/// element of the operation's D-Bus object path), at most 64 of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(String);

impl OpId {
    pub fn new(seconds: u64, n: u32) -> OpId {
        OpId(format!("{seconds:012}x{n:03}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an operation id (letters, digits and _, at most 64)")]
pub struct BadOpId(pub String);

impl FromStr for OpId {
    type Err = BadOpId;
    fn from_str(s: &str) -> Result<OpId, BadOpId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(OpId(s.to_string()))
        } else {
            Err(BadOpId(s.to_string()))
        }
    }
}

impl Serialize for OpId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OpId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OpId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The longest request id.
pub const MAX_REQUEST_LEN: usize = 128;

/// Checks a caller's request id: 1 to [`MAX_REQUEST_LEN`] of ASCII
/// letters, digits and `. _ : / -` (a fleet order id such as
/// `rollout-7/3` fits; nothing that needs quoting in a log line does).
pub fn check_request(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_REQUEST_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "request {s:?} is not a request id: 1 to {MAX_REQUEST_LEN} of the characters \
             A-Z a-z 0-9 . _ : / -"
        ))
    }
}

/// Defines a phase enum: its variants with their persisted names, `ALL`
/// (for crash matrices) and `as_str`.
macro_rules! phases {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v),+
        }
        impl $name {
            /// Every phase, in the order an operation passes them.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

phases! {
    /// A switch: `recorded` → `arming` → `activating` → `health-gate` →
    /// (`waiting-confirm`) → `committing` → `finished`, or → `rolling-back`.
    SwitchPhase {
        Recorded = "recorded",
        /// The external revert deadline is being armed.
        Arming = "arming",
        /// A changed app's `pre_activate` hook runs (the app in
        /// [`SwitchOp::hooks`]` .running`).
        HookPreActivate = "hook:pre-activate",
        Activating = "activating",
        HealthGate = "health-gate",
        WaitingConfirm = "waiting-confirm",
        /// A changed app's `pre_commit` hook runs.
        HookPreCommit = "hook:pre-commit",
        Committing = "committing",
        /// Committed; a changed app's `post_commit` hook runs.
        HookPostCommit = "hook:post-commit",
        /// Committed; the volumes of removed apps whose manifest said
        /// `purge-data` are removed.
        PurgingData = "purging-data",
        RollingBack = "rolling-back",
        /// Rolling back: a `down` hook of the generation being left runs.
        HookDown = "hook:down",
        Finished = "finished",
    }
}

phases! {
    /// A rollback: `recorded` → `activating` → `health-gate` →
    /// `committing` → `finished`.
    RollbackPhase {
        Recorded = "recorded",
        /// A `down` hook of the generation being left runs.
        HookDown = "hook:down",
        Activating = "activating",
        HealthGate = "health-gate",
        Committing = "committing",
        Finished = "finished",
    }
}

phases! {
    /// A cutover: `recorded` → `staging` → `verifying` → `cutover` →
    /// `confirming` → `committing` → `finished`, or → `rolling-back`.
    CutoverPhase {
        Recorded = "recorded",
        Staging = "staging",
        Verifying = "verifying",
        /// The link is being swapped (the external revert is armed).
        Cutover = "cutover",
        Confirming = "confirming",
        Committing = "committing",
        RollingBack = "rolling-back",
        Finished = "finished",
    }
}

phases! {
    /// A sweep: `recorded` → `discovering` → (`upgrading`, once per app
    /// moved, each a switch inside the sweep) → `finished`.
    SweepPhase {
        Recorded = "recorded",
        Discovering = "discovering",
        Upgrading = "upgrading",
        Finished = "finished",
    }
}

phases! {
    /// A restore of drift: `recorded` → `rewriting` → `reloading` →
    /// `restarting` → `health-gate` → `finished`.
    RestorePhase {
        Recorded = "recorded",
        /// Owned files written back from the generation; drop-ins, masks
        /// and overriding files set aside.
        Rewriting = "rewriting",
        Reloading = "reloading",
        /// The affected units restarted.
        Restarting = "restarting",
        HealthGate = "health-gate",
        Finished = "finished",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Switch,
    Rollback,
    Cutover,
    Sweep,
    Restore,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Switch,
        Kind::Rollback,
        Kind::Cutover,
        Kind::Sweep,
        Kind::Restore,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Switch => "switch",
            Kind::Rollback => "rollback",
            Kind::Cutover => "cutover",
            Kind::Sweep => "sweep",
            Kind::Restore => "restore",
        }
    }
    /// The names of this kind's phases, in order (crash matrices).
    pub fn phases(self) -> Vec<&'static str> {
        match self {
            Kind::Switch => SwitchPhase::ALL.iter().map(|p| p.as_str()).collect(),
            Kind::Rollback => RollbackPhase::ALL.iter().map(|p| p.as_str()).collect(),
            Kind::Cutover => CutoverPhase::ALL.iter().map(|p| p.as_str()).collect(),
            Kind::Sweep => SweepPhase::ALL.iter().map(|p| p.as_str()).collect(),
            Kind::Restore => RestorePhase::ALL.iter().map(|p| p.as_str()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a switch commits: once healthy, or on Confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confirm {
    #[default]
    Auto,
    Manual,
}

impl Confirm {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirm::Auto => "auto",
            Confirm::Manual => "manual",
        }
    }
}

impl FromStr for Confirm {
    type Err = String;
    fn from_str(s: &str) -> Result<Confirm, String> {
        match s {
            "auto" => Ok(Confirm::Auto),
            "manual" => Ok(Confirm::Manual),
            other => Err(format!(
                "confirm must be \"auto\" or \"manual\", not {other:?}"
            )),
        }
    }
}

/// A switch: from the running generation to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchOp {
    pub phase: SwitchPhase,
    /// The generation to return to, recorded when the operation started.
    pub from_generation: Option<GenerationId>,
    pub to_generation: GenerationId,
    /// Files of others that define units of `to_generation`, which the
    /// caller asked the switch to take over: set aside before activation,
    /// put back if the switch does not commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<TakenOver>,
    /// The lifecycle hooks this switch runs, and how far they got.
    #[serde(default, skip_serializing_if = "HookProgress::is_empty")]
    pub hooks: Box<HookProgress>,
}

/// An operation's lifecycle hooks: which apps' hooks it runs and which
/// of them have finished. Hooks are named `<kind>:<app>`
/// (`pre-commit:web`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProgress {
    /// The apps whose hooks run (those the operation changes, that have
    /// hooks), in dependency order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// Hooks that ran to success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// The hook running: after a crash, it runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
}

impl HookProgress {
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.done.is_empty() && self.running.is_none()
    }
}

/// A unit's file of someone else's, taken over by a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenOver {
    pub unit: String,
    pub path: PathBuf,
    /// The unit was active before the switch: started again with its own
    /// definition when the file is put back.
    #[serde(default)]
    pub was_active: bool,
}

/// A rollback: back to an earlier generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOp {
    pub phase: RollbackPhase,
    pub from_generation: Option<GenerationId>,
    pub to_generation: GenerationId,
    /// The `down` hooks of the generation being left, and how far they got.
    #[serde(default, skip_serializing_if = "HookProgress::is_empty")]
    pub hooks: Box<HookProgress>,
}

/// A cutover moves a target's link from one version to another (the
/// versions are stored where generations are, for the first release's
/// records to load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutoverOp {
    pub phase: CutoverPhase,
    /// The version the link named at the start (or a description of a
    /// plain file or a foreign path); `None`: there was no link.
    #[serde(rename = "from_generation")]
    pub from_version: Option<String>,
    #[serde(rename = "to_generation")]
    pub to_version: String,
    /// What it moves. The first agent saved `recorded` before it set
    /// this: such a record has none (all empty), and is only ever
    /// canceled.
    #[serde(default, skip_serializing_if = "CutoverState::unset")]
    pub cutover: Box<CutoverState>,
}

/// A sweep: new releases of the running generation's apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepOp {
    pub phase: SweepPhase,
    pub from_generation: Option<GenerationId>,
    /// The generation running when the sweep ended (`""` on disk: none).
    #[serde(with = "empty_is_none", default)]
    pub to_generation: Option<GenerationId>,
    /// What the sweep did per app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<SweepResult>,
}

mod empty_is_none {
    use super::*;
    pub fn serialize<S: Serializer>(g: &Option<GenerationId>, s: S) -> Result<S::Ok, S::Error> {
        match g {
            Some(g) => g.serialize(s),
            None => s.serialize_str(""),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GenerationId>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// One app's result in a sweep (a line of `sweeps.jsonl`, an element of
/// the Operation1 `Results` property).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResult {
    pub sweep: OpId,
    pub app: String,
    pub image: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub result: Outcome,
    pub reason: String,
    pub operation: Option<OpId>,
    pub generation: Option<GenerationId>,
    pub dry_run: bool,
    pub registry_requests: u32,
    pub started_at: u64,
    pub finished_at: u64,
}

/// What a cutover moves, persisted in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutoverState {
    pub target: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub link: PathBuf,
    pub binary: String,
    pub unit: Option<String>,
    pub health_http: Option<String>,
    pub keep: usize,
    pub max_bytes: u64,
    pub self_test_timeout_sec: u64,
    pub agent: bool,
    pub allow_http: bool,
    /// Where the link pointed when the operation started (absolute), the
    /// version to return to; `None`: there was no link.
    pub previous: Option<PathBuf>,
    /// The link was a plain file, copied into `previous` first.
    #[serde(default)]
    pub adopted: bool,
    /// `<artifacts>/<target>/<version>`.
    pub version_dir: PathBuf,
    /// The download's staging directory, while it exists.
    #[serde(default)]
    pub staging: Option<PathBuf>,
    /// This operation created `version_dir` (a revert removes it again).
    #[serde(default)]
    pub fresh: bool,
}

impl CutoverState {
    /// No state recorded (a first-agent record in `recorded`).
    pub fn unset(&self) -> bool {
        self.target.is_empty()
    }

    pub fn new_exe(&self) -> PathBuf {
        self.version_dir.join(&self.binary)
    }

    /// The binary to return to (for the agent: what runs the revert).
    pub fn previous_exe(&self) -> PathBuf {
        self.previous.clone().unwrap_or_else(|| self.link.clone())
    }
}

/// A restore: the running generation put back where the host drifted
/// from it. The plan is fixed when it is recorded, so that a restart
/// carries out the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOp {
    pub phase: RestorePhase,
    pub generation: GenerationId,
    /// Started by the agent (an app's `restore` policy), not asked for.
    #[serde(default)]
    pub automatic: bool,
    pub plan: Box<RestorePlan>,
}

/// What a restore does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The drift it restores, as reported (`kind unit-or-path: detail`).
    #[serde(default)]
    pub findings: Vec<String>,
    /// Owned files written back: (path in the generation, where).
    #[serde(default)]
    pub rewrite: Vec<(String, PathBuf)>,
    /// Files of others set aside (drop-ins, masks, overriding units),
    /// kept under `taken-over/<operation>/`.
    #[serde(default)]
    pub set_aside: Vec<PathBuf>,
    pub reload: bool,
    /// Units restarted, then health-gated.
    #[serde(default)]
    pub restart: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
}

impl RestorePlan {
    pub fn is_empty(&self) -> bool {
        self.rewrite.is_empty()
            && self.set_aside.is_empty()
            && !self.reload
            && self.restart.is_empty()
    }
}

/// Any operation's own part, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Op {
    Switch(SwitchOp),
    Rollback(RollbackOp),
    Cutover(CutoverOp),
    Sweep(SweepOp),
    Restore(RestoreOp),
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::Switch(_) => Kind::Switch,
            Op::Rollback(_) => Kind::Rollback,
            Op::Cutover(_) => Kind::Cutover,
            Op::Sweep(_) => Kind::Sweep,
            Op::Restore(_) => Kind::Restore,
        }
    }
    pub fn phase_str(&self) -> &'static str {
        match self {
            Op::Switch(o) => o.phase.as_str(),
            Op::Rollback(o) => o.phase.as_str(),
            Op::Cutover(o) => o.phase.as_str(),
            Op::Sweep(o) => o.phase.as_str(),
            Op::Restore(o) => o.phase.as_str(),
        }
    }
}

/// The part of one kind of operation.
pub trait OpKind: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    type Phase: Copy + Eq + fmt::Debug + fmt::Display + Send + Sync + 'static;
    const KIND: Kind;
    const FINISHED: Self::Phase;
    /// The phase before which the external revert is armed, if this kind
    /// arms one.
    const ARMING_PHASE: Option<&'static str>;
    fn phase(&self) -> Self::Phase;
    fn set_phase(&mut self, p: Self::Phase);
    fn into_op(self) -> Op;
    fn from_op(op: Op) -> Result<Self, Op>;
    /// What the journal logs this operation moves to: a generation
    /// (`WINDLASS_GENERATION`) or a cutover's version
    /// (`WINDLASS_TARGET_VERSION`).
    fn log_target(&self) -> (Option<GenerationId>, Option<&str>);
    /// The binary the external revert runs, when not the agent's own
    /// (a self-upgrade returns to the old agent).
    fn revert_exe(&self) -> Option<PathBuf> {
        None
    }
}

macro_rules! op_kind {
    ($ty:ident, $phase:ident, $variant:ident, $arming:expr, |$o:ident| $target:expr) => {
        impl OpKind for $ty {
            type Phase = $phase;
            const KIND: Kind = Kind::$variant;
            const FINISHED: $phase = $phase::Finished;
            const ARMING_PHASE: Option<&'static str> = $arming;
            fn phase(&self) -> $phase {
                self.phase
            }
            fn set_phase(&mut self, p: $phase) {
                self.phase = p;
            }
            fn into_op(self) -> Op {
                Op::$variant(self)
            }
            fn from_op(op: Op) -> Result<Self, Op> {
                match op {
                    Op::$variant(o) => Ok(o),
                    other => Err(other),
                }
            }
            fn log_target(&self) -> (Option<GenerationId>, Option<&str>) {
                let $o = self;
                $target
            }
            op_kind!(@revert $variant);
        }
    };
    (@revert Cutover) => {
        fn revert_exe(&self) -> Option<PathBuf> {
            self.cutover.agent.then(|| self.cutover.previous_exe())
        }
    };
    (@revert $other:ident) => {};
}

op_kind!(SwitchOp, SwitchPhase, Switch, Some("arming"), |o| (
    Some(o.to_generation),
    None
));
op_kind!(RollbackOp, RollbackPhase, Rollback, None, |o| (
    Some(o.to_generation),
    None
));
op_kind!(CutoverOp, CutoverPhase, Cutover, Some("staging"), |o| (
    None,
    Some(o.to_version.as_str())
));
op_kind!(SweepOp, SweepPhase, Sweep, None, |o| (
    o.from_generation,
    None
));
// No external revert: a restore does not change the generation, so there
// is nothing to revert to.
op_kind!(RestoreOp, RestorePhase, Restore, None, |o| (
    Some(o.generation),
    None
));

/// The longest deadline an operation may be given (a week), whether
/// over the bus or in a target's configuration: longer ones are refused,
/// so no arithmetic on a deadline can wrap.
pub const MAX_DEADLINE_SEC: u64 = 7 * 24 * 3600;

/// One operation, as persisted before each of its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<O = Op> {
    pub id: OpId,
    /// The kind, its phase (the step about to run, or `finished`) and
    /// what it moves.
    #[serde(flatten)]
    pub op: O,
    pub result: Option<Outcome>,
    pub error: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// Units the activation changed (what the health gate waits for).
    #[serde(default)]
    pub changed_units: Vec<String>,
    #[serde(default)]
    pub confirm: Confirm,
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
    pub parent: Option<OpId>,
    /// The last journal lines of the unit a failed gate blames, with a
    /// heading: kept here (a root-only file), given on the bus only to
    /// authorised callers, never in `error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<String>,
    /// The caller's key for this operation (a fleet order's id): a second
    /// call with the same request is answered with this operation and
    /// starts nothing. Absent from records without one, so older records
    /// keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl<O> Record<O> {
    pub fn finished(&self) -> bool {
        self.result.is_some()
    }

    /// A new record of `op`, not yet saved.
    pub fn new(id: OpId, op: O, started_at: u64) -> Record<O> {
        Record {
            id,
            op,
            result: None,
            error: String::new(),
            started_at,
            finished_at: None,
            changed_units: Vec::new(),
            confirm: Confirm::Auto,
            deadline_sec: 0,
            deadline_from_option: false,
            history: Vec::new(),
            parent: None,
            journal: Vec::new(),
            request: None,
        }
    }

    fn map<P>(self, f: impl FnOnce(O) -> P) -> Record<P> {
        Record {
            id: self.id,
            op: f(self.op),
            result: self.result,
            error: self.error,
            started_at: self.started_at,
            finished_at: self.finished_at,
            changed_units: self.changed_units,
            confirm: self.confirm,
            deadline_sec: self.deadline_sec,
            deadline_from_option: self.deadline_from_option,
            history: self.history,
            parent: self.parent,
            journal: self.journal,
            request: self.request,
        }
    }
}

impl<O: OpKind> Record<O> {
    /// The record as stored.
    pub fn to_any(&self) -> Record<Op> {
        self.clone().map(O::into_op)
    }
    pub fn phase(&self) -> O::Phase {
        self.op.phase()
    }
}

impl Record<()> {
    /// This record with its kind's part.
    pub fn with<O>(self, op: O) -> Record<O> {
        self.map(|()| op)
    }
}

impl Record<Op> {
    /// The common part and the kind's part, to match on the kind.
    pub fn split(self) -> (Record<()>, Op) {
        let op = self.op.clone();
        (self.map(|_| ()), op)
    }

    pub fn kind(&self) -> Kind {
        self.op.kind()
    }
    pub fn phase_str(&self) -> &'static str {
        self.op.phase_str()
    }
    /// This record as one of kind `O`, if it is one.
    pub fn downcast<O: OpKind>(self) -> Option<Record<O>> {
        let (base, op) = self.split();
        O::from_op(op).ok().map(|o| base.with(o))
    }
    /// A sweep's results (empty for other kinds).
    pub fn results(&self) -> &[SweepResult] {
        match &self.op {
            Op::Sweep(s) => &s.results,
            _ => &[],
        }
    }
    /// The generation a switch, rollback or sweep moved from, as a string
    /// (`previous_committed` reads it).
    pub fn from_generation(&self) -> Option<GenerationId> {
        match &self.op {
            Op::Switch(o) => o.from_generation,
            Op::Rollback(o) => o.from_generation,
            Op::Sweep(o) => o.from_generation,
            Op::Cutover(_) | Op::Restore(_) => None,
        }
    }
    pub fn to_generation(&self) -> Option<GenerationId> {
        match &self.op {
            Op::Switch(o) => Some(o.to_generation),
            Op::Rollback(o) => Some(o.to_generation),
            Op::Sweep(o) => o.to_generation,
            Op::Restore(o) => Some(o.generation),
            Op::Cutover(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_has_a_distinct_persisted_name() {
        for k in Kind::ALL {
            let names = k.phases();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{k:?}");
            assert_eq!(names.first(), Some(&"recorded"));
            assert_eq!(names.last(), Some(&"finished"));
        }
    }

    #[test]
    fn op_ids_are_safe_in_object_paths() {
        assert!("000001700000x000".parse::<OpId>().is_ok());
        for bad in ["", "a/b", "a-b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<OpId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_ids_are_checked() {
        for good in ["a", "rollout-7/3", "x.y_z:1", &"r".repeat(128)] {
            assert!(check_request(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a\nb", "é", "a;b", &"r".repeat(129)] {
            let e = check_request(bad).unwrap_err();
            assert!(e.contains("not a request id"), "{e}");
        }
    }

    #[test]
    fn a_record_downcasts_to_its_own_kind_only() {
        let r = Record::new(
            OpId::new(1, 0),
            SwitchOp {
                phase: SwitchPhase::Arming,
                from_generation: None,
                to_generation: GenerationId(2),
                taken_over: Vec::new(),
                hooks: Default::default(),
            },
            1,
        );
        let any = r.to_any();
        let json = serde_json::to_value(&any).unwrap();
        assert_eq!(json["kind"], "switch");
        assert_eq!(json["phase"], "arming");
        assert_eq!(json["to_generation"], "2");
        assert!(any.clone().downcast::<CutoverOp>().is_none());
        assert_eq!(any.downcast::<SwitchOp>().unwrap(), r);
    }
}
