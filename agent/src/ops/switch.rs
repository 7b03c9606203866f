//! Switch: `recorded` → `arming` (the revert deadline armed outside the
//! agent) → `hook:pre-activate` → `activating` → `health-gate` (→
//! `waiting-confirm` with manual confirm) → `hook:pre-commit` →
//! `committing` → `hook:post-commit` → committed. A failed hook,
//! activation or gate, a unit running another image than intended, a
//! passed deadline, a failed save or Cancel → `rolling-back` (with
//! `hook:down`: the `down` hooks of the generation being left) to the
//! generation recorded at the start → rolled-back (canceled for Cancel).
//! The hook phases are recorded once per hook, and only for the apps the
//! switch changes that have one ([`hooks`]); a failing `post_commit`
//! hook is reported in the error of a committed switch.
//!
//! The way back from a first switch (no generation recorded at the
//! start) is the state before it: the new generation's units stopped and
//! unloaded, no running generation ([`Platform::deactivate`]).
//!
//! Recovery after a crash: before `activating` nothing changed
//! (canceled); a `pre_activate` or `pre_commit` hook that was running
//! runs again, and then, as from `activating` to `rolling-back`, the
//! host goes back to the recorded generation, or to none (rolled-back);
//! `committing` and `hook:post-commit` are finished (the hook that was
//! running runs again, then those left; committed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hooks;
use super::runner::{OpError, Runner};
use super::steps::{self, StepError};
use crate::contract::{GenerationId, HookKind, Manifest};
use crate::platform::{Platform, PlatformError};
use crate::record::{
    Confirm, HookProgress, OpId, Outcome, Record, SwitchOp, SwitchPhase, TakenOver,
};
use crate::systemd::{Systemd, Verb};

#[derive(Debug, Clone, Default)]
pub struct SwitchOptions {
    /// Commit once healthy, or on Confirm.
    pub confirm: Confirm,
    /// Overrides the generation's health deadline.
    pub deadline_sec: Option<u64>,
    /// Take over units whose files are someone else's (set the files
    /// aside, put them back if the switch does not commit), rather than
    /// refuse the switch.
    pub take_over: bool,
    /// The caller's request id (see [`Record::request`]).
    pub request: Option<String>,
}

type R<P, S> = Arc<Runner<P, S>>;

/// Starts a switch to `to`; returns its record at once, runs in the
/// background.
pub fn start<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    to: GenerationId,
    opts: SwitchOptions,
) -> Result<Record<SwitchOp>, OpError> {
    let r = begin(rn, to, opts, None)?;
    tokio::spawn(run(rn.clone(), r.clone()));
    Ok(r)
}

/// Checks a switch to `to` and records it (inside `parent`, if given);
/// [`run`] runs it.
pub fn begin<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    to: GenerationId,
    opts: SwitchOptions,
    parent: Option<&OpId>,
) -> Result<Record<SwitchOp>, OpError> {
    if !rn.platform.exists(to) {
        return Err(OpError::NotFound(format!("generation {to} not found")));
    }
    let from = rn.platform.running();
    if from == Some(to) && rn.platform.selected() == Some(to) {
        return Err(OpError::InvalidArgument(format!(
            "generation {to} is already running and selected"
        )));
    }
    let refused = |e: PlatformError| OpError::InvalidArgument(format!("nothing was changed: {e}"));
    let taken_over = if opts.take_over {
        rn.platform
            .foreign(from, to)
            .map_err(refused)?
            .into_iter()
            .map(|(unit, path)| TakenOver {
                unit,
                path,
                was_active: false,
            })
            .collect()
    } else {
        rn.platform.check_switch(from, to).map_err(refused)?;
        Vec::new()
    };
    let to_manifest = rn.platform.manifest(to);
    let from_manifest = from.and_then(|f| rn.platform.manifest(f));
    let hook_apps = to_manifest
        .as_ref()
        .map(|m| hooks::changed_apps(from_manifest.as_ref(), m))
        .unwrap_or_default();
    let mut r = rn.record(SwitchOp {
        phase: SwitchPhase::Recorded,
        from_generation: from,
        to_generation: to,
        taken_over,
        hooks: Box::new(HookProgress {
            apps: hook_apps,
            ..HookProgress::default()
        }),
    });
    r.confirm = opts.confirm;
    r.deadline_sec = opts
        .deadline_sec
        .unwrap_or_else(|| steps::generation_deadline(rn.platform.manifest(to).as_ref()));
    r.deadline_from_option = opts.deadline_sec.is_some();
    r.parent = parent.cloned();
    r.request = opts.request;
    rn.begin(r)
}

