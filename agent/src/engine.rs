//! Operations: one mutating operation at a time, each persisted before
//! every step (`store`), so that after a crash or restart `recover` either
//! finishes it or rolls it back, never leaving the host between
//! generations without a record.
//!
//! Switch: `recorded` → `arming` (revert deadline armed outside the agent)
//! → `activating` → `health-gate` (or waiting for Confirm) → `committing`
//! → committed; a failed gate, a failed unit, a passed deadline or Cancel
//! → `rolling-back` → rolled-back (canceled for Cancel). Rollback:
//! `recorded` → `activating` → `health-gate` → `committing` → committed.
//!
//! Recovery on start, per unfinished record: before `activating`, nothing
//! changed: canceled. `activating`, `health-gate`, `rolling-back` of a
//! switch: roll back to the recorded generation (rolled-back). A
//! `committing` step is finished (committed). A rollback is resumed from
//! its activation (activation and commit are idempotent).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::contract::Manifest;
use crate::fault;
use crate::health::{self, Gate};
use crate::platform::{self, Platform};
use crate::store::{Kind, Outcome, Record, Store, now};
use crate::systemd::Systemd;

/// Receives what the engine does (the D-Bus layer turns it into signals).
pub trait Notify: Send + Sync {
    fn started(&self, r: &Record);
    fn phase(&self, r: &Record, detail: &str);
    fn finished(&self, r: &Record);
    fn generation_changed(&self, generation: &str);
}

