//! The runner: the single operation slot, the persisted steps, the
//! external revert deadline, and the one way an operation ends. It knows
//! no operation in particular; switch, rollback, cutover and sweep are
//! built on it.
//!
//! Every step is persisted before it runs ([`Runner::save`]), so that
//! after a crash `ops::recover` can finish or undo it. An operation that
//! changes the host arms a revert outside the agent first
//! ([`Runner::arm`]: a transient systemd timer running `windlassd
//! --revert OP`), so that even an agent that never comes back cannot
//! leave the host on an untested generation. An operation ends only
//! through [`Runner::end`]: the record is finished durably, *then* the
//! revert is disarmed — when the revert timer's own process is what ends
//! the operation, disarming stops the unit it lives in, so nothing may
//! come after it; and a record that could not be written keeps its
//! revert armed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::contract::GenerationId;
use crate::durable::now;
use crate::fault;
use crate::record::{OpId, OpKind, Outcome, Record};
use crate::redact;
use crate::store::Store;
use crate::systemd::Systemd;

/// Receives what operations do (the D-Bus layer turns it into signals).
pub trait Notify: Send + Sync {
    fn started(&self, id: &OpId);
    fn phase(&self, id: &OpId, phase: &str, detail: &str);
    fn finished(&self, id: &OpId, outcome: Outcome, error: &str);
    fn generation_changed(&self, generation: GenerationId);
    /// Drift found or cleared: `added` is what is new, `count` how many
    /// findings there are now.
    fn drift(&self, generation: Option<GenerationId>, added: &[crate::drift::Finding], count: u32) {
        let _ = (generation, added, count);
    }
}

pub struct Silent;
impl Notify for Silent {
    fn started(&self, _: &OpId) {}
    fn phase(&self, _: &OpId, _: &str, _: &str) {}
    fn finished(&self, _: &OpId, _: Outcome, _: &str) {}
    fn generation_changed(&self, _: GenerationId) {}
}

/// Why an operation was refused or could not run.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("operation {0} is in flight")]
    Busy(OpId),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    VerificationFailed(String),
    #[error("{0}")]
    Failed(String),
    /// Between two of the operations resolved after a restart (each
    /// holds the slot while it is resolved, and is reported as busy).
    #[error("the agent is resolving what a restart interrupted")]
    Recovering,
    /// The call's request id names this operation already: nothing was
    /// started (the caller is answered with it, [`crate::ops::Engine`]).
    #[error("request already answered by operation {0}")]
    Known(OpId),
}

pub struct Runner<P, S> {
    pub store: Store,
    pub platform: P,
    pub systemd: S,
    pub http: windlass_net::reqwest::Client,
    pub notify: Arc<dyn Notify>,
    /// argv of the external revert (`windlassd … --revert`), armed as a
    /// transient timer; `None` arms nothing (`--systemd none`, tests).
    pub revert_argv: Option<Vec<String>>,
    /// How often gates and waits look again.
    pub poll: Duration,
    /// This process is `windlassd --revert`, run by an operation's revert
    /// timer inside that operation's revert service: disarming stops the
    /// timers only, and the service ends when this process does (stopping
    /// it would kill this process and leave the unit failed).
    pub revert_helper: bool,
    /// When diagnostics bundles are written, and how many are kept.
    pub bundles: crate::bundle::Retention,
    /// The user lifecycle hooks run as (the owner of the containers'
    /// Podman: `oci-container` on Guix System); `None`: root.
    pub hook_user: Option<String>,
    /// This agent's binary, which runs a hook as [`Self::hook_user`]
    /// (`windlassd --run-as USER -- …`).
    pub self_exe: Option<String>,
    /// The operation holding the slot; a watch, so that what waits for
    /// the agent to be free (the drift watcher, [`Runner::idle`]) is woken
    /// by the change instead of polling.
    slot: tokio::sync::watch::Sender<Option<OpId>>,
    /// Set from before the agent takes its bus name until every record
    /// found unfinished at start is resolved: new operations are refused.
    recovering: std::sync::atomic::AtomicBool,
    /// One bundle written at a time (at an operation's end, or asked for).
    bundle_lock: tokio::sync::Mutex<()>,
    cancel: Mutex<BTreeSet<OpId>>,
    confirmed: Mutex<BTreeSet<OpId>>,
    /// Request id → the operation recorded for it: rebuilt from the
    /// records ([`Runner::index_requests`]), checked and filled under
    /// its lock when an operation begins ([`Runner::under_request`]).
    requests: Mutex<HashMap<String, OpId>>,
}