/// Runs a recorded switch to its end; returns the finished record.
pub async fn run<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<SwitchOp>,
) -> Record<SwitchOp> {
    if let Err(e) = rn.save(&mut r, SwitchPhase::Arming, "") {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    rn.arm(&r).await;
    if let Err(msg) = up_hooks(&rn, &mut r, HookKind::PreActivate).await {
        let outcome = canceled_or(&rn, &r, Outcome::RolledBack);
        return roll_back(&rn, r, msg, outcome).await;
    }
    // Cancel during a hook takes effect when it ends (a migration is
    // not cut halfway): before anything is activated.
    if rn.canceled(&r) {
        return roll_back(&rn, r, "canceled".into(), Outcome::Canceled).await;
    }
    activate(&rn, r).await
}

/// `Canceled` when Cancel was asked for, else `otherwise`.
fn canceled_or<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &Record<SwitchOp>,
    otherwise: Outcome,
) -> Outcome {
    if rn.canceled(r) {
        Outcome::Canceled
    } else {
        otherwise
    }
}

/// Runs the `kind` hooks of the apps the switch changes, in dependency
/// order (those that finished already are not run again).
async fn up_hooks<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &mut Record<SwitchOp>,
    kind: HookKind,
) -> Result<(), String> {
    if r.op.hooks.apps.is_empty() {
        return Ok(());
    }
    let Some(m) = rn.platform.manifest(r.op.to_generation) else {
        return Err(format!(
            "the contract of generation {} cannot be read: its hooks cannot run",
            r.op.to_generation
        ));
    };
    let apps = r.op.hooks.apps.clone();
    hooks::run_kind(rn, r, kind, &m, &apps).await
}

/// The hook of `kind` that was running when the agent stopped, run
/// again (before the switch goes back: a `down` hook may count on the
/// up hook having finished). Returns what went wrong.
async fn rerun_interrupted<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &mut Record<SwitchOp>,
    kind: HookKind,
) -> Option<String> {
    let running = r.op.hooks.running.clone()?;
    let app = running.strip_prefix(&format!("{}:", kind.as_str()))?;
    let apps = vec![app.to_string()];
    let m = rn.platform.manifest(r.op.to_generation)?;
    hooks::run_kind(rn, r, kind, &m, &apps).await.err()
}

