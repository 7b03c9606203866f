//! Lifecycle hooks as steps of an operation: which apps' hooks a switch
//! runs (those it changes), in which order (dependencies first; `down`
//! hooks in reverse), and how one hook runs: in a transient unit of its
//! own ([`Systemd::run_hook`]), its phase and name persisted first, so
//! that after a crash the hook that was running runs again (hooks must
//! be idempotent) and those that finished are not repeated.
//!
//! A hook fails when it exits non-zero other than [`HOOK_RETRY_EXIT`]
//! more than `retries` times, or when its `timeout` (all attempts
//! together) passes; exit [`HOOK_RETRY_EXIT`] runs it again after a
//! pause, until the timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::runner::Runner;
use crate::contract::{HOOK_RETRY_EXIT, Hook, HookKind, Manifest};
use crate::record::MAX_DEADLINE_SEC;
use crate::record::{
    HookProgress, OpKind, Record, RollbackOp, RollbackPhase, SwitchOp, SwitchPhase,
};
use crate::systemd::Systemd;

/// An operation kind that runs hooks: where it keeps their progress and
/// the phase it records while a hook of each kind runs.
pub trait Hooked: OpKind {
    fn progress(&self) -> &HookProgress;
    fn progress_mut(&mut self) -> &mut HookProgress;
    /// `None`: this kind never runs hooks of `kind`.
    fn hook_phase(kind: HookKind) -> Option<Self::Phase>;
}

impl Hooked for SwitchOp {
    fn progress(&self) -> &HookProgress {
        &self.hooks
    }
    fn progress_mut(&mut self) -> &mut HookProgress {
        &mut self.hooks
    }
    fn hook_phase(kind: HookKind) -> Option<SwitchPhase> {
        Some(match kind {
            HookKind::PreActivate => SwitchPhase::HookPreActivate,
            HookKind::PreCommit => SwitchPhase::HookPreCommit,
            HookKind::PostCommit => SwitchPhase::HookPostCommit,
            HookKind::Down => SwitchPhase::HookDown,
        })
    }
}

impl Hooked for RollbackOp {
    fn progress(&self) -> &HookProgress {
        &self.hooks
    }
    fn progress_mut(&mut self) -> &mut HookProgress {
        &mut self.hooks
    }
    fn hook_phase(kind: HookKind) -> Option<RollbackPhase> {
        (kind == HookKind::Down).then_some(RollbackPhase::HookDown)
    }
}

/// The apps of `to` with hooks that a move from `from` changes: new, or
/// with another contract (image, hooks, …), or whose unit's file
/// changed. In dependency order.
pub fn changed_apps(from: Option<&Manifest>, to: &Manifest) -> Vec<String> {
    let units_from = from.map(|m| m.units()).unwrap_or_default();
    let units_to = to.units();
    let changed: Vec<String> = to
        .apps
        .iter()
        .filter(|a| !a.hooks.is_empty())
        .filter(|a| {
            let before = from.and_then(|m| m.app(&a.name));
            before != Some(*a) || units_from.get(&a.unit) != units_to.get(&a.unit)
        })
        .map(|a| a.name.clone())
        .collect();
    dependency_order(to, &changed)
}

/// `apps` ordered so that each comes after the apps it requires or
/// wants (in `m`), ties by name. Dependencies that form a cycle (the
/// generator refuses those) end up in name order.
pub fn dependency_order(m: &Manifest, apps: &[String]) -> Vec<String> {
    let deps: BTreeMap<&str, BTreeSet<&str>> = m
        .apps
        .iter()
        .map(|a| {
            let d = a.requires.iter().chain(&a.wants).map(String::as_str);
            (a.name.as_str(), d.collect())
        })
        .collect();
    let mut placed: Vec<&str> = Vec::new();
    let mut left: BTreeSet<&str> = deps.keys().copied().collect();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|a| deps[a].iter().all(|d| !left.contains(d)))
            .collect();
        // A cycle: take the rest in name order.
        let take = if ready.is_empty() {
            left.iter().copied().collect()
        } else {
            ready
        };
        for a in take {
            left.remove(a);
            placed.push(a);
        }
    }
    let wanted: BTreeSet<&str> = apps.iter().map(String::as_str).collect();
    placed
        .into_iter()
        .filter(|a| wanted.contains(a))
        .map(str::to_string)
        .chain(
            apps.iter()
                .filter(|a| !deps.contains_key(a.as_str()))
                .cloned(),
        )
        .collect()
}

/// `<kind>:<app>`, a hook's name in records.
pub fn key(kind: HookKind, app: &str) -> String {
    format!("{}:{app}", kind.as_str())
}

/// Runs the `kind` hooks of `apps` (of `manifest`) in that order,
/// skipping those that already ran to success, each recorded as
/// running first. Returns why one failed.
pub async fn run_kind<P, S, O>(
    rn: &Runner<P, S>,
    r: &mut Record<O>,
    kind: HookKind,
    manifest: &Manifest,
    apps: &[String],
) -> Result<(), String>
where
    P: Send + Sync + 'static,
    S: Systemd + 'static,
    O: Hooked,
{
    let Some(phase) = O::hook_phase(kind) else {
        return Ok(());
    };
    // The revert timer covers the hooks still to run (each at most its
    // timeout, all attempts together) and what follows them: for
    // pre-activate and down hooks an activation and a gate.
    let budget: u64 = apps
        .iter()
        .filter(|a| !r.op.progress().done.contains(&key(kind, a)))
        .filter_map(|a| manifest.app(a).and_then(|x| x.hooks.get(kind)))
        .map(|h| h.timeout_sec.clamp(1, MAX_DEADLINE_SEC).saturating_add(10))
        .fold(0u64, u64::saturating_add);
    let then = match kind {
        HookKind::PreActivate | HookKind::Down => r.deadline_sec,
        _ => 0,
    };
    rn.rearm_for_hooks(r, budget, then).await;
    for app in apps {
        let Some(hook) = manifest.app(app).and_then(|a| a.hooks.get(kind)) else {
            continue;
        };
        let name = key(kind, app);
        if r.op.progress().done.contains(&name) {
            continue;
        }
        // Cancel stops the up hooks between two (never one halfway); the
        // way back's down hooks all run.
        if matches!(kind, HookKind::PreActivate | HookKind::PreCommit) && rn.canceled(r) {
            return Err("canceled".into());
        }
        r.op.progress_mut().running = Some(name.clone());
        rn.save(r, phase, &name).map_err(|e| e.to_string())?;
        run_one(rn, r, kind, app, hook).await?;
        let p = r.op.progress_mut();
        p.running = None;
        p.done.push(name);
        // On disk at once: a finished hook is not run again after a crash.
        rn.store
            .save(r)
            .map_err(|e| format!("cannot persist operation {} after its hook: {e}", r.id))?;
    }
    Ok(())
}