pub struct Silent;
impl Notify for Silent {
    fn started(&self, _: &Record) {}
    fn phase(&self, _: &Record, _: &str) {}
    fn finished(&self, _: &Record) {}
    fn generation_changed(&self, _: &str) {}
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("operation {0} is in flight")]
    Busy(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    VerificationFailed(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct SwitchOptions {
    /// `auto` (commit once healthy) or `manual` (commit on Confirm).
    pub confirm: String,
    /// Overrides the generation's health deadline.
    pub deadline_sec: Option<u64>,
}

impl Default for SwitchOptions {
    fn default() -> Self {
        SwitchOptions {
            confirm: "auto".into(),
            deadline_sec: None,
        }
    }
}

pub struct Engine<S: Systemd + 'static> {
    pub store: Store,
    pub platform: platform::Any,
    pub systemd: S,
    pub http: windlass_net::reqwest::Client,
    pub notify: Arc<dyn Notify>,
    /// argv of the external revert (`windlassd … --revert`), armed as a
    /// transient timer; `None` arms nothing (tests).
    pub revert_argv: Option<Vec<String>>,
    pub poll: Duration,
    /// Registries and files of sweeps.
    pub sweep: crate::sweep::SweepConfig,
    /// Where cutover targets, versions and downloads live.
    pub cutover: crate::cutover::Settings,
    active: Mutex<Option<String>>,
    cancel: Mutex<BTreeSet<String>>,
    confirmed: Mutex<BTreeSet<String>>,
    stopping: AtomicBool,
}

impl<S: Systemd + 'static> Engine<S> {
    pub fn new(store: Store, platform: platform::Any, systemd: S, notify: Arc<dyn Notify>) -> Self {
        Engine {
            store,
            platform,
            systemd,
            http: windlass_net::client(&Default::default()).expect("the HTTP client builds"),
            notify,
            revert_argv: None,
            poll: Duration::from_millis(500),
            sweep: crate::sweep::SweepConfig::default(),
            cutover: crate::cutover::Settings::default(),
            active: Mutex::new(None),
            cancel: Mutex::new(BTreeSet::new()),
            confirmed: Mutex::new(BTreeSet::new()),
            stopping: AtomicBool::new(false),
        }
    }

    pub fn platform_name(&self) -> &'static str {
        self.platform.name()
    }

    pub fn active(&self) -> Option<String> {
        self.active.lock().unwrap().clone()
    }

    pub(crate) fn save(
        &self,
        r: &mut Record,
        phase: &str,
        detail: &str,
    ) -> Result<(), EngineError> {
        r.phase = phase.to_string();
        r.history.push((phase.to_string(), now()));
        self.store
            .save(r)
            .map_err(|e| EngineError::Failed(format!("cannot persist operation {}: {e}", r.id)))?;
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            WINDLASS_GENERATION = r.to_generation.as_str(),
            phase,
            detail,
            "operation step"
        );
        self.notify.phase(r, detail);
        fault::point(phase);
        Ok(())
    }

    pub(crate) fn finish(&self, r: &mut Record, outcome: Outcome, error: String) {
        r.result = Some(outcome);
        r.error = error;
        r.finished_at = Some(now());
        r.phase = "finished".into();
        r.history.push(("finished".into(), now()));
        if let Err(e) = self.store.save(r) {
            tracing::error!("cannot persist the end of operation {}: {e}", r.id);
        }
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            WINDLASS_GENERATION = r.to_generation.as_str(),
            result = outcome.as_str(),
            error = r.error.as_str(),
            "operation finished"
        );
        let mut a = self.active.lock().unwrap();
        if a.as_deref() == Some(r.id.as_str()) {
            *a = None;
        }
        drop(a);
        self.notify.finished(r);
    }

    /// Claims the single operation slot and writes the first record. An
    /// operation with a `parent` runs inside it (a sweep's switch): the
    /// slot must be the parent's, and stays so.
    pub(crate) fn begin(
        &self,
        kind: Kind,
        from: Option<String>,
        to: String,
        opts: &SwitchOptions,
        deadline_sec: u64,
        parent: Option<&str>,
    ) -> Result<Record, EngineError> {
        let mut a = self.active.lock().unwrap();
        if let Some(id) = a.as_ref()
            && parent != Some(id.as_str())
        {
            return Err(EngineError::Busy(id.clone()));
        }
        if parent.is_some() && a.is_none() {
            return Err(EngineError::Failed(
                "the parent operation is not in flight".into(),
            ));
        }
        let id = self.store.new_id();
        let mut r = Record {
            id: id.clone(),
            kind,
            phase: String::new(),
            result: None,
            error: String::new(),
            started_at: now(),
            finished_at: None,
            from_generation: from,
            to_generation: to,
            changed_units: Vec::new(),
            confirm: opts.confirm.clone(),
            deadline_sec,
            deadline_from_option: false,
            history: Vec::new(),
            parent: parent.map(str::to_string),
            results: Vec::new(),
            cutover: None,
        };
        if parent.is_none() {
            *a = Some(id);
        }
        drop(a);
        if let Err(e) = self.save(&mut r, "recorded", "") {
            if parent.is_none() {
                *self.active.lock().unwrap() = None;
            }
            return Err(e);
        }
        self.notify.started(&r);
        Ok(r)
    }

    fn gate_for(&self, generation: &str, changed: &[String], deadline_sec: u64) -> Gate {
        let m: Option<Manifest> = self.platform.manifest(generation);
        let http = m
            .iter()
            .flat_map(|m| m.apps.iter())
            .filter(|a| changed.contains(&a.unit))
            .filter_map(|a| a.health.as_ref()?.http.clone())
            .collect();
        // Only service units gate (timers are active at once).
        let units = changed
            .iter()
            .filter(|u| u.ends_with(".service"))
            .cloned()
            .collect();
        Gate {
            units,
            http,
            deadline: Duration::from_secs(deadline_sec),
            poll: self.poll,
        }
    }

    /// Starts a switch to `to`; returns its record at once, runs in the
    /// background.
    pub fn switch(self: &Arc<Self>, to: &str, opts: SwitchOptions) -> Result<Record, EngineError> {
        let r = self.begin_switch(to, opts, None)?;
        let me = self.clone();
        let rec = r.clone();
        tokio::spawn(async move { me.run_switch(rec).await });
        Ok(r)
    }

    /// Checks a switch to `to` and records it (inside `parent`, if given);
    /// [`Engine::run_switch`] runs it.
    pub(crate) fn begin_switch(
        &self,
        to: &str,
        opts: SwitchOptions,
        parent: Option<&str>,
    ) -> Result<Record, EngineError> {
        if opts.confirm != "auto" && opts.confirm != "manual" {
            return Err(EngineError::InvalidArgument(format!(
                "confirm must be \"auto\" or \"manual\", not {:?}",
                opts.confirm
            )));
        }
        if !self.platform.generations().iter().any(|g| g.id == to) {
            return Err(EngineError::NotFound(format!("generation {to} not found")));
        }
        let from = self.platform.running();
        if from.as_deref() == Some(to) && self.platform.selected().as_deref() == Some(to) {
            return Err(EngineError::InvalidArgument(format!(
                "generation {to} is already running and selected"
            )));
        }
        let deadline = opts.deadline_sec.unwrap_or_else(|| {
            self.platform
                .manifest(to)
                .map(|m| {
                    let units: Vec<String> = m.apps.iter().map(|a| a.unit.clone()).collect();
                    m.deadline_for(&units)
                })
                .unwrap_or(300)
        });
        let mut r = self.begin(Kind::Switch, from, to.to_string(), &opts, deadline, parent)?;
        r.deadline_from_option = opts.deadline_sec.is_some();
        Ok(r)
    }

    /// Starts a rollback to `to`, or to the previous committed generation.
    pub fn rollback(self: &Arc<Self>, to: Option<&str>) -> Result<Record, EngineError> {
        let target = match to {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => self.previous_committed().ok_or_else(|| {
                EngineError::NotFound("no previous committed generation to roll back to".into())
            })?,
        };
        if !self.platform.generations().iter().any(|g| g.id == target) {
            return Err(EngineError::NotFound(format!(
                "generation {target} not found"
            )));
        }
        let from = self.platform.running();
        let deadline = self
            .platform
            .manifest(&target)
            .map(|m| {
                let units: Vec<String> = m.apps.iter().map(|a| a.unit.clone()).collect();
                m.deadline_for(&units)
            })
            .unwrap_or(300);
        let r = self.begin(
            Kind::Rollback,
            from,
            target,
            &SwitchOptions::default(),
            deadline,
            None,
        )?;
        let me = self.clone();
        let rec = r.clone();
        tokio::spawn(async move { me.run_rollback(rec).await });
        Ok(r)
    }

    /// The generation committed before the selected one.
    pub fn previous_committed(&self) -> Option<String> {
        let selected = self.platform.selected()?;
        let records = self.store.all().ok()?;
        records
            .iter()
            .rev()
            .filter(|r| r.result == Some(Outcome::Committed) && r.to_generation == selected)
            .find_map(|r| r.from_generation.clone().filter(|f| *f != selected))
            .or_else(|| {
                let mut ids: Vec<u64> = self
                    .platform
                    .generations()
                    .iter()
                    .filter_map(|g| g.id.parse().ok())
                    .collect();
                ids.sort_unstable();
                let s: u64 = selected.parse().ok()?;
                ids.into_iter()
                    .rev()
                    .find(|i| *i < s)
                    .map(|i| i.to_string())
            })
    }

    pub fn confirm(&self, id: &str) -> Result<(), EngineError> {
        let r = self
            .store
            .load(id)
            .map_err(|_| EngineError::NotFound(format!("no operation {id}")))?;
        if r.finished() || r.confirm != "manual" {
            return Err(EngineError::InvalidArgument(format!(
                "operation {id} is not waiting for a confirmation"
            )));
        }
        self.confirmed.lock().unwrap().insert(id.to_string());
        Ok(())
    }

    pub fn cancel(&self, id: &str) -> Result<(), EngineError> {
        let r = self
            .store
            .load(id)
            .map_err(|_| EngineError::NotFound(format!("no operation {id}")))?;
        if r.finished() {
            return Err(EngineError::InvalidArgument(format!(
                "operation {id} has finished"
            )));
        }
        self.cancel.lock().unwrap().insert(id.to_string());
        Ok(())
    }

    /// Whether Cancel was asked for operation `id`.
    pub(crate) fn canceled(&self, id: &str) -> bool {
        self.cancel.lock().unwrap().contains(id)
    }

    /// The external revert's units: one armed before the activation, one
    /// that replaces it once the activation is done.
    fn revert_units(r: &Record) -> [String; 2] {
        [
            format!("windlass-revert-{}", r.id),
            format!("windlass-revert-{}-gate", r.id),
        ]
    }

    /// Arms the external revert (unit `name`) to fire `delay` seconds from
    /// now.
    async fn arm_unit(&self, r: &Record, name: &str, delay: u64) {
        if let Some(argv) = &self.revert_argv {
            let mut argv = argv.clone();
            if let Some(c) = &r.cutover
                && c.agent
            {
                // Self-upgrade: the revert must run the old agent, which
                // the link no longer names.
                argv[0] = c.previous_exe().to_string_lossy().to_string();
            }
            argv.push(r.id.clone());
            if let Err(e) = self.systemd.transient(name, &argv, Some(delay)).await {
                tracing::warn!(
                    WINDLASS_OPERATION = r.id.as_str(),
                    "cannot arm the revert timer: {e}"
                );
            }
        }
    }

    /// Before the activation: fires after the gate's deadline, with a
    /// margin for the rollback the agent itself would do.
    pub(crate) async fn arm(&self, r: &Record) {
        let [first, _] = Self::revert_units(r);
        self.arm_unit(r, &first, r.deadline_sec + 60).await;
    }

    /// Once the activation is done (it may take long on a loaded host):
    /// the same margin from now, for the gate and a manual confirm (each
    /// bounded by the deadline); the new timer is armed before the first
    /// one goes, so the operation is never without one.
    async fn rearm_for_gate(&self, r: &Record) {
        if self.revert_argv.is_none() {
            return;
        }
        let [first, gate] = Self::revert_units(r);
        let waits = if r.confirm == "manual" { 2 } else { 1 };
        self.arm_unit(r, &gate, waits * r.deadline_sec + 60).await;
        let _ = self.systemd.stop_transient(&first).await;
    }

    pub(crate) async fn disarm(&self, r: &Record) {
        if self.revert_argv.is_some() {
            for u in Self::revert_units(r) {
                let _ = self.systemd.stop_transient(&u).await;
            }
        }
    }

    pub(crate) async fn run_switch(self: Arc<Self>, mut r: Record) {
        if let Err(e) = self.save(&mut r, "arming", "") {
            return self.finish(&mut r, Outcome::Failed, e.to_string());
        }
        self.arm(&r).await;
        self.continue_switch(r, "activating").await;
    }

    async fn continue_switch(self: Arc<Self>, mut r: Record, from_phase: &str) {
        if from_phase == "activating" {
            if let Err(e) = self.save(&mut r, "activating", "") {
                return self.finish(&mut r, Outcome::Failed, e.to_string());
            }
            match self
                .platform
                .activate(
                    &self.systemd,
                    r.from_generation.as_deref(),
                    &r.to_generation,
                )
                .await
            {
                Ok(act) => r.changed_units = act.changed,
                Err(e) => {
                    return self
                        .roll_back(r, format!("activation failed: {e}"), Outcome::RolledBack)
                        .await;
                }
            }
            // The gate's deadline is that of the apps that changed (the
            // revert timer, armed before, used the longest of all apps).
            if !r.deadline_from_option
                && let Some(m) = self.platform.manifest(&r.to_generation)
            {
                r.deadline_sec = m.deadline_for(&r.changed_units);
            }
            let detail = r.changed_units.join(" ");
            if let Err(e) = self.save(&mut r, "health-gate", &detail) {
                return self.roll_back(r, e.to_string(), Outcome::RolledBack).await;
            }
            self.rearm_for_gate(&r).await;
        }
        let gate = self.gate_for(&r.to_generation, &r.changed_units, r.deadline_sec);
        let id = r.id.clone();
        let cancelled = || self.cancel.lock().unwrap().contains(&id);
        let result = health::wait(&self.systemd, &gate, &self.http, cancelled).await;
        if let Err(f) = result {
            let outcome = if f.reason == "canceled" {
                Outcome::Canceled
            } else {
                Outcome::RolledBack
            };
            let mut msg = f.reason.clone();
            if let Some(u) = &f.unit
                && let Ok(lines) = self.systemd.journal(u, 20).await
            {
                msg.push_str(&format!(
                    "\n--- last journal lines of {u} ---\n{}",
                    lines.join("\n")
                ));
                for l in &lines {
                    tracing::warn!(
                        WINDLASS_OPERATION = r.id.as_str(),
                        WINDLASS_APP = u.trim_end_matches(".service"),
                        "{l}"
                    );
                }
            }
            return self.roll_back(r, msg, outcome).await;
        }
        // Converged: each changed app's container runs the image the
        // generation intends (a silent revert elsewhere is a failure).
        if let Some(m) = self.platform.manifest(&r.to_generation) {
            for app in m.apps.iter().filter(|a| r.changed_units.contains(&a.unit)) {
                if app.image.is_empty() {
                    continue;
                }
                if let Some(running) = self.systemd.container_image(&app.name).await
                    && running != app.image
                {
                    let msg = format!(
                        "not converged: {} runs {running}, generation {} intends {}",
                        app.name, r.to_generation, app.image
                    );
                    return self.roll_back(r, msg, Outcome::RolledBack).await;
                }
            }
        }
        if r.confirm == "manual" {
            if let Err(e) = self.save(&mut r, "waiting-confirm", "") {
                return self.roll_back(r, e.to_string(), Outcome::RolledBack).await;
            }
            let start = std::time::Instant::now();
            loop {
                if self.confirmed.lock().unwrap().remove(&r.id) {
                    break;
                }
                if self.cancel.lock().unwrap().contains(&r.id) {
                    return self
                        .roll_back(r, "canceled".into(), Outcome::Canceled)
                        .await;
                }
                if start.elapsed() >= Duration::from_secs(r.deadline_sec) {
                    let msg = format!("not confirmed within {} s", r.deadline_sec);
                    return self.roll_back(r, msg, Outcome::RolledBack).await;
                }
                tokio::time::sleep(self.poll).await;
            }
        }
        self.commit(r).await;
    }

    async fn commit(&self, mut r: Record) {
        if let Err(e) = self.save(&mut r, "committing", "") {
            return self.finish(&mut r, Outcome::Failed, e.to_string());
        }
        match self.platform.commit(&r.to_generation).await {
            Ok(()) => {
                let g = r.to_generation.clone();
                self.finish(&mut r, Outcome::Committed, String::new());
                self.notify.generation_changed(&g);
            }
            Err(e) => {
                self.finish(&mut r, Outcome::Failed, format!("commit failed: {e}"));
            }
        }
        // Last: run by the revert timer (recovering a commit), this
        // process lives in the unit that disarming stops.
        self.disarm(&r).await;
    }

    async fn roll_back(&self, mut r: Record, error: String, outcome: Outcome) {
        if let Err(e) = self.save(&mut r, "rolling-back", &error) {
            tracing::error!("{e}");
        }
        let back = r.from_generation.clone();
        let res = match &back {
            Some(from) => match self
                .platform
                .activate(&self.systemd, Some(&r.to_generation), from)
                .await
            {
                // The rollback is done when the previous generation's
                // restarted units are active again (same gate, its deadline).
                Ok(act) => {
                    let deadline = self
                        .platform
                        .manifest(from)
                        .map(|m| m.deadline_for(&act.changed))
                        .unwrap_or(300);
                    let gate = self.gate_for(from, &act.changed, deadline);
                    health::wait(&self.systemd, &gate, &self.http, || false)
                        .await
                        .map_err(|f| {
                            format!("generation {from} is not healthy again: {}", f.reason)
                        })
                }
                Err(e) => Err(e.to_string()),
            },
            None => Ok(()),
        };
        match res {
            Ok(()) => self.finish(&mut r, outcome, error),
            Err(e) => self.finish(
                &mut r,
                Outcome::Failed,
                format!(
                    "{error}\nand rolling back to {} failed: {e}",
                    back.unwrap_or_default()
                ),
            ),
        }
        // Last: run by the revert timer, this process lives in the unit
        // that disarming stops; the record must be finished first.
        self.disarm(&r).await;
    }

    async fn run_rollback(self: Arc<Self>, mut r: Record) {
        if let Err(e) = self.save(&mut r, "activating", "") {
            return self.finish(&mut r, Outcome::Failed, e.to_string());
        }
        match self
            .platform
            .activate(
                &self.systemd,
                r.from_generation.as_deref(),
                &r.to_generation,
            )
            .await
        {
            Ok(act) => r.changed_units = act.changed,
            Err(e) => {
                return self.finish(&mut r, Outcome::Failed, format!("activation failed: {e}"));
            }
        }
        if let Err(e) = self.save(&mut r, "health-gate", "") {
            return self.finish(&mut r, Outcome::Failed, e.to_string());
        }
        let gate = self.gate_for(&r.to_generation, &r.changed_units, r.deadline_sec);
        if let Err(f) = health::wait(&self.systemd, &gate, &self.http, || false).await {
            // A rollback never replays the plan it undoes: it stops here.
            return self.finish(&mut r, Outcome::Failed, f.reason);
        }
        self.commit(r).await;
    }

    /// Resolves every unfinished record (at start, before serving).
    pub async fn recover(self: &Arc<Self>) -> Vec<Record> {
        let mut done = Vec::new();
        for r in self.store.all().unwrap_or_default() {
            if r.finished() {
                continue;
            }
            *self.active.lock().unwrap() = Some(r.id.clone());
            let phase = r.phase.clone();
            let why = format!("interrupted during {phase} (agent restart)");
            tracing::warn!(WINDLASS_OPERATION = r.id.as_str(), "recovering: {why}");
            let mut r2 = r.clone();
            match (r.kind, phase.as_str()) {
                (Kind::Cutover, _) => crate::cutover::recover(self, r2).await,
                (_, "recorded") | (_, "arming") => {
                    self.finish(
                        &mut r2,
                        Outcome::Canceled,
                        format!("{why}; nothing was changed"),
                    );
                    self.disarm(&r2).await;
                }
                (_, "committing") => self.commit(r2).await,
                (Kind::Switch, _) => self.roll_back(r2, why, Outcome::RolledBack).await,
                (Kind::Rollback, _) => {
                    let me = self.clone();
                    me.run_rollback(r2).await;
                }
                _ => self.finish(&mut r2, Outcome::Failed, why),
            }
            if let Ok(x) = self.store.load(&r.id) {
                done.push(x);
            }
        }
        done
    }

    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits until no operation is in flight.
    pub async fn idle(&self) {
        while self.active().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