async fn activate<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
) -> Record<SwitchOp> {
    let (from, to) = (r.op.from_generation, r.op.to_generation);
    let activated = if r.op.taken_over.is_empty() {
        steps::activate(rn, &mut r, SwitchPhase::Activating, from, to).await
    } else {
        match take_over(rn, &mut r).await {
            Ok(()) => steps::activate_saved(rn, &mut r, from, to).await,
            Err(e) => Err(e),
        }
    };
    match activated {
        Ok(()) => {}
        // Refused before any unit changed: nothing to undo, unless a
        // pre-activate hook ran (its down hook runs on the way back).
        Err(StepError::NotSaved(e) | StepError::Refused(e)) if r.op.hooks.done.is_empty() => {
            return rn.end(r, Outcome::Failed, e, None).await;
        }
        Err(StepError::NotSaved(e) | StepError::Refused(e)) => {
            return go_back(rn, r, e, Outcome::Failed, false).await;
        }
        Err(StepError::Failed(msg)) => {
            return roll_back(rn, r, msg, Outcome::RolledBack).await;
        }
    }
    let manifest = rn.platform.manifest(to);
    // The gate's deadline is that of the apps that changed (the revert
    // timer, armed before, used the longest of all apps).
    if !r.deadline_from_option
        && let Some(m) = &manifest
    {
        r.deadline_sec = steps::deadline_for(m, &r.changed_units);
    }
    let mut detail = r.changed_units.join(" ");
    // An app whose manifest says `update.rollback = "manual"` is never
    // committed without a person: a switch that changes it waits for
    // Confirm (and is reverted at its deadline), whatever the caller
    // asked for.
    if r.confirm == Confirm::Auto
        && let Some(m) = &manifest
    {
        let manual: Vec<&str> = m
            .apps
            .iter()
            .filter(|a| r.changed_units.contains(&a.unit))
            .filter(|a| a.update.rollback == crate::contract::Rollback::Manual)
            .map(|a| a.name.as_str())
            .collect();
        if !manual.is_empty() {
            r.confirm = Confirm::Manual;
            detail += &format!(
                " (waits for Confirm: update.rollback = \"manual\" for {})",
                manual.join(", ")
            );
        }
    }
    if let Err(e) = rn.save(&mut r, SwitchPhase::HealthGate, &detail) {
        return roll_back(rn, r, e.to_string(), Outcome::RolledBack).await;
    }
    rn.rearm_for_gate(&r, r.confirm == Confirm::Manual).await;
    gate(rn, r, manifest.as_ref()).await
}

async fn gate<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
    manifest: Option<&Manifest>,
) -> Record<SwitchOp> {
    let g = steps::generation_gate(manifest, &r.changed_units, r.deadline_sec, rn.poll);
    if let Err(f) = steps::wait_cancellable(rn, &r, &g).await {
        let (outcome, msg) = steps::explain(rn, &mut r, f).await;
        return roll_back(rn, r, msg, outcome).await;
    }
    if let Some(msg) = not_converged(rn, &r, manifest).await {
        return roll_back(rn, r, msg, Outcome::RolledBack).await;
    }
    if r.confirm == Confirm::Manual {
        if let Err(e) = rn.save(&mut r, SwitchPhase::WaitingConfirm, "") {
            return roll_back(rn, r, e.to_string(), Outcome::RolledBack).await;
        }
        let start = Instant::now();
        while !rn.take_confirmation(&r.id) {
            if rn.canceled(&r) {
                return roll_back(rn, r, "canceled".into(), Outcome::Canceled).await;
            }
            if start.elapsed() >= Duration::from_secs(r.deadline_sec) {
                let msg = format!("not confirmed within {} s", r.deadline_sec);
                return roll_back(rn, r, msg, Outcome::RolledBack).await;
            }
            tokio::time::sleep(rn.poll).await;
        }
    }
    if let Err(msg) = up_hooks(rn, &mut r, HookKind::PreCommit).await {
        let outcome = canceled_or(rn, &r, Outcome::RolledBack);
        return roll_back(rn, r, msg, outcome).await;
    }
    if rn.canceled(&r) {
        return roll_back(rn, r, "canceled".into(), Outcome::Canceled).await;
    }
    commit(rn, r).await
}

