//! Operations: switch, rollback, cutover and sweep, each a persisted state
//! machine on the one [`runner::Runner`]. [`Engine`] is what the D-Bus
//! layer and `windlassd` hold: the runner plus the settings each kind of
//! operation needs; [`Engine::recover`] resolves every unfinished record
//! at start, matching each kind's phases exhaustively.

pub mod cutover;
pub mod drift_task;
pub mod hooks;
pub mod restore;
pub mod rollback;
pub mod runner;
pub mod steps;
pub mod sweep;
pub mod switch;

use std::sync::Arc;

use self::runner::{OpError, Runner};
use crate::contract::GenerationId;
use crate::platform::Platform;
use crate::record::{Op, OpId, Record};
use crate::systemd::Systemd;

pub struct Engine<P, S> {
    pub runner: Arc<Runner<P, S>>,
    pub cutover: Arc<cutover::Settings>,
    pub sweep: Arc<sweep::SweepConfig>,
    /// What drift detection last found (the task that fills it is
    /// started by `windlassd`, [`drift_task`]).
    pub drift: Arc<crate::drift::Drift>,
}

impl<P: Platform, S: Systemd + 'static> Engine<P, S> {
    pub fn new(
        runner: Runner<P, S>,
        cutover: cutover::Settings,
        sweep: sweep::SweepConfig,
    ) -> Self {
        Engine {
            runner: Arc::new(runner),
            cutover: Arc::new(cutover),
            sweep: Arc::new(sweep),
            drift: Default::default(),
        }
    }

    fn cutover_cx(&self) -> cutover::Cx<P, S> {
        cutover::Cx {
            rn: self.runner.clone(),
            settings: self.cutover.clone(),
        }
    }

    fn sweep_cx(&self) -> sweep::Cx<P, S> {
        sweep::Cx {
            rn: self.runner.clone(),
            config: self.sweep.clone(),
        }
    }

    /// The operation recorded for `request` already (its record as it
    /// is now), if any: a call that names it starts nothing and is
    /// answered with it, whatever it was and however it ended.
    pub fn by_request(&self, request: &str) -> Result<Option<Record>, OpError> {
        match self.runner.by_request(request) {
            None => Ok(None),
            Some(id) => self
                .runner
                .store
                .load(&id)
                .map(Some)
                .map_err(|e| OpError::Failed(format!("operation {id}: {e}"))),
        }
    }

    /// Before an operation is checked: a malformed request is refused, a
    /// known one answered with its operation.
    fn answered(&self, request: Option<&str>) -> Result<Option<Record>, OpError> {
        let Some(request) = request else {
            return Ok(None);
        };
        crate::record::check_request(request).map_err(OpError::InvalidArgument)?;
        self.by_request(request)
    }

    /// An operation begun, or the one its request was recorded for by a
    /// call racing this one with the same request (found when this one
    /// began, or the reason this one was refused: the other may have
    /// changed what this one checked).
    fn begun(&self, request: Option<&str>, r: Result<Record, OpError>) -> Result<Record, OpError> {
        match r {
            Err(OpError::Known(id)) => self
                .runner
                .store
                .load(&id)
                .map_err(|e| OpError::Failed(format!("operation {id}: {e}"))),
            Err(e) => match request.map(|q| self.by_request(q)) {
                Some(Ok(Some(known))) => Ok(known),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    /// Starts a switch; returns its first record (or, when its request
    /// is known, the operation recorded for it).
    pub fn switch(&self, to: GenerationId, opts: switch::SwitchOptions) -> Result<Record, OpError> {
        if let Some(r) = self.answered(opts.request.as_deref())? {
            return Ok(r);
        }
        self.runner.refuse_while_recovering()?;
        let request = opts.request.clone();
        let r = switch::start(&self.runner, to, opts).map(|r| r.to_any());
        self.begun(request.as_deref(), r)
    }

    /// Starts a rollback to `to`, or to the generation committed before.
    pub fn rollback(&self, to: Option<GenerationId>) -> Result<Record, OpError> {
        self.rollback_with(to, rollback::RollbackOptions::default())
    }

    /// [`Self::rollback`] with options (a request id).
    pub fn rollback_with(
        &self,
        to: Option<GenerationId>,
        opts: rollback::RollbackOptions,
    ) -> Result<Record, OpError> {
        if let Some(r) = self.answered(opts.request.as_deref())? {
            return Ok(r);
        }
        self.runner.refuse_while_recovering()?;
        let request = opts.request.clone();
        let r = rollback::start(&self.runner, to, opts).map(|r| r.to_any());
        self.begun(request.as_deref(), r)
    }

    pub fn cutover(&self, req: cutover::Request) -> Result<Record, OpError> {
        if let Some(r) = self.answered(req.request.as_deref())? {
            return Ok(r);
        }
        self.runner.refuse_while_recovering()?;
        let request = req.request.clone();
        let r = self.cutover_cx().start(req).map(|r| r.to_any());
        self.begun(request.as_deref(), r)
    }

    /// Starts a sweep (or records one skipped, when busy).
    pub fn sweep(&self, opts: sweep::SweepOptions) -> Result<Record, OpError> {
        if let Some(r) = self.answered(opts.request.as_deref())? {
            return Ok(r);
        }
        let request = opts.request.clone();
        let r = self.sweep_cx().start(opts).map(|r| r.to_any());
        self.begun(request.as_deref(), r)
    }

    /// Starts a restore of what has drifted from the running generation.
    pub async fn restore(&self, o: restore::RestoreOptions) -> Result<Record, OpError> {
        let root = self.drift.root();
        restore::start(&self.runner, &root, o)
            .await
            .map(|r| r.to_any())
    }

    pub fn confirm(&self, id: &OpId) -> Result<(), OpError> {
        self.runner.confirm(id)
    }

    pub fn cancel(&self, id: &OpId) -> Result<(), OpError> {
        self.runner.cancel(id)
    }

    pub fn active(&self) -> Option<OpId> {
        self.runner.active()
    }

    pub async fn idle(&self) {
        self.runner.idle().await
    }

    /// Self-upgrade: commits a cutover into this very binary, once it is
    /// on the bus.
    pub async fn confirm_self_upgrade(&self) {
        self.cutover_cx().confirm_self_upgrade().await
    }

    /// Resolves every unfinished record (at start, once the agent is on
    /// the bus: a recovery may re-run a long hook or wait a health gate,
    /// longer than a service manager waits for a start); returns them as
    /// they ended. New operations are refused until it ends (each record
    /// holds the slot while it is resolved; `windlassd` raises the flag
    /// before it takes its name). Damaged entries are set aside first;
    /// last, a host left running another generation than the selected
    /// one with nothing in flight is returned to the selected one.
    pub async fn recover(&self) -> Vec<Record> {
        self.runner.set_recovering(true);
        let done = self.recover_all().await;
        self.runner.set_recovering(false);
        done
    }

    async fn recover_all(&self) -> Vec<Record> {
        self.runner.store.set_aside();
        self.runner.index_requests();
        let mut done = Vec::new();
        for r in self.runner.store.all() {
            if r.finished() {
                continue;
            }
            self.runner.resume(&r.id);
            let why = format!("interrupted during {} (agent restart)", r.phase_str());
            tracing::warn!(WINDLASS_OPERATION = r.id.as_str(), "recovering: {why}");
            let (base, op) = r.split();
            let ended = match op {
                Op::Switch(o) => switch::recover(&self.runner, base.with(o), why)
                    .await
                    .to_any(),
                Op::Rollback(o) => rollback::recover(&self.runner, base.with(o), why)
                    .await
                    .to_any(),
                Op::Cutover(o) => self.cutover_cx().recover(base.with(o), why).await.to_any(),
                Op::Sweep(o) => self.sweep_cx().recover(base.with(o), why).await.to_any(),
                Op::Restore(o) => restore::recover(&self.runner, base.with(o), why)
                    .await
                    .to_any(),
            };
            done.push(ended);
        }
        if let Some(r) = rollback::restore_selected(&self.runner).await {
            done.push(r.to_any());
        }
        done
    }
}
