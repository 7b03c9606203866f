//! Rollback: `recorded` → (`hook:down`, once per `down` hook of the
//! generation being left) → `activating` → `health-gate` → `committing` →
//! committed, to a generation named by the caller or to the one committed
//! before the selected one. A rollback never replays the plan it undoes:
//! a failed activation or gate ends it as failed, where it stands.
//!
//! Recovery after a crash: `recorded` changed nothing (canceled); a
//! rollback that began is run again from its activation (activation and
//! commit are idempotent), after the `down` hooks that had not finished
//! (the one that was running runs again); `committing` is finished. A
//! `down` hook that fails ends the rollback as failed before anything
//! is activated.

use std::sync::Arc;

use super::hooks;
use super::runner::{OpError, Runner};
use super::steps::{self, StepError};
use crate::contract::{GenerationId, HookKind};
use crate::platform::Platform;
use crate::record::HookProgress;
use crate::record::{Outcome, Record, RollbackOp, RollbackPhase};
use crate::systemd::Systemd;

type R<P, S> = Arc<Runner<P, S>>;

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// The caller's request id (see [`Record::request`]).
    pub request: Option<String>,
}

/// Starts a rollback to `to`, or to the previous committed generation.
pub fn start<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    to: Option<GenerationId>,
    opts: RollbackOptions,
) -> Result<Record<RollbackOp>, OpError> {
    let target = match to {
        Some(t) => t,
        None => previous_committed(rn).ok_or_else(|| {
            OpError::NotFound(match rn.platform.selected() {
                None => {
                    "nothing to roll back to: no generation has been committed on this host".into()
                }
                Some(s) => format!(
                    "nothing to roll back to: generation {s} is the first committed on this host"
                ),
            })
        })?,
    };
    if !rn.platform.exists(target) {
        return Err(OpError::NotFound(format!("generation {target} not found")));
    }
    rn.platform
        .check_switch(rn.platform.running(), target)
        .map_err(|e| OpError::InvalidArgument(format!("nothing was changed: {e}")))?;
    let from = rn.platform.running();
    let mut r = rn.record(RollbackOp {
        phase: RollbackPhase::Recorded,
        from_generation: from,
        to_generation: target,
        hooks: Box::new(down_hooks(rn, from, target)),
    });
    r.deadline_sec = steps::generation_deadline(rn.platform.manifest(target).as_ref());
    r.request = opts.request;
    let r = rn.begin(r)?;
    tokio::spawn(activate(rn.clone(), r.clone()));
    Ok(r)
}

/// After recovery, with no operation in flight, the host must run the
/// generation it has selected. When it does not (a record that would
/// have said how it got there was damaged or lost), a rollback to the
/// selected generation is recorded and run to its end.
///
/// A host that runs a generation while none is selected (a first
/// switch whose record was lost) is left running it, with an error in
/// the log: taking every app down because a link is missing would be
/// worse than the inconsistency; a switch or `windlassctl rollback` to a
/// generation resolves it.
pub async fn restore_selected<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
) -> Option<Record<RollbackOp>> {
    let running = rn.platform.running();
    let Some(selected) = rn.platform.selected() else {
        if let Some(g) = running
            && rn.active().is_none()
        {
            tracing::error!(
                "generation {g} runs but none is selected, and no operation is in flight: \
                 leaving it running (switch to a generation to resolve this)"
            );
        }
        return None;
    };
    if running == Some(selected) || rn.active().is_some() {
        return None;
    }
    tracing::error!(
        "generation {} runs but {selected} is selected, and no operation is in flight: \
         restoring {selected}",
        running
            .map(|g| g.to_string())
            .unwrap_or_else(|| "none".into())
    );
    let mut r = rn.record(RollbackOp {
        phase: RollbackPhase::Recorded,
        from_generation: running,
        to_generation: selected,
        hooks: Box::new(down_hooks(rn, running, selected)),
    });
    r.deadline_sec = steps::generation_deadline(rn.platform.manifest(selected).as_ref());
    match rn.begin(r) {
        Ok(r) => Some(activate(rn.clone(), r).await),
        Err(e) => {
            tracing::error!("cannot restore generation {selected}: {e}");
            None
        }
    }
}