/// The take-over of a switch that asked for it, as the first part of
/// its activation: the phase recorded, each unit's state before (kept in
/// the record), the active ones stopped while their own definitions are
/// loaded, then their files set aside.
async fn take_over<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &mut Record<SwitchOp>,
) -> Result<(), StepError> {
    let files: Vec<String> =
        r.op.taken_over
            .iter()
            .map(|t| t.path.display().to_string())
            .collect();
    for t in r.op.taken_over.iter_mut() {
        t.was_active = rn.systemd.state(&t.unit).await.is_ok_and(|s| {
            matches!(
                s.active_state.as_str(),
                "active" | "activating" | "reloading"
            )
        });
    }
    let detail = format!("taking over {}", files.join(" "));
    rn.save(r, SwitchPhase::Activating, &detail)
        .map_err(|e| StepError::NotSaved(e.to_string()))?;
    let failed = |e: String| StepError::Failed(format!("taking over failed: {e}"));
    for t in r.op.taken_over.iter().filter(|t| t.was_active) {
        rn.systemd
            .job(Verb::Stop, &t.unit)
            .await
            .map_err(|e| failed(e.0))?;
    }
    // A hand-written unit whose main process does not heed SIGTERM ends
    // its stop `failed`; that state is the old definition's, and the
    // generation's unit of the same name starts clean.
    for t in &r.op.taken_over {
        let _ = rn.systemd.reset_failed(&t.unit).await;
    }
    let paths: Vec<PathBuf> = r.op.taken_over.iter().map(|t| t.path.clone()).collect();
    rn.platform
        .set_aside(r.id.as_str(), &paths)
        .map_err(|e| failed(e.to_string()))
}

/// Puts back the files a switch took over, reloads, and starts again the
/// units that were active before it. Returns what went wrong.
async fn give_back<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &Record<SwitchOp>,
) -> Option<String> {
    if r.op.taken_over.is_empty() {
        return None;
    }
    let paths: Vec<PathBuf> = r.op.taken_over.iter().map(|t| t.path.clone()).collect();
    let mut errors = Vec::new();
    if let Err(e) = rn.platform.give_back(r.id.as_str(), &paths) {
        errors.push(e.to_string());
    }
    if let Err(e) = rn.systemd.reload().await {
        errors.push(format!("daemon-reload: {e}"));
    }
    for t in r.op.taken_over.iter().filter(|t| t.was_active) {
        if let Err(e) = rn.systemd.enqueue(Verb::Start, &t.unit).await {
            errors.push(format!("starting {} again: {e}", t.unit));
        }
    }
    (!errors.is_empty()).then(|| format!("putting back what was taken over: {}", errors.join("; ")))
}

/// Converged: each changed app's container runs the image the generation
/// intends (a silent revert elsewhere is a failure). Returns why not.
async fn not_converged<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &Record<SwitchOp>,
    manifest: Option<&Manifest>,
) -> Option<String> {
    let m = manifest?;
    for app in m.apps.iter().filter(|a| r.changed_units.contains(&a.unit)) {
        if app.image.is_empty() {
            continue;
        }
        if let Some(running) = rn.systemd.container_image(&app.name).await
            && running != app.image
        {
            return Some(format!(
                "not converged: {} runs {running}, generation {} intends {}",
                app.name, r.op.to_generation, app.image
            ));
        }
    }
    None
}

async fn commit<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
) -> Record<SwitchOp> {
    if let Err(e) = rn.save(&mut r, SwitchPhase::Committing, "") {
        // Not recorded as committing: a restart would roll back a
        // generation the host had selected. Go back now instead.
        return roll_back(rn, r, e.to_string(), Outcome::RolledBack).await;
    }
    let to = r.op.to_generation;
    if let Err(e) = rn.platform.commit(to).await {
        return rn
            .end(r, Outcome::Failed, format!("commit failed: {e}"), None)
            .await;
    }
    // Committed: a failing post-commit hook is reported, nothing undone.
    let mut errors = Vec::new();
    if let Err(e) = up_hooks(rn, &mut r, HookKind::PostCommit).await {
        errors.push(e);
    }
    errors.extend(purge_removed(rn, &mut r).await);
    let error = match errors.is_empty() {
        true => String::new(),
        false => format!("committed, but {}", errors.join("; ")),
    };
    rn.end(r, Outcome::Committed, error, Some(to)).await
}

