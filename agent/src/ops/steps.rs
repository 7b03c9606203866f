//! Steps more than one operation takes: the health gate of a
//! generation's changed apps, what a failed gate is reported as, and the
//! commit of a generation.

use std::time::Duration;

use super::runner::Runner;
use crate::contract::{GenerationId, Manifest};
use crate::health::{self, Gate, GateFailure};
use crate::platform::{Platform, PlatformError};
use crate::record::{MAX_DEADLINE_SEC, OpKind, Outcome, Record};
use crate::systemd::Systemd;

/// The gate of the `changed` units of a generation: each service active,
/// and the HTTP probes of the apps among them answering.
pub fn generation_gate(
    manifest: Option<&Manifest>,
    changed: &[String],
    deadline_sec: u64,
    poll: Duration,
) -> Gate {
    let http = manifest
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
        poll,
    }
}

/// Waits for `gate`; Cancel of `r` (or of its parent) ends the wait.
pub async fn wait_cancellable<P, S: Systemd + 'static, O>(
    rn: &Runner<P, S>,
    r: &Record<O>,
    gate: &Gate,
) -> Result<(), GateFailure>
where
    P: Send + Sync + 'static,
{
    let mut timeline = crate::bundle::Timeline::new(&rn.store.state_dir(), r.id.as_str());
    let res = health::wait(
        &rn.systemd,
        gate,
        &rn.http,
        || rn.canceled(r),
        |t, s| timeline.saw(t, s),
    )
    .await;
    timeline.close();
    res
}

/// Waits for `gate` of operation `id`, not cancellable (the way back, a
/// rollback).
pub async fn wait<P, S: Systemd + 'static>(
    rn: &Runner<P, S>,
    id: &crate::record::OpId,
    gate: &Gate,
) -> Result<(), GateFailure>
where
    P: Send + Sync + 'static,
{
    let mut timeline = crate::bundle::Timeline::new(&rn.store.state_dir(), id.as_str());
    let res = health::wait(
        &rn.systemd,
        gate,
        &rn.http,
        || false,
        |t, s| timeline.saw(t, s),
    )
    .await;
    timeline.close();
    res
}

/// What a failed gate ends an operation as, and the error to record:
/// the reason. The last journal lines of the unit to blame are kept in
/// the record's `journal` (for authorised callers only) and logged,
/// attributed to the app.
pub async fn explain<P, S: Systemd + 'static, O>(
    rn: &Runner<P, S>,
    r: &mut Record<O>,
    f: GateFailure,
) -> (Outcome, String)
where
    P: Send + Sync + 'static,
{
    let (unit, msg) = match f {
        GateFailure::Canceled => return (Outcome::Canceled, "canceled".into()),
        GateFailure::Unhealthy { unit, reason } => (unit, reason),
    };
    let ops = rn.store.state_dir().join("operations");
    crate::bundle::keep_containers_at_failure(&rn.systemd, &ops, r.id.as_str(), &r.changed_units)
        .await;
    if let Some(u) = &unit
        && let Ok(lines) = rn.systemd.journal(u, 20).await
    {
        r.journal = std::iter::once(format!("--- last journal lines of {u} ---"))
            .chain(lines.iter().cloned())
            .collect();
        for l in &lines {
            tracing::warn!(
                WINDLASS_OPERATION = r.id.as_str(),
                WINDLASS_APP = u.trim_end_matches(".service"),
                "{l}"
            );
        }
    }
    (Outcome::RolledBack, msg)
}

/// Makes `to` the generation the host boots into and ends the operation:
/// committed, or failed with the platform's reason.
pub async fn commit_generation<P: Platform, S: Systemd + 'static, O: OpKind>(
    rn: &Runner<P, S>,
    r: Record<O>,
    to: GenerationId,
) -> Record<O> {
    match rn.platform.commit(to).await {
        Ok(()) => rn.end(r, Outcome::Committed, String::new(), Some(to)).await,
        Err(e) => {
            rn.end(r, Outcome::Failed, format!("commit failed: {e}"), None)
                .await
        }
    }
}

/// Why a step did not happen.
pub enum StepError {
    /// Its phase could not be recorded: nothing was done.
    NotSaved(String),
    /// The platform refused it before changing anything (the target
    /// does not exist, or failed its verification).
    Refused(String),
    /// It was recorded and failed, possibly halfway.
    Failed(String),
}

/// The activation step of a switch or rollback: `phase` recorded, then
/// `to` made the running generation; the units it changed are kept in the
/// record (what the gate waits for).
pub async fn activate<P: Platform, S: Systemd + 'static, O: OpKind>(
    rn: &Runner<P, S>,
    r: &mut Record<O>,
    phase: O::Phase,
    from: Option<GenerationId>,
    to: GenerationId,
) -> Result<(), StepError> {
    rn.save(r, phase, "")
        .map_err(|e| StepError::NotSaved(e.to_string()))?;
    activate_saved(rn, r, from, to).await
}

/// [`activate`] with its phase recorded already.
pub async fn activate_saved<P: Platform, S: Systemd + 'static, O: OpKind>(
    rn: &Runner<P, S>,
    r: &mut Record<O>,
    from: Option<GenerationId>,
    to: GenerationId,
) -> Result<(), StepError> {
    let act = rn
        .platform
        .activate(&rn.systemd, from, to)
        .await
        .map_err(|e| match e {
            PlatformError::NotFound(_) | PlatformError::Invalid(_) => {
                StepError::Refused(format!("activation refused, nothing was changed: {e}"))
            }
            PlatformError::Failed(_) => StepError::Failed(format!("activation failed: {e}")),
        })?;
    r.changed_units = act.changed;
    Ok(())
}

/// The gate's deadline for `units` of a generation: the longest of their
/// apps', at most [`MAX_DEADLINE_SEC`] (a staged manifest is not trusted
/// to hold the revert timer off for ever).
pub fn deadline_for(manifest: &Manifest, units: &[String]) -> u64 {
    manifest.deadline_for(units).min(MAX_DEADLINE_SEC)
}

/// The deadline of a whole generation: the longest of its apps'.
pub fn generation_deadline(manifest: Option<&Manifest>) -> u64 {
    manifest
        .map(|m| {
            let units: Vec<String> = m.apps.iter().map(|a| a.unit.clone()).collect();
            deadline_for(m, &units)
        })
        .unwrap_or(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_manifest_cannot_hold_the_gate_open_for_more_than_a_week() {
        let m = Manifest::from_slice(
            br#"{"format": 1, "apps": [
                {"name": "a", "unit": "a.service", "update": {"health_deadline_sec": 18446744073709551615}},
                {"name": "b", "unit": "b.service", "update": {"health_deadline_sec": 45}}]}"#,
        )
        .unwrap();
        assert_eq!(deadline_for(&m, &["a.service".into()]), MAX_DEADLINE_SEC);
        assert_eq!(deadline_for(&m, &["b.service".into()]), 45);
        assert_eq!(generation_deadline(Some(&m)), MAX_DEADLINE_SEC);
        assert_eq!(generation_deadline(None), 300);
    }
}
