//! Switch: `recorded` → `arming` (the revert deadline armed outside the
//! agent) → `activating` → `health-gate` (→ `waiting-confirm` with manual
//! confirm) → `committing` → committed. A failed activation or gate, a
//! unit running another image than intended, a passed deadline, a
//! failed save or Cancel → `rolling-back` to the generation recorded at
//! the start → rolled-back (canceled for Cancel).
//!
//! Recovery after a crash: before `activating` nothing changed
//! (canceled); from `activating` to `rolling-back` the host goes back to
//! the recorded generation (rolled-back); `committing` is finished
//! (committed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runner::{OpError, Runner};
use super::steps::{self, StepError};
use crate::contract::{GenerationId, Manifest};
use crate::platform::Platform;
use crate::record::{Confirm, OpId, Outcome, Record, SwitchOp, SwitchPhase};
use crate::systemd::Systemd;

#[derive(Debug, Clone, Default)]
pub struct SwitchOptions {
    /// Commit once healthy, or on Confirm.
    pub confirm: Confirm,
    /// Overrides the generation's health deadline.
    pub deadline_sec: Option<u64>,
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
    let mut r = rn.record(SwitchOp {
        phase: SwitchPhase::Recorded,
        from_generation: from,
        to_generation: to,
    });
    r.confirm = opts.confirm;
    r.deadline_sec = opts
        .deadline_sec
        .unwrap_or_else(|| steps::generation_deadline(rn.platform.manifest(to).as_ref()));
    r.deadline_from_option = opts.deadline_sec.is_some();
    r.parent = parent.cloned();
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
    activate(&rn, r).await
}

async fn activate<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
) -> Record<SwitchOp> {
    let (from, to) = (r.op.from_generation, r.op.to_generation);
    match steps::activate(rn, &mut r, SwitchPhase::Activating, from, to).await {
        Ok(()) => {}
        Err(StepError::NotSaved(e) | StepError::Refused(e)) => {
            return rn.end(r, Outcome::Failed, e, None).await;
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
    let detail = r.changed_units.join(" ");
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
    commit(rn, r).await
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
    steps::commit_generation(rn, r, to).await
}

/// Returns the host to the generation recorded at the start and ends the
/// operation as `outcome` (failed, if the way back fails too).
async fn roll_back<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<SwitchOp>,
    error: String,
    outcome: Outcome,
) -> Record<SwitchOp> {
    if let Err(e) = rn.save(&mut r, SwitchPhase::RollingBack, &error) {
        tracing::error!("{e}");
    }
    let Some(back) = r.op.from_generation else {
        return rn.end(r, outcome, error, None).await;
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
            steps::wait(rn, &g)
                .await
                .map_err(|f| format!("generation {back} is not healthy again: {f}"))
        }
        Err(e) => Err(e.to_string()),
    };
    match res {
        Ok(()) => rn.end(r, outcome, error, None).await,
        Err(e) => {
            let msg = format!("{error}\nand rolling back to {back} failed: {e}");
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
    match r.phase() {
        SwitchPhase::Recorded | SwitchPhase::Arming => {
            let msg = format!("{why}; nothing was changed");
            rn.end(r, Outcome::Canceled, msg, None).await
        }
        SwitchPhase::Activating
        | SwitchPhase::HealthGate
        | SwitchPhase::WaitingConfirm
        | SwitchPhase::RollingBack => roll_back(rn, r, why, Outcome::RolledBack).await,
        SwitchPhase::Committing => commit(rn, r).await,
        SwitchPhase::Finished => {
            let msg = format!("{why}; finished without a result");
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}