/// The longest wait between two tries to write a finished record.
const MAX_PERSIST_RETRY: Duration = Duration::from_secs(10);

/// The external revert's units of an operation: one armed before the
/// change, one that replaces it once the activation is done.
fn revert_units(id: &OpId) -> [String; 2] {
    [
        format!("windlass-revert-{id}"),
        format!("windlass-revert-{id}-gate"),
    ]
}

impl<P: Send + Sync + 'static, S: Systemd + 'static> Runner<P, S> {
    pub fn new(
        store: Store,
        platform: P,
        systemd: S,
        http: windlass_net::reqwest::Client,
        notify: Arc<dyn Notify>,
    ) -> Self {
        Runner {
            store,
            platform,
            systemd,
            http,
            notify,
            revert_argv: None,
            poll: Duration::from_millis(500),
            revert_helper: false,
            bundles: Default::default(),
            hook_user: None,
            self_exe: None,
            slot: tokio::sync::watch::Sender::new(None),
            recovering: Default::default(),
            bundle_lock: tokio::sync::Mutex::const_new(()),
            cancel: Mutex::new(BTreeSet::new()),
            confirmed: Mutex::new(BTreeSet::new()),
            requests: Mutex::new(HashMap::new()),
        }
    }

    /// The operation holding the slot.
    pub fn active(&self) -> Option<OpId> {
        self.slot.borrow().clone()
    }

    /// Changes of the slot (and of [`Self::recovering`]): woken whenever
    /// an operation takes or frees it, or a recovery starts or ends.
    pub fn slot_changes(&self) -> tokio::sync::watch::Receiver<Option<OpId>> {
        self.slot.subscribe()
    }

    /// Whether nothing is in flight and nothing is being recovered.
    pub fn free(&self) -> bool {
        self.active().is_none() && !self.recovering()
    }

    /// Whether the records found unfinished at start are still being
    /// resolved.
    pub fn recovering(&self) -> bool {
        self.recovering.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_recovering(&self, on: bool) {
        self.recovering
            .store(on, std::sync::atomic::Ordering::SeqCst);
        self.slot.send_modify(|_| {});
    }

    /// Refuses a new operation while a recovery runs: busy with the
    /// operation being resolved (or [`OpError::Recovering`] between two).
    pub fn refuse_while_recovering(&self) -> Result<(), OpError> {
        if !self.recovering() {
            return Ok(());
        }
        Err(match self.active() {
            Some(id) => OpError::Busy(id),
            None => OpError::Recovering,
        })
    }

    /// A new record for `op` (not yet saved, the slot not yet taken).
    pub fn record<O: OpKind>(&self, op: O) -> Record<O> {
        Record::new(self.store.new_id(), op, now())
    }

    /// The operation recorded for request id `request`, if any.
    pub fn by_request(&self, request: &str) -> Option<OpId> {
        self.requests.lock().unwrap().get(request).cloned()
    }

    /// Indexes the request ids of the records in the store (at start,
    /// before the agent is on the bus, and again at recovery). The
    /// records are the truth: the index is only ever in memory (an
    /// entry of `operations/` that is not a record is set aside).
    pub fn index_requests(&self) {
        let records = self.store.scan().records;
        let mut idx = self.requests.lock().unwrap();
        for r in records {
            if let Some(req) = r.request {
                idx.insert(req, r.id);
            }
        }
    }

    /// Runs `record` (which records an operation, returning its first
    /// record) with the request index locked: a known `request` is
    /// refused with [`OpError::Known`] and `record` is not run; the
    /// operation it records is indexed under `request`. Without a
    /// request, `record` just runs.
    pub fn under_request<O>(
        &self,
        request: Option<&str>,
        record: impl FnOnce() -> Result<Record<O>, OpError>,
    ) -> Result<Record<O>, OpError> {
        let Some(request) = request else {
            return record();
        };
        let mut idx = self.requests.lock().unwrap();
        if let Some(id) = idx.get(request) {
            return Err(OpError::Known(id.clone()));
        }
        let r = record()?;
        idx.insert(request.to_string(), r.id.clone());
        Ok(r)
    }

    /// Claims the single operation slot and writes the first record. An
    /// operation with a `parent` runs inside it (a sweep's switch): the
    /// slot must be the parent's, and stays so. A record with a request
    /// id already known is refused with [`OpError::Known`], checked and
    /// indexed under one lock with the slot claimed and the record
    /// written.
    pub fn begin<O: OpKind>(&self, r: Record<O>) -> Result<Record<O>, OpError> {
        let request = r.request.clone();
        self.under_request(request.as_deref(), || self.begin_unindexed(r))
    }

    /// [`Self::begin`] without the request index (the caller holds it:
    /// [`Self::under_request`]).
    pub(crate) fn begin_unindexed<O: OpKind>(
        &self,
        mut r: Record<O>,
    ) -> Result<Record<O>, OpError> {
        let mut refused = None;
        self.slot
            .send_if_modified(|slot| match (slot.as_ref(), r.parent.as_ref()) {
                (Some(holder), Some(parent)) if holder == parent => false,
                (Some(holder), _) => {
                    refused = Some(OpError::Busy(holder.clone()));
                    false
                }
                (None, Some(_)) => {
                    refused = Some(OpError::Failed(
                        "the parent operation is not in flight".into(),
                    ));
                    false
                }
                (None, None) => {
                    *slot = Some(r.id.clone());
                    true
                }
            });
        if let Some(e) = refused {
            return Err(e);
        }
        let first = r.phase();
        if let Err(e) = self.save(&mut r, first, "") {
            if r.parent.is_none() {
                self.slot.send_replace(None);
            }
            return Err(e);
        }
        self.notify.started(&r.id);
        Ok(r)
    }

    /// Takes the slot for an unfinished record found at start.
    pub fn resume(&self, id: &OpId) {
        self.slot.send_replace(Some(id.clone()));
    }

    /// Persists `phase` as the step about to run, then announces it.
    pub fn save<O: OpKind>(
        &self,
        r: &mut Record<O>,
        phase: O::Phase,
        detail: &str,
    ) -> Result<(), OpError> {
        let detail = &redact::text(detail);
        r.op.set_phase(phase);
        let name = phase.to_string();
        r.history.push((name.clone(), now()));
        self.store.save(r).map_err(|e| {
            OpError::Failed(format!("cannot persist operation {} ({name}): {e}", r.id))
        })?;
        let (generation, version) = r.op.log_target();
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            WINDLASS_KIND = O::KIND.as_str(),
            WINDLASS_GENERATION = generation.map(|g| g.0),
            WINDLASS_TARGET_VERSION = version,
            phase = name.as_str(),
            detail,
            "operation step"
        );
        self.notify.phase(&r.id, &name, detail);
        fault::point(O::KIND.as_str(), &name);
        Ok(())
    }

