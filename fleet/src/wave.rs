//! The rollout and wave state machine, pure: [`step`] takes the stored
//! state, the spec, what was observed (heartbeats with their receive
//! times, results, the control key) and the time, and returns the next
//! state and the effects to perform. The coordinator's runtime does the
//! I/O; the clock is the `now_ms` parameter. Never reads a clock, never
//! performs anything.
//!
//! Effects are performed in their order: [`Effect::SaveState`] comes
//! first (the CAS write with the epoch that fences this coordinator),
//! then the orders. Orders are keyed by (host, seq) and their seqs are
//! allocated in the state, so a second `step` with the same inputs
//! emits no order again; after a takeover, the stored timestamps
//! (`deadline_at`, `soak_from`, `committed_at`) are used as they are.
//!
//! Where the design (docs/design/fleet.md §5) is silent, these choices:
//! - Times are unix ms throughout. A host is unavailable once its last
//!   heartbeat was received 3 × `policy.heartbeat_interval` ago or it
//!   has none; an unavailable host that reports again is judged again
//!   (a partition heals), but `failed` is final for the rollout.
//! - A host is confirmed only once both hold: its `awaiting-confirm`
//!   result arrived (which carries `from`) and its fresh heartbeat shows
//!   the target running with `operation.phase == "waiting-confirm"` for
//!   the request of its order. For a sweep, fleetd reports its inner
//!   switch's phase under the sweep's request. Cutovers are never
//!   confirmed by the coordinator (the agent has no manual cutover
//!   confirm): they commit on their own, like `confirm = "local"`, and
//!   are still judged by the heartbeat (`agent`/`fleetd` version) during
//!   the soak.
//! - A committed host fails during the soak (or before it) when its
//!   heartbeat goes stale, or when a heartbeat sent after its commit
//!   shows another generation/release/version running or the order's
//!   operation ended other than committed. A wave turns green only when
//!   the soak is over and every committed host has sent a heartbeat after
//!   its commit showing it idle on the target.
//! - At the wave deadline, hosts not final become failed (and count so).
//!   A wave whose hosts are all final is not turned red by the deadline
//!   alone. Deadlines keep running while paused: hosts revert on their
//!   own clock, so pausing does not stop time.
//! - `pause` stops every new order, confirms included (unconfirmed hosts
//!   revert on their own deadline); results are still recorded.
//!   `resume` re-evaluates a red wave with the spec passed to `step`.
//!   A control command is applied once (the last applied one is kept);
//!   one that does not fit the phase (resume while running) is logged.
//! - Rolling back: a host with a `from` whose switch did not end
//!   `rolled-back` or `canceled` gets `Rollback { of, to: from }`; a
//!   host ordered but with no result yet gets `Cancel { of }` (its
//!   `from` is unknown; if it reports one later, it is rolled back
//!   too); hosts never ordered get nothing. The rollout is rolled back
//!   (or aborted, after `abort`) when every rollback and cancel order has
//!   a final result; a host that is away keeps its order in its key and
//!   is waited for.
//! - An empty wave (a `rest` wave with nothing left) is green at once.
//! - `RecordCanonical` only exists for sweeps (`canonical.<app>`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    Action, ConfirmMode, Control, ControlCommand, Epoch, GenerationRef, Heartbeat, HostActivity,
    HostId, HostResult, OnFail, OpId, Order, ResultOutcome, RolloutId, names, order_id,
};
use crate::spec::{RolloutSpec, TargetSpec};

names! {
    RolloutPhase {
        Running = "running",
        /// A red wave with `on_fail = "pause"`, or an operator's pause.
        Paused = "paused",
        RollingBack = "rolling-back",
        Completed = "completed",
        /// Rolled back after an operator's abort.
        Aborted = "aborted",
        /// Rolled back after a red wave with `on_fail = "rollback"`.
        RolledBack = "rolled-back",
        /// Refused by the coordinator before any order (a sweep with no
        /// newer release to move to; `reason` says why).
        Refused = "refused",
    }
}

names! {
    WavePhase {
        Pending = "pending",
        /// Orders written; some host has not reported yet.
        Ordering = "ordering",
        Confirming = "confirming",
        /// Every host final; waiting out the soak.
        Soaking = "soaking",
        Green = "green",
        Red = "red",
    }
}

names! {
    HostPhase {
        Pending = "pending",
        Ordered = "ordered",
        Started = "started",
        AwaitingConfirm = "awaiting-confirm",
        ConfirmOrdered = "confirm-ordered",
        Committed = "committed",
        Failed = "failed",
        Unavailable = "unavailable",
        RollbackOrdered = "rollback-ordered",
        CancelOrdered = "cancel-ordered",
        RolledBack = "rolled-back",
        Untouched = "untouched",
    }
}

impl HostPhase {
    /// Final for the wave: the soak can start once every host is.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            HostPhase::Committed | HostPhase::Failed | HostPhase::Unavailable
        )
    }
}

/// `<rollout>.state`: everything the coordinator needs to go on after a
/// restart or a takeover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    pub id: RolloutId,
    /// The epoch orders are written with (the coordinator sets its own
    /// at takeover).
    pub epoch: Epoch,
    pub phase: RolloutPhase,
    /// Why the rollout is paused, rolling back or ended so.
    #[serde(default)]
    pub reason: String,
    /// The current wave.
    pub wave: usize,
    pub waves: Vec<WaveState>,
    pub started_at: u64,
    pub updated_at: u64,
    pub canonical_recorded: bool,
    /// The next order's seq.
    pub next_seq: u64,
    #[serde(default)]
    pub last_control: Option<Control>,
    #[serde(default)]
    pub aborted_by: Option<String>,
    /// A sweep's release: the rollout file's, or the one the coordinator
    /// discovered when it first drove the rollout (`None` until then).
    /// Every wave orders it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveState {
    pub name: String,
    pub phase: WavePhase,
    /// Why it is red.
    #[serde(default)]
    pub reason: String,
    pub hosts: BTreeMap<HostId, HostProgress>,
    pub started_at: Option<u64>,
    pub deadline_at: Option<u64>,
    pub soak_from: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProgress {
    pub phase: HostPhase,
    /// The seq of the wave's order (switch, sweep or cutover).
    pub seq: Option<u64>,
    pub confirm_seq: Option<u64>,
    pub rollback_seq: Option<u64>,
    pub cancel_seq: Option<u64>,
    pub op: Option<OpId>,
    pub from: Option<GenerationRef>,
    #[serde(default)]
    pub error: String,
    pub committed_at: Option<u64>,
    pub unavailable_since: Option<u64>,
}

impl HostProgress {
    pub(crate) fn pending() -> HostProgress {
        HostProgress {
            phase: HostPhase::Pending,
            seq: None,
            confirm_seq: None,
            rollback_seq: None,
            cancel_seq: None,
            op: None,
            from: None,
            error: String::new(),
            committed_at: None,
            unavailable_since: None,
        }
    }
}

/// What the coordinator saw, as of `now_ms`.
pub struct Observed<'a> {
    /// The latest heartbeat of each host and when it was received (unix
    /// ms, the coordinator's clock; the entry's server time at start).
    pub heartbeats: &'a BTreeMap<HostId, (Heartbeat, u64)>,
    /// The latest step of each order of this rollout, by (host, seq).
    pub results: &'a BTreeMap<(HostId, u64), HostResult>,
    pub control: Option<&'a Control>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the returned state (CAS, with the epoch); always first.
    SaveState,
    /// Write this order to the host's key.
    Order(Order),
    /// Write `canonical.<app>` (the state's `canonical_recorded` is set
    /// in the same save).
    RecordCanonical {
        app: String,
        release: String,
    },
    Log(String),
}

/// The state of a rollout that starts now: `hosts` are the waves' hosts
/// (from `select::resolve`), `first_seq` is above every `orders.last_seq`
/// the hosts reported (fleetd skips orders at or below its last seq).
/// A sweep without a release starts without one: [`step`] orders nothing
/// until the coordinator has set [`RolloutState::release`].
pub fn start(
    spec: &RolloutSpec,
    hosts: Vec<Vec<HostId>>,
    epoch: Epoch,
    first_seq: u64,
    now_ms: u64,
) -> Result<RolloutState, String> {
    if hosts.len() != spec.waves.len() {
        return Err(format!(
            "{} host lists for {} waves",
            hosts.len(),
            spec.waves.len()
        ));
    }
    let waves = spec
        .waves
        .iter()
        .zip(hosts)
        .map(|(w, hosts)| WaveState {
            name: w.name.clone(),
            phase: WavePhase::Pending,
            reason: String::new(),
            hosts: hosts
                .into_iter()
                .map(|h| (h, HostProgress::pending()))
                .collect(),
            started_at: None,
            deadline_at: None,
            soak_from: None,
        })
        .collect();
    Ok(RolloutState {
        id: spec.id.clone(),
        epoch,
        phase: RolloutPhase::Running,
        reason: String::new(),
        wave: 0,
        waves,
        started_at: now_ms,
        updated_at: now_ms,
        canonical_recorded: false,
        next_seq: first_seq,
        last_control: None,
        aborted_by: None,
        release: match &spec.target {
            TargetSpec::Sweep { release, .. } => release.clone(),
            _ => None,
        },
    })
}

