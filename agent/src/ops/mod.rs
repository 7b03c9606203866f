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

    /// Starts a switch; returns its first record.
    pub fn switch(&self, to: GenerationId, opts: switch::SwitchOptions) -> Result<Record, OpError> {
        self.runner.refuse_while_recovering()?;
        switch::start(&self.runner, to, opts).map(|r| r.to_any())
    }

    /// Starts a rollback to `to`, or to the generation committed before.
    pub fn rollback(&self, to: Option<GenerationId>) -> Result<Record, OpError> {
        self.runner.refuse_while_recovering()?;
        rollback::start(&self.runner, to).map(|r| r.to_any())
    }

    pub fn cutover(&self, req: cutover::Request) -> Result<Record, OpError> {
        self.runner.refuse_while_recovering()?;
        self.cutover_cx().start(req).map(|r| r.to_any())
    }

    /// Starts a sweep (or records one skipped, when busy).
    pub fn sweep(&self, opts: sweep::SweepOptions) -> Result<Record, OpError> {
        self.sweep_cx().start(opts).map(|r| r.to_any())
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