/// The generation committed before the selected one: the `from` of the
/// last committed operation that selected it, else the highest
/// generation below it.
pub fn previous_committed<P: Platform, S: Systemd + 'static>(
    rn: &Runner<P, S>,
) -> Option<GenerationId> {
    let selected = rn.platform.selected()?;
    rn.store
        .all()
        .iter()
        .rev()
        .filter(|r| r.result == Some(Outcome::Committed) && r.to_generation() == Some(selected))
        .find_map(|r| r.from_generation().filter(|f| *f != selected))
        .or_else(|| {
            rn.platform
                .generations()
                .iter()
                .map(|g| g.id)
                .filter(|g| *g < selected)
                .max()
        })
}

/// The apps of the generation being left (`from`) whose `down` hooks a
/// move to `to` runs: those it changes, last dependency first.
fn down_hooks<P: Platform, S: Systemd + 'static>(
    rn: &Runner<P, S>,
    from: Option<GenerationId>,
    to: GenerationId,
) -> HookProgress {
    let leaving = from.and_then(|f| rn.platform.manifest(f));
    let Some(leaving) = leaving else {
        return HookProgress::default();
    };
    let target = rn.platform.manifest(to);
    let mut apps: Vec<String> = hooks::changed_apps(target.as_ref(), &leaving)
        .into_iter()
        .filter(|a| leaving.app(a).is_some_and(|x| x.hooks.down.is_some()))
        .collect();
    apps.reverse();
    HookProgress {
        apps,
        ..HookProgress::default()
    }
}

async fn activate<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<RollbackOp>,
) -> Record<RollbackOp> {
    let (from, to) = (r.op.from_generation, r.op.to_generation);
    if let Some(leaving) = from.and_then(|f| rn.platform.manifest(f)) {
        let apps = r.op.hooks.apps.clone();
        if let Err(e) = hooks::run_kind(&rn, &mut r, HookKind::Down, &leaving, &apps).await {
            let msg = format!(
                "{e}\nnothing was activated: generation {} still runs",
                from.map(|g| g.to_string()).unwrap_or_default()
            );
            return rn.end(r, Outcome::Failed, msg, None).await;
        }
    }
    if let Err(StepError::NotSaved(e) | StepError::Refused(e) | StepError::Failed(e)) =
        steps::activate(&rn, &mut r, RollbackPhase::Activating, from, to).await
    {
        return rn.end(r, Outcome::Failed, e, None).await;
    }
    if let Err(e) = rn.save(&mut r, RollbackPhase::HealthGate, "") {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    let manifest = rn.platform.manifest(to);
    let g = steps::generation_gate(manifest.as_ref(), &r.changed_units, r.deadline_sec, rn.poll);
    if let Err(f) = steps::wait(&rn, &r.id, &g).await {
        return rn.end(r, Outcome::Failed, f.to_string(), None).await;
    }
    commit(&rn, r).await
}

async fn commit<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    mut r: Record<RollbackOp>,
) -> Record<RollbackOp> {
    if let Err(e) = rn.save(&mut r, RollbackPhase::Committing, "") {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    let to = r.op.to_generation;
    steps::commit_generation(rn, r, to).await
}

/// Resolves a rollback found unfinished at start.
pub async fn recover<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: Record<RollbackOp>,
    why: String,
) -> Record<RollbackOp> {
    match r.phase() {
        RollbackPhase::Recorded => {
            let msg = format!("{why}; nothing was changed");
            rn.end(r, Outcome::Canceled, msg, None).await
        }
        RollbackPhase::HookDown | RollbackPhase::Activating | RollbackPhase::HealthGate => {
            activate(rn.clone(), r).await
        }
        RollbackPhase::Committing => commit(rn, r).await,
        RollbackPhase::Finished => {
            let msg = format!("{why}; finished without a result");
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}