/// A sweep's release: the rollout file's, else the discovered one.
pub fn sweep_release<'a>(spec: &'a RolloutSpec, s: &'a RolloutState) -> Option<&'a str> {
    match &spec.target {
        TargetSpec::Sweep { release, .. } => release.as_deref().or(s.release.as_deref()),
        _ => None,
    }
}

/// Whether the rollout is a sweep still waiting for its release to be
/// discovered (nothing is ordered meanwhile).
pub fn awaits_release(spec: &RolloutSpec, s: &RolloutState) -> bool {
    matches!(spec.target, TargetSpec::Sweep { .. }) && sweep_release(spec, s).is_none()
}

/// The rollout refused before any order: `reason` says why.
pub fn refuse(s: &RolloutState, reason: String, now_ms: u64) -> RolloutState {
    let mut n = s.clone();
    n.phase = RolloutPhase::Refused;
    n.reason = reason;
    n.updated_at = now_ms;
    n
}

/// One evaluation: the next state and what to do. Pure and idempotent.
pub fn step(
    s: &RolloutState,
    spec: &RolloutSpec,
    o: &Observed,
    now_ms: u64,
) -> (RolloutState, Vec<Effect>) {
    let mut m = Machine {
        s: s.clone(),
        spec,
        o,
        now: now_ms,
        fx: Vec::new(),
    };
    m.control();
    // Each pass moves at most one wave on; a green wave lets the next
    // one start in the same step. The result is a fixpoint: stepping
    // it again with the same inputs changes nothing.
    for _ in 0..=spec.waves.len() + 1 {
        let before = m.s.clone();
        m.advance();
        if m.s == before {
            break;
        }
    }
    let Machine {
        s: mut n, mut fx, ..
    } = m;
    if n != *s {
        n.updated_at = now_ms;
        fx.insert(0, Effect::SaveState);
    }
    (n, fx)
}

/// When `step` should run again without news: the wave's deadline, the
/// soak's end, or a heartbeat interval from now while hosts are judged
/// (for staleness). None when only news can change anything.
pub fn next_wake(s: &RolloutState, spec: &RolloutSpec, now_ms: u64) -> Option<u64> {
    let interval = ms(spec.policy.heartbeat_interval);
    match s.phase {
        // The coordinator's discovery wakes it.
        RolloutPhase::Running if awaits_release(spec, s) => None,
        RolloutPhase::Running => {
            let w = s.waves.get(s.wave)?;
            let mut wake = now_ms + interval;
            if w.phase == WavePhase::Pending {
                return Some(now_ms);
            }
            if let Some(d) = w.deadline_at
                && !matches!(
                    w.phase,
                    WavePhase::Soaking | WavePhase::Green | WavePhase::Red
                )
            {
                wake = wake.min(d);
            }
            if let (WavePhase::Soaking, Some(from)) = (w.phase, w.soak_from) {
                wake = wake.min(from + ms(spec.policy.soak));
            }
            Some(wake.max(now_ms))
        }
        RolloutPhase::RollingBack => Some(now_ms + interval),
        _ => None,
    }
}

/// The wave order a rollout gives each host: its switch, sweep or
/// cutover (the coordinator rebuilds lost orders from it at takeover).
pub fn main_action(spec: &RolloutSpec, s: &RolloutState) -> Action {
    let p = &spec.policy;
    let deadline_sec = p.health_deadline.as_secs();
    match &spec.target {
        TargetSpec::Generation(target) => Action::Switch {
            target: target.clone(),
            deadline_sec,
            confirm: p.confirm,
        },
        TargetSpec::Sweep { app, .. } => Action::Sweep {
            app: app.clone(),
            release: sweep_release(spec, s).unwrap_or_default().to_string(),
            deadline_sec,
            confirm: p.confirm,
        },
        TargetSpec::Cutover {
            target,
            version,
            url,
            sha256,
        } => Action::Cutover {
            target: target.clone(),
            version: version.clone(),
            url: url.clone(),
            sha256: sha256.clone(),
            deadline_sec,
        },
    }
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

struct Machine<'a> {
    s: RolloutState,
    spec: &'a RolloutSpec,
    o: &'a Observed<'a>,
    now: u64,
    fx: Vec<Effect>,
}