    /// Ends an operation: its diagnostics bundle (if one is due) is
    /// written, the record is finished durably, the external revert
    /// disarmed, and only then is the slot freed and the end (and
    /// `now_selected`, a generation committed, if any) announced: whoever
    /// sees the operation finished (the record's `Result`, or the
    /// `Finished` signal) finds its timers gone and the agent free.
    /// Returns the finished record.
    pub async fn end<O: OpKind>(
        &self,
        mut r: Record<O>,
        outcome: Outcome,
        error: String,
        now_selected: Option<GenerationId>,
    ) -> Record<O> {
        r.result = Some(outcome);
        r.error = redact::text(&error);
        r.finished_at = Some(now());
        r.op.set_phase(O::FINISHED);
        r.history.push((O::FINISHED.to_string(), now()));
        // Before the record says finished: collecting the evidence takes
        // a while (journals, podman inspect), and a caller seeing the
        // result must not find the operation still at work. Not for a
        // sweep skipped because another operation ran.
        if outcome != Outcome::Skipped && (outcome != Outcome::Committed || self.bundles.always) {
            self.write_bundle(&r).await;
        }
        self.persist_end(&r).await;
        // What was kept for a bundle is in it now, or has no use (none is
        // written, or it could not be: a full disk). Kept until the record
        // is finished: a restart before then writes the bundle again.
        crate::bundle::discard_scratch(&self.store.state_dir().join("operations"), r.id.as_str());
        let (generation, version) = r.op.log_target();
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            WINDLASS_KIND = O::KIND.as_str(),
            WINDLASS_GENERATION = generation.map(|g| g.0),
            WINDLASS_TARGET_VERSION = version,
            result = outcome.as_str(),
            error = r.error.as_str(),
            "operation finished"
        );
        fault::point(O::KIND.as_str(), &r.op.phase().to_string());
        // Disarmed once the record is finished (a revert firing before
        // finds it finished and does nothing). Run by the revert timer,
        // this process lives in the revert's service: disarming then
        // stops the timers only.
        if armed(&r) {
            self.disarm(&r.id).await;
        }
        self.slot.send_if_modified(|slot| {
            let mine = slot.as_ref() == Some(&r.id);
            if mine {
                *slot = None;
            }
            mine
        });
        self.cancel.lock().unwrap().remove(&r.id);
        self.confirmed.lock().unwrap().remove(&r.id);
        self.notify.finished(&r.id, outcome, &r.error);
        if let Some(g) = now_selected {
            self.notify.generation_changed(g);
        }
        r
    }

    /// Collects the diagnostics bundle of the finished `r`, then applies
    /// the retention. A bundle that cannot be written is logged; the
    /// operation's outcome stands.
    async fn write_bundle<O: OpKind>(&self, r: &Record<O>) {
        let _one = self.bundle_lock.lock().await;
        let ops = self.store.state_dir().join("operations");
        let any = r.to_any();
        let name = |g: Option<GenerationId>| g.map(|g| g.to_string());
        let (from, to) = (name(any.from_generation()), name(any.to_generation()));
        match crate::bundle::write(&self.systemd, &ops, r, O::KIND.as_str(), from, to).await {
            Ok(_) => {
                crate::bundle::retain(&ops, &self.bundles);
            }
            Err(e) => tracing::warn!(
                WINDLASS_OPERATION = r.id.as_str(),
                "cannot write the diagnostics bundle: {e}"
            ),
        }
    }

    /// The bundle of the finished operation `id`: the one written when it
    /// ended, or (it committed, or ended before bundles existed) one
    /// collected now from what the journal and the host still hold.
    pub async fn bundle_of(&self, id: &OpId) -> Result<std::path::PathBuf, OpError> {
        let _one = self.bundle_lock.lock().await;
        let r = self
            .store
            .load(id)
            .map_err(|e| OpError::NotFound(format!("operation {id}: {e}")))?;
        if !r.finished() {
            return Err(OpError::InvalidArgument(format!(
                "operation {id} is still in flight: its bundle is written when it ends"
            )));
        }
        let ops = self.store.state_dir().join("operations");
        let dest = ops.join(format!("{id}.d"));
        if dest.is_dir() {
            return Ok(dest);
        }
        let name = |g: Option<GenerationId>| g.map(|g| g.to_string());
        let (from, to) = (name(r.from_generation()), name(r.to_generation()));
        let dir = crate::bundle::write(&self.systemd, &ops, &r, r.kind().as_str(), from, to)
            .await
            .map_err(|e| OpError::Failed(format!("cannot write the bundle of {id}: {e}")))?;
        crate::bundle::retain(&ops, &self.bundles);
        Ok(dir)
    }

    /// Writes the finished record, retrying until it is on disk (a full
    /// disk: the host already stands where the record will say; until the
    /// record says so, the operation holds the slot and its external
    /// revert stays armed, and a restart resolves it from the last phase
    /// that was written).
    async fn persist_end<O: OpKind>(&self, r: &Record<O>) {
        let mut delay = Duration::from_millis(200);
        let mut last_report: Option<std::time::Instant> = None;
        loop {
            match self.store.save(r) {
                Ok(()) => {
                    if last_report.is_some() {
                        tracing::warn!(
                            WINDLASS_OPERATION = r.id.as_str(),
                            "the end of operation {} is on disk now",
                            r.id
                        );
                    }
                    return;
                }
                Err(e) => {
                    if last_report.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::error!(
                            WINDLASS_OPERATION = r.id.as_str(),
                            "cannot persist the end of operation {}: {e}; retrying, its \
                             external revert stays armed",
                            r.id
                        );
                        let detail = format!("cannot persist the end: {e}; retrying");
                        self.notify.phase(&r.id, "finishing", &detail);
                        last_report = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_PERSIST_RETRY);
                }
            }
        }
    }

    /// Arms the external revert (unit `name`) to fire `delay` seconds
    /// from now.
    /// Arms the revert timer `name` to fire in `delay` s; whether it is.
    async fn arm_unit<O: OpKind>(&self, r: &Record<O>, name: &str, delay: u64) -> bool {
        let Some(argv) = &self.revert_argv else {
            return false;
        };
        let mut argv = argv.clone();
        if let Some(exe) = r.op.revert_exe() {
            // Self-upgrade: the revert must run the old agent, which the
            // link no longer names.
            argv[0] = exe.to_string_lossy().to_string();
        }
        argv.push(r.id.to_string());
        match self.systemd.transient(name, &argv, Some(delay)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    WINDLASS_OPERATION = r.id.as_str(),
                    "cannot arm the revert timer: {e}"
                );
                false
            }
        }
    }

    /// Before the change: fires after the deadline, with a margin for the
    /// undoing the agent itself would do.
    pub async fn arm<O: OpKind>(&self, r: &Record<O>) {
        let [first, _] = revert_units(&r.id);
        self.arm_unit(r, &first, r.deadline_sec.saturating_add(60))
            .await;
    }

    /// Once the activation is done (it may take long on a loaded host):
    /// the same margin from now, for the gate and, with `manual_confirm`,
    /// a confirmation (each bounded by the deadline); the new timer is
    /// armed before the first one goes, so the operation is never without
    /// one.
    pub async fn rearm_for_gate<O: OpKind>(&self, r: &Record<O>, manual_confirm: bool) {
        if self.revert_argv.is_none() {
            return;
        }
        let waits: u64 = if manual_confirm { 2 } else { 1 };
        let delay = r.deadline_sec.saturating_mul(waits).saturating_add(60);
        self.rearm(r, delay).await;
    }

    /// Arms the revert timer again to fire `delay` s from now: under the
    /// one of its two names not in use, then the other one stopped (the
    /// operation is never without one).
    async fn rearm<O: OpKind>(&self, r: &Record<O>, delay: u64) {
        let [first, gate] = revert_units(&r.id);
        let gate_armed = self
            .systemd
            .state(&format!("{gate}.timer"))
            .await
            .is_ok_and(|s| matches!(s.active_state.as_str(), "active" | "activating"));
        let (new, old) = if gate_armed {
            (first, gate)
        } else {
            (gate, first)
        };
        if self.arm_unit(r, &new, delay).await {
            let _ = self.systemd.stop_transient(&old).await;
        }
    }

    /// Lifecycle hooks are about to run for up to `hooks` s, and `then`
    /// s of waiting may follow (the activation and a gate): the revert
    /// timer is armed again to fire that long from now plus the margin,
    /// so a long migration is not reverted halfway (it would be seen as
    /// an agent that hung). The new timer is armed, under the name not in
    /// use, before the old one goes.
    pub async fn rearm_for_hooks<O: OpKind>(&self, r: &Record<O>, hooks: u64, then: u64) {
        if self.revert_argv.is_none() || !armed(r) || hooks == 0 {
            return;
        }
        self.rearm(r, hooks.saturating_add(then).saturating_add(60))
            .await;
    }

    async fn disarm(&self, id: &OpId) {
        if self.revert_argv.is_none() {
            return;
        }
        for u in revert_units(id) {
            if self.revert_helper {
                let _ = self
                    .systemd
                    .enqueue(crate::systemd::Verb::Stop, &format!("{u}.timer"))
                    .await;
            } else {
                let _ = self.systemd.stop_transient(&u).await;
            }
        }
    }

    /// Confirm: a manual switch waiting for it commits.
    pub fn confirm(&self, id: &OpId) -> Result<(), OpError> {
        let r = self
            .store
            .load(id)
            .map_err(|_| OpError::NotFound(format!("no operation {id}")))?;
        if r.finished() || r.confirm != crate::record::Confirm::Manual {
            return Err(OpError::InvalidArgument(format!(
                "operation {id} is not waiting for a confirmation"
            )));
        }
        self.confirmed.lock().unwrap().insert(id.clone());
        Ok(())
    }

    /// Takes a confirmation of `id`, if one came.
    pub fn take_confirmation(&self, id: &OpId) -> bool {
        self.confirmed.lock().unwrap().remove(id)
    }

    /// Cancel: the operation stops at its next check and is undone.
    pub fn cancel(&self, id: &OpId) -> Result<(), OpError> {
        let r = self
            .store
            .load(id)
            .map_err(|_| OpError::NotFound(format!("no operation {id}")))?;
        if r.finished() {
            return Err(OpError::InvalidArgument(format!(
                "operation {id} has finished"
            )));
        }
        self.cancel.lock().unwrap().insert(id.clone());
        Ok(())
    }

    /// Whether Cancel was asked for this operation or the one it runs in.
    pub fn canceled<O>(&self, r: &Record<O>) -> bool {
        let c = self.cancel.lock().unwrap();
        c.contains(&r.id) || r.parent.as_ref().is_some_and(|p| c.contains(p))
    }

    /// Waits until no operation is in flight.
    pub async fn idle(&self) {
        let mut changes = self.slot_changes();
        while !self.free() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Whether the operation armed an external revert (it passed the phase
/// that arms one).
fn armed<O: OpKind>(r: &Record<O>) -> bool {
    O::ARMING_PHASE.is_some_and(|p| r.history.iter().any(|(h, _)| h == p))
}