/// The first word of a hook's command line as an absolute path: a bare
/// name is looked up in the agent's `PATH` (systemd wants a path).
fn resolve(argv: &[String]) -> Result<Vec<String>, String> {
    let Some(first) = argv.first() else {
        return Err("the hook has an empty command line".into());
    };
    if first.contains('/') {
        return Ok(argv.to_vec());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(first))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("{first} is not found in the agent's PATH"))?;
    let mut v = argv.to_vec();
    v[0] = found.to_string_lossy().to_string();
    Ok(v)
}

/// Runs one hook to success, or returns why not. Its last output lines
/// are logged with the operation, app and hook kind; a failure keeps
/// them in the record's journal (authorised callers only).
async fn run_one<P, S, O>(
    rn: &Runner<P, S>,
    r: &mut Record<O>,
    kind: HookKind,
    app: &str,
    hook: &Hook,
) -> Result<(), String>
where
    P: Send + Sync + 'static,
    S: Systemd + 'static,
    O: OpKind,
{
    let what = format!("hook {} of {app}", kind.as_str());
    let mut argv = resolve(&hook.argv).map_err(|e| format!("{what} cannot run: {e}"))?;
    if let Some(user) = &rn.hook_user {
        let Some(exe) = &rn.self_exe else {
            return Err(format!(
                "{what} cannot run as {user}: the agent's own binary is not known"
            ));
        };
        argv = crate::runas::wrap(exe, user, &argv);
    }
    let unit = format!("windlass-hook-{}-{}-{app}", r.id, kind.as_str());
    let timeout = Duration::from_secs(hook.timeout_sec.clamp(1, MAX_DEADLINE_SEC));
    let start = Instant::now();
    let mut failures = 0u32;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!(
                "{what} did not succeed within {} s",
                timeout.as_secs()
            ));
        }
        let exit = rn
            .systemd
            .run_hook(&unit, &argv, left)
            .await
            .map_err(|e| format!("{what} cannot run: {e}"))?;
        let ops = rn.store.state_dir().join("operations");
        let name = format!("{}-{app}", kind.as_str());
        crate::bundle::keep_hook_output(&ops, r.id.as_str(), &name, &exit.lines);
        for l in &exit.lines {
            tracing::info!(
                WINDLASS_OPERATION = r.id.as_str(),
                WINDLASS_APP = app,
                WINDLASS_HOOK = kind.as_str(),
                "{}",
                crate::redact::text(l)
            );
        }
        match exit.status {
            Some(0) => return Ok(()),
            Some(HOOK_RETRY_EXIT) if !exit.timed_out => {
                tracing::info!(
                    WINDLASS_OPERATION = r.id.as_str(),
                    WINDLASS_APP = app,
                    WINDLASS_HOOK = kind.as_str(),
                    "{what} asked to run again (exit {HOOK_RETRY_EXIT})"
                );
            }
            _ if failures < hook.retries && !exit.timed_out => {
                failures += 1;
                tracing::warn!(
                    WINDLASS_OPERATION = r.id.as_str(),
                    WINDLASS_APP = app,
                    WINDLASS_HOOK = kind.as_str(),
                    "{what} failed ({}), attempt {} of {}",
                    exit.describe(left),
                    failures + 1,
                    hook.retries + 1
                );
            }
            _ => {
                r.journal = std::iter::once(format!("--- last output of {what} ---"))
                    .chain(exit.lines.iter().cloned())
                    .collect();
                let mut msg = format!("{what} failed: {}", exit.describe(left));
                if failures > 0 {
                    msg += &format!(" (after {} attempts)", failures + 1);
                }
                return Err(msg);
            }
        }
        let pause = rn.poll.max(Duration::from_millis(10)).min(left);
        tokio::time::sleep(pause).await;
    }
}

/// The `down` hooks a way back from `to` runs: those of the apps one of
/// whose up hooks (`pre_activate`, `pre_commit`) ran, to its end or
/// interrupted or failed (a half-applied migration is what a `down` hook
/// most needs to undo; hooks are idempotent), in reverse dependency
/// order. An app none of whose up hooks ran has nothing to undo.
pub fn down_apps(progress: &HookProgress, to: &Manifest) -> Vec<String> {
    let started = |app: &str| {
        let up = [HookKind::PreActivate, HookKind::PreCommit].map(|k| key(k, app));
        up.iter()
            .any(|k| progress.done.contains(k) || progress.running.as_deref() == Some(k.as_str()))
    };
    progress
        .apps
        .iter()
        .rev()
        .filter(|a| to.app(a).is_some_and(|x| x.hooks.down.is_some()))
        .filter(|a| started(a))
        .cloned()
        .collect()
}