impl Machine<'_> {
    fn log(&mut self, msg: String) {
        self.fx.push(Effect::Log(msg));
    }

    fn control(&mut self) {
        let Some(c) = self.o.control else { return };
        if self.s.last_control.as_ref() == Some(c) {
            return;
        }
        self.s.last_control = Some(c.clone());
        let phase = self.s.phase;
        match (c.command, phase) {
            (ControlCommand::Pause, RolloutPhase::Running) => {
                self.s.phase = RolloutPhase::Paused;
                self.s.reason = format!("paused by {}", c.by);
            }
            (ControlCommand::Resume, RolloutPhase::Paused) => {
                self.s.phase = RolloutPhase::Running;
                self.s.reason.clear();
                let w = &mut self.s.waves[self.s.wave];
                if w.phase == WavePhase::Red {
                    // Judged again below, against the spec as given now.
                    w.phase = WavePhase::Confirming;
                    w.reason.clear();
                }
            }
            (ControlCommand::Abort, RolloutPhase::Running | RolloutPhase::Paused) => {
                self.s.phase = RolloutPhase::RollingBack;
                self.s.reason = format!("aborted by {}", c.by);
                self.s.aborted_by = Some(c.by.clone());
            }
            (cmd, phase) => self.log(format!("{cmd} by {} ignored: the rollout is {phase}", c.by)),
        }
    }

    fn advance(&mut self) {
        match self.s.phase {
            RolloutPhase::Running => self.run_wave(),
            RolloutPhase::Paused => {
                let w = self.s.wave;
                if self.s.waves[w].phase != WavePhase::Pending {
                    self.observe_hosts(w);
                }
            }
            RolloutPhase::RollingBack => self.roll_back(),
            RolloutPhase::Completed
            | RolloutPhase::Aborted
            | RolloutPhase::RolledBack
            | RolloutPhase::Refused => {}
        }
    }

    fn alloc_seq(&mut self) -> u64 {
        let seq = self.s.next_seq;
        self.s.next_seq += 1;
        seq
    }

    fn order(&mut self, host: &str, wave: usize, seq: u64, deadline_at: u64, action: Action) {
        self.fx.push(Effect::Order(Order {
            id: order_id(&self.s.id, seq),
            host: host.to_string(),
            rollout: self.s.id.clone(),
            wave,
            seq,
            epoch: self.s.epoch,
            issued_at: self.now,
            deadline_at,
            action,
        }));
    }

    fn main_action(&self) -> Action {
        main_action(self.spec, &self.s)
    }

    /// Whether the coordinator confirms (observed mode, not a cutover).
    fn confirms(&self) -> bool {
        self.spec.policy.confirm == ConfirmMode::Observed
            && !matches!(self.spec.target, TargetSpec::Cutover { .. })
    }

    /// Whether a heartbeat shows the rollout's target running.
    fn runs_target(&self, hb: &Heartbeat) -> bool {
        match &self.spec.target {
            TargetSpec::Generation(t) => {
                hb.running.as_ref().is_some_and(|r| r.digest == t.digest())
            }
            TargetSpec::Sweep { app, .. } => sweep_release(self.spec, &self.s)
                .is_some_and(|r| hb.releases.get(app).map(String::as_str) == Some(r)),
            TargetSpec::Cutover {
                target, version, ..
            } => match target.as_str() {
                "agent" => hb.agent == *version,
                "fleetd" => hb.fleetd == *version,
                _ => false,
            },
        }
    }

    fn heartbeat(&self, host: &str) -> Option<&Heartbeat> {
        self.o.heartbeats.get(host).map(|(hb, _)| hb)
    }

    fn stale(&self, host: &str) -> bool {
        let limit = 3 * ms(self.spec.policy.heartbeat_interval);
        match self.o.heartbeats.get(host) {
            Some((_, received)) => self.now.saturating_sub(*received) >= limit,
            None => true,
        }
    }

    fn result(&self, host: &str, seq: Option<u64>) -> Option<&HostResult> {
        seq.and_then(|seq| self.o.results.get(&(host.to_string(), seq)))
    }

    /// Folds results and heartbeats into the hosts of wave `w`.
    fn observe_hosts(&mut self, w: usize) {
        let hosts: Vec<HostId> = self.s.waves[w].hosts.keys().cloned().collect();
        for host in hosts {
            let p = self.s.waves[w].hosts[&host].clone();
            let mut n = p.clone();
            if p.phase == HostPhase::Failed || p.seq.is_none() {
                continue;
            }
            let main = self.result(&host, p.seq);
            if let Some(r) = main {
                if r.from.is_some() {
                    n.from = r.from.clone();
                }
                if r.operation.is_some() {
                    n.op = r.operation.clone();
                }
            }
            let confirm = self.result(&host, p.confirm_seq);
            let fin = confirm
                .filter(|r| r.outcome.is_final())
                .or(main.filter(|r| r.outcome.is_final()));
            // Decide the phase.
            let in_flight = match main.map(|r| r.outcome) {
                Some(ResultOutcome::AwaitingConfirm) if p.confirm_seq.is_some() => {
                    HostPhase::ConfirmOrdered
                }
                Some(ResultOutcome::AwaitingConfirm) => HostPhase::AwaitingConfirm,
                Some(ResultOutcome::Started) => HostPhase::Started,
                _ if p.confirm_seq.is_some() => HostPhase::ConfirmOrdered,
                _ => HostPhase::Ordered,
            };
            match fin {
                Some(r)
                    if r.outcome == ResultOutcome::Committed
                        || (r.outcome == ResultOutcome::Skipped
                            && self.heartbeat(&host).is_some_and(|hb| self.runs_target(hb))) =>
                {
                    if p.phase != HostPhase::Committed {
                        n.phase = HostPhase::Committed;
                        n.committed_at = Some(r.at);
                        n.unavailable_since = None;
                    }
                }
                Some(r) => {
                    n.phase = HostPhase::Failed;
                    n.error = if r.error.is_empty() {
                        format!("order {} {}", r.order, r.outcome)
                    } else {
                        format!("order {} {}: {}", r.order, r.outcome, r.error)
                    };
                }
                None if self.stale(&host) => {
                    n.phase = HostPhase::Unavailable;
                    n.unavailable_since.get_or_insert(self.now);
                }
                None => {
                    n.phase = in_flight;
                    n.unavailable_since = None;
                }
            }
            if n.phase == HostPhase::Committed
                && let Some(why) = self.committed_mismatch(&host, &n)
            {
                n.phase = HostPhase::Failed;
                n.error = why;
            }
            self.s.waves[w].hosts.insert(host, n);
        }
    }

    /// Why a committed host no longer counts as committed, if it does not.
    fn committed_mismatch(&self, host: &str, p: &HostProgress) -> Option<String> {
        if self.stale(host) {
            let n = self.spec.policy.heartbeat_interval.as_secs() * 3;
            return Some(format!("no heartbeat for {n} s after its commit"));
        }
        let hb = self.heartbeat(host)?;
        if hb.sent_at < p.committed_at.unwrap_or(0) {
            return None; // from before the commit: not telling
        }
        let request = p.seq.map(|seq| order_id(&self.s.id, seq));
        if let Some(last) = &hb.last
            && last.request.is_some()
            && last.request == request
            && last.result != "committed"
        {
            return Some(format!("its operation {} ended {}", last.id, last.result));
        }
        if !self.runs_target(hb) {
            let running = hb.running.as_ref().map_or("nothing".to_string(), |r| {
                format!("{} ({})", r.generation, r.digest)
            });
            return Some(format!("runs {running}, not the rollout's target"));
        }
        None
    }

    /// Whether a committed host's heartbeat, sent after its commit,
    /// shows it idle on the target.
    fn settled(&self, host: &str, p: &HostProgress) -> bool {
        self.heartbeat(host).is_some_and(|hb| {
            hb.sent_at >= p.committed_at.unwrap_or(0)
                && hb.state == HostActivity::Idle
                && self.runs_target(hb)
        })
    }

    fn run_wave(&mut self) {
        if awaits_release(self.spec, &self.s) {
            return;
        }
        let w = self.s.wave;
        let policy = &self.spec.policy;
        match self.s.waves[w].phase {
            WavePhase::Pending => {
                let deadline_at = self.now + ms(policy.wave_deadline);
                let hosts: Vec<HostId> = self.s.waves[w].hosts.keys().cloned().collect();
                for host in &hosts {
                    let seq = self.alloc_seq();
                    let action = self.main_action();
                    self.order(host, w, seq, deadline_at, action);
                    let p = self.s.waves[w].hosts.get_mut(host).expect("listed");
                    p.seq = Some(seq);
                    p.phase = HostPhase::Ordered;
                }
                let wave = &mut self.s.waves[w];
                wave.started_at = Some(self.now);
                wave.deadline_at = Some(deadline_at);
                wave.phase = if hosts.is_empty() {
                    WavePhase::Green
                } else {
                    WavePhase::Ordering
                };
                if hosts.is_empty() {
                    self.wave_green(w);
                }
            }
            WavePhase::Ordering | WavePhase::Confirming | WavePhase::Soaking => self.judge(w),
            WavePhase::Green | WavePhase::Red => {}
        }
    }

    fn judge(&mut self, w: usize) {
        self.observe_hosts(w);
        let policy = self.spec.policy.clone();
        let wave = &mut self.s.waves[w];
        if wave.deadline_at.is_some_and(|d| self.now >= d) {
            for p in wave.hosts.values_mut() {
                if !p.phase.is_final() {
                    p.phase = HostPhase::Failed;
                    p.error = "not final at the wave deadline".to_string();
                }
            }
        }
        let count = |ph: HostPhase| wave.hosts.values().filter(|p| p.phase == ph).count() as u32;
        let failed = count(HostPhase::Failed);
        let unavailable = count(HostPhase::Unavailable);
        if failed > policy.max_failed {
            return self.wave_red(
                w,
                format!("{failed} failed, at most {} allowed", policy.max_failed),
            );
        }
        if unavailable > policy.max_unavailable {
            return self.wave_red(
                w,
                format!(
                    "{unavailable} unavailable, at most {} allowed",
                    policy.max_unavailable
                ),
            );
        }
        // Confirms: only on what the host itself shows.
        if self.confirms() {
            let hosts: Vec<HostId> = self.s.waves[w].hosts.keys().cloned().collect();
            for host in hosts {
                let p = &self.s.waves[w].hosts[&host];
                if p.phase != HostPhase::AwaitingConfirm || p.confirm_seq.is_some() {
                    continue;
                }
                let of = order_id(&self.s.id, p.seq.expect("ordered"));
                let shows = !self.stale(&host)
                    && self.heartbeat(&host).is_some_and(|hb| {
                        self.runs_target(hb)
                            && hb.operation.as_ref().is_some_and(|op| {
                                op.phase == "waiting-confirm" && op.request.as_deref() == Some(&of)
                            })
                    });
                if !shows {
                    continue;
                }
                let seq = self.alloc_seq();
                let deadline_at = self.s.waves[w].deadline_at.unwrap_or(self.now);
                self.order(&host, w, seq, deadline_at, Action::Confirm { of });
                let p = self.s.waves[w].hosts.get_mut(&host).expect("listed");
                p.confirm_seq = Some(seq);
                p.phase = HostPhase::ConfirmOrdered;
            }
        }
        let wave = &mut self.s.waves[w];
        let all_final = wave.hosts.values().all(|p| p.phase.is_final());
        if !all_final {
            let any_ordered = wave.hosts.values().any(|p| p.phase == HostPhase::Ordered);
            wave.phase = if any_ordered {
                WavePhase::Ordering
            } else {
                WavePhase::Confirming
            };
            return;
        }
        if wave.phase != WavePhase::Soaking {
            wave.phase = WavePhase::Soaking;
            let last_commit = wave.hosts.values().filter_map(|p| p.committed_at).max();
            wave.soak_from = Some(last_commit.unwrap_or(self.now));
        }
        let soak_end = wave.soak_from.unwrap_or(self.now) + ms(policy.soak);
        if self.now < soak_end {
            return;
        }
        let wave = &self.s.waves[w];
        let settled = wave
            .hosts
            .iter()
            .filter(|(_, p)| p.phase == HostPhase::Committed)
            .all(|(h, p)| self.settled(h, p));
        if settled {
            self.s.waves[w].phase = WavePhase::Green;
            self.wave_green(w);
        }
    }

    fn wave_green(&mut self, w: usize) {
        self.log(format!("wave {} green", self.s.waves[w].name));
        self.withdraw_unanswered(w);
        if w + 1 < self.s.waves.len() {
            self.s.wave = w + 1;
            return;
        }
        if let TargetSpec::Sweep { app, .. } = &self.spec.target
            && let Some(release) = sweep_release(self.spec, &self.s)
            && !self.s.canonical_recorded
        {
            let (app, release) = (app.clone(), release.to_string());
            self.s.canonical_recorded = true;
            self.fx.push(Effect::RecordCanonical { app, release });
        }
        self.s.phase = RolloutPhase::Completed;
    }

    /// Hosts of wave `w` left behind with an order they never answered
    /// (away, or past the deadline) get a Cancel of it, which replaces
    /// it in their order key: a host that comes back after its wave went
    /// green (or the rollout completed) starts nothing (fleetd answers a
    /// Cancel of an order it never ran with `skipped`) instead of
    /// switching, waiting for a confirm nobody sends and reverting.
    fn withdraw_unanswered(&mut self, w: usize) {
        let deadline_at = self.now + ms(self.spec.policy.wave_deadline);
        let hosts: Vec<String> = self.s.waves[w].hosts.keys().cloned().collect();
        for host in hosts {
            let p = &self.s.waves[w].hosts[&host];
            let Some(seq) = p.seq else { continue };
            if p.cancel_seq.is_some() || self.result(&host, Some(seq)).is_some() {
                continue;
            }
            let cseq = self.alloc_seq();
            let of = order_id(&self.s.id, seq);
            self.order(&host, w, cseq, deadline_at, Action::Cancel { of });
            let n = self.s.waves[w].hosts.get_mut(&host).expect("listed");
            n.cancel_seq = Some(cseq);
        }
    }

    fn wave_red(&mut self, w: usize, reason: String) {
        let wave = &mut self.s.waves[w];
        wave.phase = WavePhase::Red;
        wave.reason = reason.clone();
        let why = format!("wave {} red: {reason}", wave.name);
        self.s.reason = why.clone();
        self.s.phase = match self.spec.policy.on_fail {
            OnFail::Pause => RolloutPhase::Paused,
            OnFail::Rollback => RolloutPhase::RollingBack,
        };
        self.log(why);
    }

    fn roll_back(&mut self) {
        let deadline_at = self.now + ms(self.spec.policy.wave_deadline);
        let mut done = true;
        for w in 0..self.s.waves.len() {
            let hosts: Vec<HostId> = self.s.waves[w].hosts.keys().cloned().collect();
            for host in hosts {
                let p = self.s.waves[w].hosts[&host].clone();
                let main = self.result(&host, p.seq).cloned();
                let mut n = p.clone();
                if let Some(r) = &main
                    && r.from.is_some()
                {
                    n.from = r.from.clone();
                }
                let main_final = main.as_ref().map(|r| r.outcome).filter(|o| o.is_final());
                let went_back = matches!(
                    main_final,
                    Some(ResultOutcome::RolledBack | ResultOutcome::Canceled)
                );
                let cancel = self.result(&host, p.cancel_seq).map(|r| r.outcome);
                if let Some(seq) = p.rollback_seq {
                    match self.result(&host, Some(seq)) {
                        Some(r) if r.outcome.is_final() => {
                            if matches!(
                                r.outcome,
                                ResultOutcome::Committed | ResultOutcome::Skipped
                            ) {
                                n.phase = HostPhase::RolledBack;
                            } else {
                                n.phase = HostPhase::Failed;
                                n.error =
                                    format!("rollback {} {}: {}", r.order, r.outcome, r.error);
                            }
                        }
                        _ => done = false,
                    }
                } else if n.from.is_some()
                    && !went_back
                    && (p.cancel_seq.is_none()
                        || main_final.is_some()
                        || cancel.is_some_and(|c| c.is_final()))
                {
                    let of = order_id(&self.s.id, p.seq.expect("a result has an order"));
                    let to = n.from.clone().expect("checked");
                    let seq = self.alloc_seq();
                    self.order(&host, w, seq, deadline_at, Action::Rollback { of, to });
                    n.rollback_seq = Some(seq);
                    n.phase = HostPhase::RollbackOrdered;
                    done = false;
                } else if went_back {
                    n.phase = HostPhase::RolledBack;
                } else if let Some(seq) = p.seq.filter(|_| main_final.is_none()) {
                    match p.cancel_seq {
                        None => {
                            let cseq = self.alloc_seq();
                            let of = order_id(&self.s.id, seq);
                            self.order(&host, w, cseq, deadline_at, Action::Cancel { of });
                            n.cancel_seq = Some(cseq);
                            n.phase = HostPhase::CancelOrdered;
                            done = false;
                        }
                        Some(_) if cancel.is_some_and(|c| c.is_final()) => {
                            n.phase = HostPhase::Untouched;
                        }
                        Some(_) => done = false,
                    }
                } else if p.seq.is_none() {
                    n.phase = HostPhase::Untouched;
                }
                self.s.waves[w].hosts.insert(host, n);
            }
        }
        if done {
            self.s.phase = if self.s.aborted_by.is_some() {
                RolloutPhase::Aborted
            } else {
                RolloutPhase::RolledBack
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use windlass_contract::GenerationId;

    use super::*;
    use crate::model::{CurrentOperation, LastOperation, NativeTarget, Target};
    use crate::spec::{HostSelector, Policy, WaveSpec};

    const T0: u64 = 1_750_000_000_000;
    const S: u64 = 1000;
    const TARGET: &str = "sha256:target";

    fn gref(n: u64, digest: &str) -> GenerationRef {
        GenerationRef {
            generation: GenerationId(n),
            digest: digest.into(),
        }
    }

    fn from_of(host: &str) -> GenerationRef {
        gref(6, &format!("sha256:old-{host}"))
    }

    fn spec(waves: &[&[&str]]) -> RolloutSpec {
        RolloutSpec {
            id: "web-142".into(),
            target: TargetSpec::Generation(Target::Native(NativeTarget {
                digest: TARGET.into(),
                artifact: "sha256-a".into(),
                artifact_sha256: "a".into(),
                size: 1,
            })),
            waves: waves
                .iter()
                .enumerate()
                .map(|(i, hs)| WaveSpec {
                    name: format!("w{i}"),
                    hosts: HostSelector::Hosts(hs.iter().map(|h| h.to_string()).collect()),
                })
                .collect(),
            policy: Policy {
                max_unavailable: 0,
                max_failed: 0,
                soak: Duration::from_secs(10),
                wave_deadline: Duration::from_secs(100),
                health_deadline: Duration::from_secs(50),
                heartbeat_interval: Duration::from_secs(1),
                on_fail: OnFail::Pause,
                confirm: ConfirmMode::Observed,
            },
        }
    }

    fn begin(spec: &RolloutSpec) -> RolloutState {
        let hosts = spec
            .waves
            .iter()
            .map(|w| match &w.hosts {
                HostSelector::Hosts(h) => h.clone(),
                _ => unreachable!(),
            })
            .collect();
        start(spec, hosts, Epoch { era: 1, rev: 5 }, 1, T0).unwrap()
    }

    /// A fake fleet: the latest heartbeat and results the coordinator saw.
    #[derive(Default, Clone)]
    struct World {
        hbs: BTreeMap<HostId, (Heartbeat, u64)>,
        results: BTreeMap<(HostId, u64), HostResult>,
        control: Option<Control>,
    }

    impl World {
        fn new(spec: &RolloutSpec) -> World {
            let mut w = World::default();
            for wave in &spec.waves {
                if let HostSelector::Hosts(hs) = &wave.hosts {
                    for h in hs {
                        w.idle(h, &from_of(h).digest, T0);
                    }
                }
            }
            w
        }

        fn beat(&mut self, host: &str, running: &str, op: Option<(&str, String)>, at: u64) {
            let hb = Heartbeat {
                host: host.into(),
                n: 0,
                sent_at: at,
                fleetd: "0.2.0".into(),
                agent: "0.2.0".into(),
                platform: "native".into(),
                labels: BTreeMap::new(),
                selected: Some(gref(7, running)),
                running: Some(gref(7, running)),
                state: if op.is_some() {
                    HostActivity::Busy
                } else {
                    HostActivity::Idle
                },
                operation: op.map(|(phase, request)| CurrentOperation {
                    id: format!("{:012}x000", at / S),
                    kind: "switch".into(),
                    phase: phase.into(),
                    request: Some(request),
                    to: Some(gref(7, TARGET)),
                }),
                last: None,
                releases: BTreeMap::new(),
                apps: BTreeMap::new(),
                drift: Default::default(),
                orders: Default::default(),
                outbox: 0,
            };
            self.hbs.insert(host.into(), (hb, at));
        }

        fn idle(&mut self, host: &str, running: &str, at: u64) {
            self.beat(host, running, None, at);
        }

        /// Every host's heartbeat is received again, unchanged but `at`.
        fn refresh(&mut self, at: u64) {
            for (hb, received) in self.hbs.values_mut() {
                hb.sent_at = at;
                *received = at;
            }
        }

        fn result(&mut self, host: &str, seq: u64, outcome: ResultOutcome, at: u64) {
            let from = (!matches!(
                outcome,
                ResultOutcome::Refused | ResultOutcome::IgnoredStale
            ))
            .then(|| from_of(host));
            self.results.insert(
                (host.into(), seq),
                HostResult {
                    order: order_id("web-142", seq),
                    host: host.into(),
                    rollout: "web-142".into(),
                    seq,
                    epoch: Epoch { era: 1, rev: 5 },
                    operation: Some(format!("{:012}x000", at / S)),
                    kind: Some("switch".into()),
                    outcome,
                    from,
                    to: Some(gref(7, TARGET)),
                    error: String::new(),
                    journal: Vec::new(),
                    at,
                },
            );
        }

        /// The host gated, waits for a confirm and says so.
        fn awaiting(&mut self, host: &str, seq: u64, at: u64) {
            self.result(host, seq, ResultOutcome::AwaitingConfirm, at);
            self.beat(
                host,
                TARGET,
                Some(("waiting-confirm", order_id("web-142", seq))),
                at,
            );
        }

        /// The host committed and is idle on the target.
        fn committed(&mut self, host: &str, seq: u64, at: u64) {
            self.result(host, seq, ResultOutcome::Committed, at);
            self.idle(host, TARGET, at);
        }

        fn control(&mut self, command: ControlCommand, at: u64) {
            self.control = Some(Control {
                command,
                by: "alice@ops1".into(),
                at,
            });
        }

        fn step(
            &self,
            s: &RolloutState,
            spec: &RolloutSpec,
            now: u64,
        ) -> (RolloutState, Vec<Effect>) {
            let o = Observed {
                heartbeats: &self.hbs,
                results: &self.results,
                control: self.control.as_ref(),
            };
            let (n, fx) = step(s, spec, &o, now);
            // Idempotent: the same inputs again change nothing, order nothing.
            let (again, fx2) = step(&n, spec, &o, now);
            assert_eq!(again, n, "a second step changed the state");
            assert!(
                !fx2.iter().any(|e| matches!(
                    e,
                    Effect::Order(_) | Effect::SaveState | Effect::RecordCanonical { .. }
                )),
                "a second step emitted {fx2:?}"
            );
            (n, fx)
        }
    }

    fn orders(fx: &[Effect]) -> Vec<(String, u64, ActionKindOf)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Order(o) => Some((o.host.clone(), o.seq, kind_of(&o.action))),
                _ => None,
            })
            .collect()
    }

    type ActionKindOf = crate::model::ActionKind;
    fn kind_of(a: &Action) -> ActionKindOf {
        a.kind()
    }

    use crate::model::ActionKind as K;

    fn host<'a>(s: &'a RolloutState, w: usize, h: &str) -> &'a HostProgress {
        &s.waves[w].hosts[h]
    }

    /// Runs wave 0 = ["c"] to green; returns the state and the effects of
    /// the step that made it green.
    fn green_canary(spec: &RolloutSpec, w: &mut World) -> (RolloutState, Vec<Effect>) {
        let s = begin(spec);
        let (s, fx) = w.step(&s, spec, T0);
        assert_eq!(orders(&fx), vec![("c".into(), 1, K::Switch)]);
        assert_eq!(s.waves[0].phase, WavePhase::Ordering);
        w.awaiting("c", 1, T0 + 2 * S);
        let (s, fx) = w.step(&s, spec, T0 + 2 * S);
        assert_eq!(orders(&fx), vec![("c".into(), 2, K::Confirm)]);
        w.committed("c", 1, T0 + 3 * S);
        let (s, fx) = w.step(&s, spec, T0 + 3 * S);
        assert!(orders(&fx).is_empty());
        assert_eq!(s.waves[0].phase, WavePhase::Soaking);
        assert_eq!(s.waves[0].soak_from, Some(T0 + 3 * S));
        w.refresh(T0 + 12 * S);
        let (s, fx) = w.step(&s, spec, T0 + 12 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Soaking, "soak not over");
        assert!(orders(&fx).is_empty());
        w.refresh(T0 + 13 * S);
        w.step(&s, spec, T0 + 13 * S)
    }

    #[test]
    fn canary_green_orders_wave_two() {
        let spec = spec(&[&["c"], &["a", "b"]]);
        let mut w = World::new(&spec);
        let (s, fx) = green_canary(&spec, &mut w);
        assert_eq!(s.waves[0].phase, WavePhase::Green);
        assert_eq!(s.wave, 1);
        assert_eq!(
            orders(&fx),
            vec![("a".into(), 3, K::Switch), ("b".into(), 4, K::Switch)]
        );
        assert_eq!(fx[0], Effect::SaveState, "the state is saved before orders");
        let Some(Effect::Order(o)) = fx.iter().find(|e| matches!(e, Effect::Order(_))) else {
            panic!()
        };
        assert_eq!(o.id, "web-142/3");
        assert_eq!(o.wave, 1);
        assert_eq!(o.epoch, Epoch { era: 1, rev: 5 });
        assert_eq!(o.deadline_at, T0 + 13 * S + 100 * S);
        assert_eq!(s.waves[1].deadline_at, Some(o.deadline_at));
    }

    #[test]
    fn health_passed_but_running_other_generation_is_never_confirmed() {
        let spec = spec(&[&["c"], &["a"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        // The gate passed and the host waits for its confirm, but it runs
        // another generation (a silent revert, or the wrong tree).
        w.result("c", 1, ResultOutcome::AwaitingConfirm, T0 + S);
        let mut s = s;
        for t in (2..100).step_by(2) {
            w.beat(
                "c",
                "sha256:other",
                Some(("waiting-confirm", "web-142/1".into())),
                T0 + t * S,
            );
            let (n, fx) = w.step(&s, &spec, T0 + t * S);
            assert!(orders(&fx).is_empty(), "at {t} s: {fx:?}");
            assert_eq!(host(&n, 0, "c").phase, HostPhase::AwaitingConfirm);
            s = n;
        }
        // Running the target but waiting for another request: no confirm either.
        w.beat(
            "c",
            TARGET,
            Some(("waiting-confirm", "web-142/99".into())),
            T0 + 99 * S,
        );
        let (s, fx) = w.step(&s, &spec, T0 + 99 * S);
        assert!(orders(&fx).is_empty());
        // … nor in another phase of it.
        w.beat(
            "c",
            TARGET,
            Some(("health-gate", "web-142/1".into())),
            T0 + 99 * S,
        );
        let (s, fx) = w.step(&s, &spec, T0 + 99 * S);
        assert!(orders(&fx).is_empty());
        let (s, fx) = w.step(&s, &spec, T0 + 100 * S);
        assert!(orders(&fx).is_empty());
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert_eq!(host(&s, 0, "c").error, "not final at the wave deadline");
    }

    #[test]
    fn failures_within_max_failed_keep_the_wave_going_one_more_is_red() {
        let mut spec = spec(&[&["a", "b", "c"], &["d"]]);
        spec.policy.max_failed = 1;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.result("a", 1, ResultOutcome::RolledBack, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Failed);
        assert_ne!(s.waves[0].phase, WavePhase::Red);
        assert_eq!(s.phase, RolloutPhase::Running);
        w.result("b", 2, ResultOutcome::Failed, T0 + 2 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert_eq!(s.waves[0].reason, "2 failed, at most 1 allowed");
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert!(orders(&fx).is_empty());
    }

    #[test]
    fn a_silent_host_is_unavailable_and_over_max_unavailable_is_red() {
        let mut spec = spec(&[&["a", "b", "c"]]);
        spec.policy.max_unavailable = 1;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        // a and b go quiet; c keeps beating.
        w.idle("c", &from_of("c").digest, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(
            host(&s, 0, "a").phase,
            HostPhase::Ordered,
            "2 intervals are not 3"
        );
        w.idle("c", &from_of("c").digest, T0 + 3 * S);
        w.hbs.remove("b"); // its key aged out
        let (s, _) = w.step(&s, &spec, T0 + 3 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Unavailable);
        assert_eq!(host(&s, 0, "a").unavailable_since, Some(T0 + 3 * S));
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert_eq!(s.waves[0].reason, "2 unavailable, at most 1 allowed");
    }

    #[test]
    fn a_host_left_unavailable_when_its_wave_goes_green_gets_its_order_withdrawn() {
        let mut spec = spec(&[&["a", "c"]]);
        spec.policy.max_unavailable = 1;
        let mut w = World::new(&spec);
        let (s, fx) = w.step(&begin(&spec), &spec, T0);
        assert_eq!(
            orders(&fx),
            vec![("a".into(), 1, K::Switch), ("c".into(), 2, K::Switch)]
        );
        // a never answers; c goes through.
        let away = |w: &mut World| w.hbs.get_mut("a").unwrap().1 = T0;
        w.awaiting("c", 2, T0 + 2 * S);
        away(&mut w);
        let (s, fx) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(orders(&fx), vec![("c".into(), 3, K::Confirm)]);
        w.committed("c", 2, T0 + 3 * S);
        away(&mut w);
        let (s, fx) = w.step(&s, &spec, T0 + 3 * S);
        assert!(orders(&fx).is_empty());
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Unavailable);
        assert_eq!(s.waves[0].phase, WavePhase::Soaking);
        w.refresh(T0 + 13 * S);
        away(&mut w);
        let (s, fx) = w.step(&s, &spec, T0 + 13 * S);
        assert_eq!(s.phase, RolloutPhase::Completed);
        assert_eq!(orders(&fx), vec![("a".into(), 4, K::Cancel)]);
        let Some(Effect::Order(o)) = fx.iter().find(|e| matches!(e, Effect::Order(_))) else {
            panic!()
        };
        assert_eq!(
            o.action,
            Action::Cancel {
                of: order_id(&s.id, 1)
            }
        );
        assert_eq!(host(&s, 0, "a").cancel_seq, Some(4));
        assert_eq!(host(&s, 0, "c").cancel_seq, None, "c answered");
        // Once: the same inputs again order nothing.
        let (_, fx) = w.step(&s, &spec, T0 + 14 * S);
        assert!(orders(&fx).is_empty());
    }

    #[test]
    fn an_unavailable_host_that_reports_again_is_judged_again() {
        let mut spec = spec(&[&["a", "b"]]);
        spec.policy.max_unavailable = 1;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.refresh(T0 + 3 * S);
        w.hbs.get_mut("a").unwrap().1 = T0; // a is away
        let (s, _) = w.step(&s, &spec, T0 + 3 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Unavailable);
        w.awaiting("a", 1, T0 + 4 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 4 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::ConfirmOrdered);
        assert_eq!(orders(&fx), vec![("a".into(), 3, K::Confirm)]);
    }

    #[test]
    fn the_wave_deadline_fails_unfinished_hosts_and_turns_red() {
        let spec = spec(&[&["a", "b"], &["c"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.committed("a", 1, T0 + S);
        w.result("b", 2, ResultOutcome::Started, T0 + S);
        w.refresh(T0 + 99 * S);
        let (s, _) = w.step(&s, &spec, T0 + 99 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Confirming);
        assert_eq!(next_wake(&s, &spec, T0 + 99 * S + 500), Some(T0 + 100 * S));
        let (s, fx) = w.step(&s, &spec, T0 + 100 * S);
        assert_eq!(host(&s, 0, "b").phase, HostPhase::Failed);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Committed);
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert!(orders(&fx).is_empty());
        assert_eq!(next_wake(&s, &spec, T0 + 100 * S), None);
    }

    #[test]
    fn a_red_wave_with_pause_never_orders_a_later_wave() {
        let spec = spec(&[&["c"], &["a", "b"]]);
        let mut w = World::new(&spec);
        let (mut s, _) = w.step(&begin(&spec), &spec, T0);
        w.result("c", 1, ResultOutcome::RolledBack, T0 + S);
        for t in 1..300 {
            w.refresh(T0 + t * S);
            let (n, fx) = w.step(&s, &spec, T0 + t * S);
            assert!(orders(&fx).is_empty(), "at {t} s: {fx:?}");
            s = n;
        }
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert_eq!(s.reason, "wave w0 red: 1 failed, at most 0 allowed");
        assert!(s.waves[1].hosts.values().all(|p| p.seq.is_none()));
    }

    #[test]
    fn an_operators_pause_stops_confirms_and_resume_goes_on() {
        let spec = spec(&[&["c"], &["a"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.control(ControlCommand::Pause, T0 + S);
        w.awaiting("c", 1, T0 + S);
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert_eq!(s.reason, "paused by alice@ops1");
        assert!(orders(&fx).is_empty(), "no confirm while paused");
        assert_eq!(
            host(&s, 0, "c").phase,
            HostPhase::AwaitingConfirm,
            "results still recorded"
        );
        // The same control key seen again is not applied again.
        let (s, fx) = w.step(&s, &spec, T0 + 2 * S);
        assert!(fx.is_empty(), "{fx:?}");
        w.control(ControlCommand::Resume, T0 + 3 * S);
        w.refresh(T0 + 3 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 3 * S);
        assert_eq!(s.phase, RolloutPhase::Running);
        assert_eq!(orders(&fx), vec![("c".into(), 2, K::Confirm)]);
    }

    #[test]
    fn resume_reevaluates_the_red_wave_against_the_spec() {
        let spec0 = spec(&[&["a", "b"], &["c"]]);
        let mut w = World::new(&spec0);
        let (s, _) = w.step(&begin(&spec0), &spec0, T0);
        w.result("a", 1, ResultOutcome::Failed, T0 + S);
        let (s, _) = w.step(&s, &spec0, T0 + S);
        assert_eq!(s.phase, RolloutPhase::Paused);
        // Resumed without raising a bound: red again, paused again.
        w.control(ControlCommand::Resume, T0 + 2 * S);
        w.refresh(T0 + 2 * S);
        let (s, fx) = w.step(&s, &spec0, T0 + 2 * S);
        assert_eq!(s.phase, RolloutPhase::Paused);
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert!(orders(&fx).is_empty());
        // The operator raises max_failed and resumes.
        let mut spec1 = spec0.clone();
        spec1.policy.max_failed = 1;
        w.control(ControlCommand::Resume, T0 + 3 * S);
        w.awaiting("b", 2, T0 + 3 * S);
        let (s, fx) = w.step(&s, &spec1, T0 + 3 * S);
        assert_eq!(s.phase, RolloutPhase::Running);
        assert_eq!(orders(&fx), vec![("b".into(), 3, K::Confirm)]);
        w.committed("b", 2, T0 + 4 * S);
        let (s, _) = w.step(&s, &spec1, T0 + 4 * S);
        w.refresh(T0 + 14 * S);
        let (s, fx) = w.step(&s, &spec1, T0 + 14 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Green);
        assert_eq!(orders(&fx), vec![("c".into(), 4, K::Switch)]);
    }

    #[test]
    fn rollback_targets_exactly_the_touched_hosts_with_their_from() {
        let mut spec = spec(&[&["a", "b", "c", "d", "e"], &["f"]]);
        spec.policy.on_fail = OnFail::Rollback;
        spec.policy.max_failed = 1;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.awaiting("a", 1, T0 + S); // in flight, from known
        w.committed("b", 2, T0 + S); // committed, from known
        w.result("c", 3, ResultOutcome::RolledBack, T0 + S); // the agent went back itself
        // d: ordered, never reported
        w.result("e", 5, ResultOutcome::Refused, T0 + S); // refused: touched nothing
        w.refresh(T0 + S);
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert_eq!(s.phase, RolloutPhase::RollingBack, "{:?}", s.waves[0]);
        let mut rollbacks = Vec::new();
        for e in &fx {
            if let Effect::Order(o) = e {
                rollbacks.push((o.host.clone(), o.action.clone()));
            }
        }
        assert_eq!(
            rollbacks,
            vec![
                (
                    "a".into(),
                    Action::Rollback {
                        of: "web-142/1".into(),
                        to: from_of("a")
                    }
                ),
                (
                    "b".into(),
                    Action::Rollback {
                        of: "web-142/2".into(),
                        to: from_of("b")
                    }
                ),
                (
                    "d".into(),
                    Action::Cancel {
                        of: "web-142/4".into()
                    }
                ),
            ]
        );
        assert_eq!(host(&s, 0, "c").phase, HostPhase::RolledBack);
        assert_eq!(host(&s, 0, "e").phase, HostPhase::Failed);
        assert_eq!(host(&s, 1, "f").phase, HostPhase::Untouched);
        // a and b roll back, d's cancel finds nothing started.
        w.result("a", 6, ResultOutcome::Committed, T0 + 2 * S);
        w.result("b", 7, ResultOutcome::Committed, T0 + 2 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 2 * S);
        assert!(orders(&fx).is_empty());
        assert_eq!(s.phase, RolloutPhase::RollingBack, "d's cancel is out");
        w.result("d", 8, ResultOutcome::Skipped, T0 + 3 * S);
        let (s, _) = w.step(&s, &spec, T0 + 3 * S);
        assert_eq!(s.phase, RolloutPhase::RolledBack);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::RolledBack);
        assert_eq!(host(&s, 0, "d").phase, HostPhase::Untouched);
    }

    #[test]
    fn a_cancelled_host_that_reports_a_from_later_is_rolled_back_too() {
        let mut spec = spec(&[&["a", "b"]]);
        spec.policy.on_fail = OnFail::Rollback;
        spec.policy.confirm = ConfirmMode::Local;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.result("a", 1, ResultOutcome::Failed, T0 + S);
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert_eq!(
            orders(&fx),
            vec![("a".into(), 3, K::Rollback), ("b".into(), 4, K::Cancel)]
        );
        // b had committed on its own before the cancel reached it.
        w.committed("b", 2, T0 + S);
        w.result("b", 4, ResultOutcome::Skipped, T0 + 2 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(orders(&fx), vec![("b".into(), 5, K::Rollback)]);
        assert_eq!(host(&s, 0, "b").phase, HostPhase::RollbackOrdered);
    }

    #[test]
    fn abort_in_wave_two_rolls_back_both_waves_touched_hosts() {
        let spec = spec(&[&["c"], &["a", "b"]]);
        let mut w = World::new(&spec);
        let (s, _) = green_canary(&spec, &mut w);
        w.awaiting("a", 3, T0 + 14 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 14 * S);
        assert_eq!(orders(&fx), vec![("a".into(), 5, K::Confirm)]);
        w.control(ControlCommand::Abort, T0 + 15 * S);
        w.refresh(T0 + 15 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 15 * S);
        assert_eq!(s.phase, RolloutPhase::RollingBack);
        assert_eq!(s.reason, "aborted by alice@ops1");
        let got: Vec<(String, Action)> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Order(o) => Some((o.host.clone(), o.action.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "c".into(),
                    Action::Rollback {
                        of: "web-142/1".into(),
                        to: from_of("c")
                    }
                ),
                (
                    "a".into(),
                    Action::Rollback {
                        of: "web-142/3".into(),
                        to: from_of("a")
                    }
                ),
                (
                    "b".into(),
                    Action::Cancel {
                        of: "web-142/4".into()
                    }
                ),
            ]
        );
        w.result("c", 6, ResultOutcome::Committed, T0 + 16 * S);
        w.result("a", 7, ResultOutcome::Committed, T0 + 16 * S);
        w.result("b", 8, ResultOutcome::Canceled, T0 + 16 * S);
        let (s, _) = w.step(&s, &spec, T0 + 16 * S);
        assert_eq!(s.phase, RolloutPhase::Aborted);
        // A later control changes nothing.
        w.control(ControlCommand::Resume, T0 + 17 * S);
        let (s2, fx) = w.step(&s, &spec, T0 + 17 * S);
        assert_eq!(s2.phase, RolloutPhase::Aborted);
        assert!(orders(&fx).is_empty());
    }

    #[test]
    fn takeover_recomputes_from_stored_timestamps() {
        let spec = spec(&[&["a", "b"], &["c"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.awaiting("a", 1, T0 + S);
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert_eq!(orders(&fx).len(), 1);
        // The coordinator dies; the next one loads the state, with a clock
        // a little behind the old one's and a new epoch.
        let json = serde_json::to_string(&s).unwrap();
        let mut t: RolloutState = serde_json::from_str(&json).unwrap();
        assert_eq!(t, s);
        t.epoch = Epoch { era: 1, rev: 9 };
        let (t, fx) = w.step(&t, &spec, T0 + S / 2);
        assert!(orders(&fx).is_empty(), "no order again: {fx:?}");
        assert_eq!(t.waves[0].deadline_at, Some(T0 + 100 * S), "deadline kept");
        assert_eq!(t.waves[0].started_at, Some(T0));
        // b never answers: the stored deadline still holds.
        w.committed("a", 1, T0 + 2 * S);
        w.refresh(T0 + 100 * S);
        let (t, fx) = w.step(&t, &spec, T0 + 100 * S);
        assert_eq!(t.waves[0].phase, WavePhase::Red);
        assert!(orders(&fx).is_empty());
        // Orders it writes later carry its own epoch.
        let mut spec2 = spec.clone();
        spec2.policy.max_failed = 1;
        w.control(ControlCommand::Resume, T0 + 101 * S);
        w.refresh(T0 + 112 * S);
        let (_, fx) = w.step(&t, &spec2, T0 + 112 * S);
        // b's unanswered order is withdrawn as the wave goes green, then
        // wave 2 is ordered.
        assert_eq!(
            orders(&fx),
            vec![("b".into(), 4, K::Cancel), ("c".into(), 5, K::Switch)]
        );
        for e in &fx {
            if let Effect::Order(o) = e {
                assert_eq!(o.epoch, Epoch { era: 1, rev: 9 }, "{o:?}");
            }
        }
    }

    #[test]
    fn canonical_is_recorded_once_when_the_last_wave_is_green() {
        let mut spec = spec(&[&["c"]]);
        spec.target = TargetSpec::Sweep {
            app: "web".into(),
            release: Some("1.4.2".into()),
        };
        let mut w = World::new(&spec);
        let (s, fx) = w.step(&begin(&spec), &spec, T0);
        let Some(Effect::Order(o)) = fx.get(1) else {
            panic!()
        };
        assert_eq!(
            o.action,
            Action::Sweep {
                app: "web".into(),
                release: "1.4.2".into(),
                deadline_sec: 50,
                confirm: ConfirmMode::Observed
            }
        );
        w.result("c", 1, ResultOutcome::AwaitingConfirm, T0 + S);
        w.beat(
            "c",
            "sha256:whatever",
            Some(("waiting-confirm", "web-142/1".into())),
            T0 + S,
        );
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert!(orders(&fx).is_empty(), "the release is not running yet");
        w.hbs
            .get_mut("c")
            .unwrap()
            .0
            .releases
            .insert("web".into(), "1.4.2".into());
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert_eq!(orders(&fx), vec![("c".into(), 2, K::Confirm)]);
        w.result("c", 1, ResultOutcome::Committed, T0 + 2 * S);
        w.idle("c", "sha256:whatever", T0 + 2 * S);
        w.hbs
            .get_mut("c")
            .unwrap()
            .0
            .releases
            .insert("web".into(), "1.4.2".into());
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        w.refresh(T0 + 12 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 12 * S);
        assert_eq!(s.phase, RolloutPhase::Completed);
        assert!(s.canonical_recorded);
        let canon: Vec<&Effect> = fx
            .iter()
            .filter(|e| matches!(e, Effect::RecordCanonical { .. }))
            .collect();
        assert_eq!(
            canon,
            vec![&Effect::RecordCanonical {
                app: "web".into(),
                release: "1.4.2".into()
            }]
        );
        for t in 13..20 {
            let (n, fx) = w.step(&s, &spec, T0 + t * S);
            assert!(fx.is_empty(), "{fx:?}");
            assert_eq!(n, s);
        }
    }

    #[test]
    fn a_stale_heartbeat_during_the_soak_fails_the_host() {
        let spec = spec(&[&["a", "b"], &["c"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.awaiting("a", 1, T0 + S);
        w.awaiting("b", 2, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        w.committed("a", 1, T0 + 2 * S);
        w.committed("b", 2, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Soaking);
        w.idle("a", TARGET, T0 + 4 * S);
        let (s, _) = w.step(&s, &spec, T0 + 4 * S);
        assert_eq!(host(&s, 0, "b").phase, HostPhase::Committed, "2 intervals");
        w.idle("a", TARGET, T0 + 5 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 5 * S);
        assert_eq!(host(&s, 0, "b").phase, HostPhase::Failed);
        assert_eq!(
            host(&s, 0, "b").error,
            "no heartbeat for 3 s after its commit"
        );
        assert_eq!(s.waves[0].phase, WavePhase::Red);
        assert!(orders(&fx).is_empty());
    }

    #[test]
    fn a_committed_host_running_another_generation_during_the_soak_fails() {
        let mut spec = spec(&[&["a"]]);
        spec.policy.confirm = ConfirmMode::Local;
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.committed("a", 1, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        assert_eq!(s.waves[0].phase, WavePhase::Soaking);
        w.idle("a", "sha256:old-a", T0 + 3 * S);
        let (s, _) = w.step(&s, &spec, T0 + 3 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Failed);
        assert!(host(&s, 0, "a").error.starts_with("runs 7 (sha256:old-a)"));
        // The order's operation ending badly counts too.
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.committed("a", 1, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        w.idle("a", TARGET, T0 + 2 * S);
        w.hbs.get_mut("a").unwrap().0.last = Some(LastOperation {
            id: "000000000001x000".into(),
            kind: "switch".into(),
            result: "rolled-back".into(),
            request: Some("web-142/1".into()),
            finished_at: T0 + 2 * S,
        });
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Failed);
    }

    #[test]
    fn local_confirm_orders_no_confirm_and_commits_on_the_result() {
        let mut spec = spec(&[&["a"], &["b"]]);
        spec.policy.confirm = ConfirmMode::Local;
        let mut w = World::new(&spec);
        let (s, fx) = w.step(&begin(&spec), &spec, T0);
        let Some(Effect::Order(o)) = fx.get(1) else {
            panic!()
        };
        assert!(matches!(
            o.action,
            Action::Switch {
                confirm: ConfirmMode::Local,
                ..
            }
        ));
        w.awaiting("a", 1, T0 + S);
        let (s, fx) = w.step(&s, &spec, T0 + S);
        assert!(orders(&fx).is_empty());
        w.committed("a", 1, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(host(&s, 0, "a").phase, HostPhase::Committed);
        w.refresh(T0 + 12 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 12 * S);
        assert_eq!(s.wave, 1);
        assert_eq!(orders(&fx), vec![("b".into(), 2, K::Switch)]);
    }

    #[test]
    fn green_waits_for_a_heartbeat_showing_the_host_idle_on_the_target() {
        let spec = spec(&[&["a"], &["b"]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.awaiting("a", 1, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        w.result("a", 1, ResultOutcome::Committed, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        // The heartbeat received still is the busy one from before the commit.
        w.hbs.get_mut("a").unwrap().1 = T0 + 12 * S;
        let (s, fx) = w.step(&s, &spec, T0 + 12 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Soaking);
        assert!(orders(&fx).is_empty());
        w.idle("a", TARGET, T0 + 13 * S);
        let (s, fx) = w.step(&s, &spec, T0 + 13 * S);
        assert_eq!(s.waves[0].phase, WavePhase::Green);
        assert_eq!(orders(&fx), vec![("b".into(), 3, K::Switch)]);
    }

    #[test]
    fn an_empty_rest_wave_is_green_at_once() {
        let spec = spec(&[&["a"], &[]]);
        let mut w = World::new(&spec);
        let (s, _) = w.step(&begin(&spec), &spec, T0);
        w.awaiting("a", 1, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        w.committed("a", 1, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        w.refresh(T0 + 12 * S);
        let (s, _) = w.step(&s, &spec, T0 + 12 * S);
        assert_eq!(s.phase, RolloutPhase::Completed);
        assert!(!s.canonical_recorded, "no canonical for a generation");
    }

    #[test]
    fn next_wake_is_the_nearest_deadline_soak_end_or_heartbeat_check() {
        let spec = spec(&[&["a"], &["b"]]);
        let mut w = World::new(&spec);
        let s = begin(&spec);
        assert_eq!(
            next_wake(&s, &spec, T0),
            Some(T0),
            "a pending wave starts now"
        );
        let (s, _) = w.step(&s, &spec, T0);
        assert_eq!(next_wake(&s, &spec, T0), Some(T0 + S));
        assert_eq!(next_wake(&s, &spec, T0 + 100 * S - 10), Some(T0 + 100 * S));
        w.awaiting("a", 1, T0 + S);
        let (s, _) = w.step(&s, &spec, T0 + S);
        w.committed("a", 1, T0 + 2 * S);
        let (s, _) = w.step(&s, &spec, T0 + 2 * S);
        assert_eq!(next_wake(&s, &spec, T0 + 11 * S + 500), Some(T0 + 12 * S));
    }

    #[test]
    fn a_sweep_without_a_release_orders_nothing_until_it_is_discovered() {
        let mut spec = spec(&[&["a"], &["b"]]);
        spec.target = TargetSpec::Sweep {
            app: "web".into(),
            release: None,
        };
        let s = start(
            &spec,
            vec![vec!["a".into()], vec!["b".into()]],
            Epoch { era: 1, rev: 1 },
            1,
            T0,
        )
        .unwrap();
        assert_eq!(s.release, None);
        assert!(awaits_release(&spec, &s));
        let w = World::new(&spec);
        let (n, fx) = w.step(&s, &spec, T0 + S);
        assert!(fx.is_empty(), "{fx:?}");
        assert_eq!(n, s);
        assert_eq!(next_wake(&s, &spec, T0), None, "the discovery wakes it");
        // Discovered: every wave orders that release.
        let mut s = s;
        s.release = Some("1.4.2".into());
        let (_, fx) = w.step(&s, &spec, T0 + S);
        let orders: Vec<&Order> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Order(o) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(orders.len(), 1);
        assert!(
            matches!(&orders[0].action, Action::Sweep { release, .. } if release == "1.4.2"),
            "{orders:?}"
        );
        // Refused: terminal, nothing ordered.
        let r = refuse(&s, "no release newer than 1.4.2".into(), T0 + S);
        assert_eq!(r.phase, RolloutPhase::Refused);
        let (n, fx) = w.step(&r, &spec, T0 + 2 * S);
        assert!(fx.is_empty() && n == r, "{fx:?}");
        assert_eq!(next_wake(&r, &spec, T0), None);
    }

    #[test]
    fn every_phase_round_trips() {
        for p in RolloutPhase::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<RolloutPhase>(&json).unwrap(), *p);
            assert_eq!(p.as_str().parse::<RolloutPhase>().unwrap(), *p);
        }
        for p in WavePhase::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(p.as_str().parse::<WavePhase>().unwrap(), *p);
        }
        for p in HostPhase::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(p.as_str().parse::<HostPhase>().unwrap(), *p);
        }
        assert!("halted".parse::<RolloutPhase>().is_err());
        // A whole state, with every host phase in it, round-trips.
        let spec = spec(&[&["a"]]);
        let mut s = begin(&spec);
        for (i, p) in HostPhase::ALL.iter().enumerate() {
            let mut hp = HostProgress::pending();
            hp.phase = *p;
            hp.seq = Some(i as u64);
            hp.from = Some(from_of("x"));
            s.waves[0].hosts.insert(format!("h{i}"), hp);
        }
        s.last_control = Some(Control {
            command: ControlCommand::Pause,
            by: "b".into(),
            at: 1,
        });
        let back: RolloutState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// xorshift64*: enough randomness for a property test without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_event_orders_never_order_a_wave_before_the_previous_is_green() {
        let outcomes = [
            ResultOutcome::Started,
            ResultOutcome::AwaitingConfirm,
            ResultOutcome::Committed,
            ResultOutcome::Failed,
            ResultOutcome::RolledBack,
        ];
        for seed in 1..300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut spec = spec(&[&["a", "b"], &["c", "d"], &["e"]]);
            spec.policy.max_failed = rng.below(2) as u32;
            spec.policy.max_unavailable = rng.below(2) as u32;
            if rng.below(2) == 0 {
                spec.policy.on_fail = OnFail::Rollback;
            }
            if rng.below(3) == 0 {
                spec.policy.confirm = ConfirmMode::Local;
            }
            let mut w = World::new(&spec);
            let mut s = begin(&spec);
            let mut now = T0;
            let mut seen: BTreeMap<u64, String> = BTreeMap::new();
            for _ in 0..120 {
                now += rng.below(4 * S);
                let hosts = ["a", "b", "c", "d", "e"];
                let h = hosts[rng.below(5) as usize];
                match rng.below(6) {
                    0 | 1 => {
                        // A result for one of the host's orders so far.
                        let seqs: Vec<u64> = seen
                            .iter()
                            .filter(|(_, x)| *x == h)
                            .map(|(q, _)| *q)
                            .collect();
                        if let Some(&seq) = seqs.get(rng.below(seqs.len().max(1) as u64) as usize) {
                            let o = outcomes[rng.below(outcomes.len() as u64) as usize];
                            w.result(h, seq, o, now);
                        }
                    }
                    2 => {
                        let seq = seen
                            .iter()
                            .rev()
                            .find(|(_, x)| *x == h)
                            .map_or(0, |(q, _)| *q);
                        w.beat(
                            h,
                            TARGET,
                            Some(("waiting-confirm", order_id("web-142", seq))),
                            now,
                        );
                    }
                    3 => w.idle(
                        h,
                        if rng.below(4) == 0 {
                            "sha256:other"
                        } else {
                            TARGET
                        },
                        now,
                    ),
                    4 => w.refresh(now),
                    _ => {
                        if rng.below(10) == 0 {
                            let c = [
                                ControlCommand::Pause,
                                ControlCommand::Resume,
                                ControlCommand::Abort,
                            ];
                            w.control(c[rng.below(3) as usize], now);
                        }
                    }
                }
                let (n, fx) = w.step(&s, &spec, now);
                for e in &fx {
                    if let Effect::Order(o) = e {
                        assert!(
                            seen.insert(o.seq, o.host.clone()).is_none(),
                            "seq {} twice",
                            o.seq
                        );
                        if matches!(o.action, Action::Switch { .. }) {
                            for k in 0..o.wave {
                                assert_eq!(
                                    n.waves[k].phase,
                                    WavePhase::Green,
                                    "seed {seed}: wave {} ordered while wave {k} is {}",
                                    o.wave,
                                    n.waves[k].phase
                                );
                            }
                            let resumed = n.last_control != s.last_control
                                && n.last_control.as_ref().map(|c| c.command)
                                    == Some(ControlCommand::Resume);
                            assert!(
                                s.phase != RolloutPhase::Paused || resumed,
                                "seed {seed}: ordered while paused"
                            );
                        }
                        if matches!(o.action, Action::Confirm { .. }) {
                            assert_eq!(n.phase, RolloutPhase::Running, "seed {seed}");
                        }
                    }
                }
                s = n;
            }
        }
    }
}