/// The volumes to remove after a switch from `from` to `to` commits:
/// those of the apps `from` has and `to` does not, whose manifest (in
/// `from`, the generation that had them) said `purge-data`, unless an
/// app of `to` mounts the same volume (an app renamed, keeping its data).
pub fn volumes_to_purge(from: &Manifest, to: &Manifest) -> Vec<String> {
    let kept: std::collections::BTreeSet<&str> = to
        .apps
        .iter()
        .flat_map(|a| a.volumes.iter().chain(&a.purge_on_remove))
        .map(String::as_str)
        .collect();
    let mut out: Vec<String> = from
        .apps
        .iter()
        .filter(|a| to.app(&a.name).is_none())
        .flat_map(|a| a.purge_on_remove.iter())
        .filter(|v| !kept.contains(v.as_str()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Committed: removes the volumes of the removed apps that asked for it
/// (a phase of its own, run again whole after a crash: removing a volume
/// that is gone is done). Never on a way back: rollbacks do not purge.
/// Returns what could not be removed (Podman refuses a volume that a
/// container still uses).
async fn purge_removed<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: &mut Record<SwitchOp>,
) -> Vec<String> {
    let Some(from) = r.op.from_generation.and_then(|g| rn.platform.manifest(g)) else {
        return Vec::new();
    };
    let Some(to) = rn.platform.manifest(r.op.to_generation) else {
        return Vec::new();
    };
    let volumes = volumes_to_purge(&from, &to);
    if volumes.is_empty() {
        return Vec::new();
    }
    if let Err(e) = rn.save(r, SwitchPhase::PurgingData, &volumes.join(" ")) {
        return vec![format!("the removed apps' data was kept: {e}")];
    }
    let mut errors = Vec::new();
    for v in &volumes {
        match rn.systemd.remove_volume(v).await {
            Ok(()) => tracing::warn!(
                WINDLASS_OPERATION = r.id.as_str(),
                "removed volume {v} of a removed app (purge-data)"
            ),
            Err(e) => errors.push(format!("volume {v} was kept: {e}")),
        }
    }
    errors
}

/// Returns the host to the generation recorded at the start and ends the
/// operation as `outcome` (failed, if the way back fails too). First the
/// `down` hooks of the generation being left run, for the apps that went
/// up; if the switch never began activating, nothing else is undone.
async fn roll_back<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: Record<SwitchOp>,
    error: String,
    outcome: Outcome,
) -> Record<SwitchOp> {
    // Not activated: stopped in a pre-activate hook (records without
    // hooks, also older ones, only ever roll back after activating).
    let passed = |p: SwitchPhase| r.history.iter().any(|(h, _)| h == p.as_str());
    let activated = passed(SwitchPhase::Activating) || !passed(SwitchPhase::HookPreActivate);
    go_back(rn, r, error, outcome, activated).await
}

/// [`roll_back`], told whether the activation changed anything (not
/// when the platform refused it: then only the pre-activate hooks that
/// ran are undone; a crash in that way back activates the previous
/// generation again, which ends in the same place).
async fn go_back<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
    error: String,
    outcome: Outcome,
    activated: bool,
) -> Record<SwitchOp> {
    if let Err(e) = rn.save(&mut r, SwitchPhase::RollingBack, &error) {
        tracing::error!("{e}");
    }
    let (mut error, mut outcome) = (error, outcome);
    if let Some(m) = rn.platform.manifest(r.op.to_generation) {
        let apps = hooks::down_apps(&r.op.hooks, &m);
        if !apps.is_empty() {
            if let Err(e) = hooks::run_kind(rn, &mut r, HookKind::Down, &m, &apps).await {
                error = format!("{error}\nand {e}");
                outcome = Outcome::Failed;
            }
            if let Err(e) = rn.save(&mut r, SwitchPhase::RollingBack, "") {
                tracing::error!("{e}");
            }
        }
    }
    if !activated {
        let msg = format!("{error}\nnothing had been activated");
        return rn.end(r, outcome, msg, None).await;
    }
    let Some(back) = r.op.from_generation else {
        return leave_first(rn, r, error, outcome).await;
    };
    let res = match rn
        .platform
        .activate(&rn.systemd, Some(r.op.to_generation), back)
        .await
    {
        // Done when the previous generation's restarted units are active
        // again (same gate, its deadline).
        Ok(act) => {
            let manifest = rn.platform.manifest(back);
            let deadline = manifest
                .as_ref()
                .map(|m| steps::deadline_for(m, &act.changed))
                .unwrap_or(300);
            let g = steps::generation_gate(manifest.as_ref(), &act.changed, deadline, rn.poll);
            steps::wait(rn, &r.id, &g)
                .await
                .map_err(|f| format!("generation {back} is not healthy again: {f}"))
        }
        Err(e) => Err(e.to_string()),
    };
    let given_back = give_back(rn, &r).await;
    match (res, given_back) {
        (Ok(()), None) => rn.end(r, outcome, error, None).await,
        (Ok(()), Some(g)) => {
            let msg = format!("{error}\nand {g}");
            rn.end(r, Outcome::Failed, msg, None).await
        }
        (Err(e), g) => {
            let mut msg = format!("{error}\nand rolling back to {back} failed: {e}");
            if let Some(g) = g {
                msg += &format!("\nand {g}");
            }
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}

/// The way back from a first switch (no generation ran before it):
/// the host returns to running no windlass generation, and the
/// operation ends as `outcome` (failed, if that fails too).
async fn leave_first<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: Record<SwitchOp>,
    error: String,
    outcome: Outcome,
) -> Record<SwitchOp> {
    let to = r.op.to_generation;
    let res = rn.platform.deactivate(&rn.systemd, to).await;
    let given_back = give_back(rn, &r).await;
    match (res, given_back) {
        (Ok(act), None) => {
            let msg = format!(
                "{error}\nno generation ran before {to}: its {} units were stopped and \
                 unloaded, and no windlass generation runs now",
                act.stopped.len()
            );
            rn.end(r, outcome, msg, None).await
        }
        (Ok(_), Some(g)) => {
            let msg = format!("{error}\nand {g}");
            rn.end(r, Outcome::Failed, msg, None).await
        }
        (Err(e), g) => {
            let mut msg = format!("{error}\nand taking generation {to} down again failed: {e}");
            if let Some(g) = g {
                msg += &format!("\nand {g}");
            }
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}

/// Resolves a switch found unfinished at start.
pub async fn recover<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: Record<SwitchOp>,
    why: String,
) -> Record<SwitchOp> {
    let mut r = r;
    match r.phase() {
        SwitchPhase::Recorded | SwitchPhase::Arming => {
            let msg = format!("{why}; nothing was changed");
            rn.end(r, Outcome::Canceled, msg, None).await
        }
        SwitchPhase::HookPreActivate | SwitchPhase::HookPreCommit => {
            let kind = match r.phase() {
                SwitchPhase::HookPreActivate => HookKind::PreActivate,
                _ => HookKind::PreCommit,
            };
            let why = match rerun_interrupted(rn, &mut r, kind).await {
                None => why,
                Some(e) => format!("{why}\nand run again, {e}"),
            };
            roll_back(rn, r, why, Outcome::RolledBack).await
        }
        SwitchPhase::Activating
        | SwitchPhase::HealthGate
        | SwitchPhase::WaitingConfirm
        | SwitchPhase::RollingBack
        | SwitchPhase::HookDown => roll_back(rn, r, why, Outcome::RolledBack).await,
        SwitchPhase::Committing | SwitchPhase::HookPostCommit | SwitchPhase::PurgingData => {
            commit(rn, r).await
        }
        SwitchPhase::Finished => {
            let msg = format!("{why}; finished without a result");
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}
