//! Restore: the running generation put back where the host drifted from
//! it. `recorded` (the plan fixed) → `rewriting` (owned files written
//! back from the generation's pristine copies; drop-ins, masks and
//! overriding unit files set aside, kept) → `reloading` → `restarting`
//! (only the affected units) → `health-gate` → committed, or failed
//! where it stands (nothing is rolled back: the generation does not
//! change, and what was set aside is kept under `taken-over/<op>/`).
//!
//! Recovery after a crash: `recorded` changed nothing (canceled: the
//! drift task finds the drift again); `rewriting` and `reloading` run
//! again from their start (each step is idempotent: a file already right
//! is left, a file already set aside is done); `restarting` and
//! `health-gate` restart the units again and gate them afresh.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::runner::{OpError, Runner};
use super::steps;
use crate::drift::owned::{self, Owned};
use crate::drift::scan::{self, Baseline};
use crate::drift::{Coverage, DriftKind, Finding};
use crate::platform::Platform;
use crate::record::{Outcome, Record, RestoreOp, RestorePhase, RestorePlan};
use crate::systemd::{Systemd, Verb};

type R<P, S> = Arc<Runner<P, S>>;

/// What a restore is asked to cover.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only this app's drift (what apps share is restored only when no
    /// app is named).
    pub app: Option<String>,
    /// Started by the drift task: only drift whose policy is `restore`.
    pub automatic: bool,
}

/// The plan for `findings` of `owned`: what to write back, set aside,
/// reload and restart. Only what is under one of the admin directories
/// (below `root`) is ever set aside.
pub fn plan(findings: &[Finding], owned: &Owned, cov: &Coverage, root: &Path) -> RestorePlan {
    let admin: Vec<PathBuf> = cov.admin_dirs.iter().map(|d| root.join(d)).collect();
    let in_admin = |p: &Path| admin.iter().any(|a| p.starts_with(a));
    let mut rewrite = BTreeSet::new();
    let mut aside = BTreeSet::new();
    let mut restart = BTreeSet::new();
    let mut apps = BTreeSet::new();
    let mut reload = false;
    let mut described = Vec::new();
    for f in findings {
        let mut acted = false;
        let owned_file = f
            .path
            .as_ref()
            .and_then(|p| owned.files.iter().find(|o| &o.path == p));
        match (f.kind, owned_file, &f.path) {
            (DriftKind::Modified | DriftKind::Removed, Some(o), _) => {
                rewrite.insert((o.rel.clone(), o.path.clone()));
                if o.unit.is_some() {
                    reload = true;
                }
                acted = true;
            }
            (DriftKind::DropInAdded | DriftKind::Masked | DriftKind::Modified, None, Some(p))
                if in_admin(p) =>
            {
                aside.insert(p.clone());
                reload = true;
                acted = true;
            }
            (DriftKind::Modified | DriftKind::NotLoaded | DriftKind::Masked, None, None) => {
                // Changed on disk since the last reload, or not loaded:
                // a reload (after the rewrites) settles it.
                reload = true;
                acted = true;
            }
            (DriftKind::Image, _, _) => acted = true,
            _ => {}
        }
        if !acted {
            continue;
        }
        described.push(format!(
            "{} {}: {}",
            f.kind.as_str(),
            f.unit
                .clone()
                .or_else(|| f.path.as_ref().map(|p| p.display().to_string()))
                .unwrap_or_default(),
            f.detail
        ));
        if let Some(a) = &f.app {
            apps.insert(a.clone());
        }
        // The app service or timer whose definition or image drifted
        // runs again. A job's service is left to its timer (restarting
        // it would run the job), a network's or volume's to the next
        // start (restarting it would restart every app that requires it).
        if let Some(u) = &f.unit
            && (owned.services.contains(u) || u.ends_with(".timer"))
        {
            restart.insert(u.clone());
        }
    }
    RestorePlan {
        findings: described,
        rewrite: rewrite.into_iter().collect(),
        set_aside: aside.into_iter().collect(),
        reload,
        restart: restart.into_iter().collect(),
        apps: apps.into_iter().collect(),
    }
}

/// Scans the host now, and returns the plan for the drift `o` covers.
async fn plan_now<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    root: &Path,
    o: &RestoreOptions,
) -> Result<(crate::contract::GenerationId, RestorePlan), OpError> {
    let p = &rn.platform;
    let cov = p.drift_coverage();
    if !cov.restore {
        return Err(OpError::InvalidArgument(format!(
            "drift on {} is restored by rebuilding the system, not by the agent",
            p.name()
        )));
    }
    let g = p
        .running()
        .ok_or_else(|| OpError::NotFound("no generation runs: nothing to restore".into()))?;
    let m = p
        .manifest(g)
        .ok_or_else(|| OpError::NotFound(format!("generation {g} has no manifest")))?;
    if let Some(a) = &o.app
        && m.app(a).is_none()
    {
        return Err(OpError::NotFound(format!(
            "generation {g} has no app {a:?}"
        )));
    }
    let owned = owned::build(g, &m, &cov, p.drift_files(g), p.drift_links(g));
    let mut found = {
        let (ow, cv, rt) = (owned.clone(), cov.clone(), root.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let mut v = scan::files(&ow);
            v.extend(scan::admin(&ow, &cv, &rt));
            v
        })
        .await
        .map_err(|e| OpError::Failed(e.to_string()))?
    };
    found.extend(
        scan::props(&rn.systemd, &owned, &cov, root, scan::PROBE_TIMEOUT)
            .await
            .findings,
    );
    let baseline = Baseline::load(&rn.store.state_dir());
    let baseline = if baseline.generation == Some(g) {
        baseline
    } else {
        Baseline::default()
    };
    let (images, _) = scan::images(&rn.systemd, &owned, &baseline, None, scan::PROBE_TIMEOUT).await;
    found.extend(images.into_values().flatten());
    let found: Vec<Finding> = owned
        .unignored(crate::drift::compare::merge(found))
        .into_iter()
        .filter(|f| match &o.app {
            Some(a) => f.app.as_deref() == Some(a),
            None => true,
        })
        .filter(|f| !o.automatic || owned.policy_for(f.app.as_deref()).restore)
        .collect();
    let plan = plan(&found, &owned, &cov, root);
    if plan.is_empty() {
        return Err(OpError::NotFound(format!(
            "nothing to restore: the host matches generation {g}{}",
            o.app
                .as_ref()
                .map(|a| format!(" for app {a}"))
                .unwrap_or_default()
        )));
    }
    Ok((g, plan))
}

/// Starts a restore of what has drifted now.
pub async fn start<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    root: &Path,
    o: RestoreOptions,
) -> Result<Record<RestoreOp>, OpError> {
    rn.refuse_while_recovering()?;
    if let Some(id) = rn.active() {
        return Err(OpError::Busy(id));
    }
    let (g, plan) = plan_now(rn, root, &o).await?;
    let mut r = rn.record(RestoreOp {
        phase: RestorePhase::Recorded,
        generation: g,
        automatic: o.automatic,
        plan: Box::new(plan),
    });
    r.deadline_sec = rn
        .platform
        .manifest(g)
        .map(|m| steps::deadline_for(&m, &r.op.plan.restart))
        .unwrap_or(300);
    let r = rn.begin(r)?;
    tracing::warn!(
        WINDLASS_OPERATION = r.id.as_str(),
        WINDLASS_KIND = "restore",
        "restoring drift of generation {g}: {}",
        r.op.plan.findings.join("; ")
    );
    tokio::spawn(rewrite(rn.clone(), r.clone()));
    Ok(r)
}

async fn rewrite<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<RestoreOp>,
) -> Record<RestoreOp> {
    if let Err(e) = rn.save(&mut r, RestorePhase::Rewriting, "") {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    let g = r.op.generation;
    for (rel, path) in r.op.plan.rewrite.clone() {
        let (rn2, rel2) = (rn.clone(), rel.clone());
        let pristine = tokio::task::spawn_blocking(move || rn2.platform.pristine(g, &rel2))
            .await
            .unwrap_or_else(|e| Err(crate::platform::PlatformError::Failed(e.to_string())));
        let res = match pristine {
            Ok(bytes) => {
                let same = std::fs::read(&path).is_ok_and(|now| now == bytes);
                if same {
                    Ok(())
                } else {
                    if let Some(d) = path.parent() {
                        let _ = std::fs::create_dir_all(d);
                    }
                    crate::durable::write_atomic_mode(&path, &bytes, 0o644)
                        .map_err(|e| format!("writing {}: {e}", path.display()))
                }
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = res {
            return rn.end(r, Outcome::Failed, e, None).await;
        }
    }
    let aside = r.op.plan.set_aside.clone();
    if let Err(e) = rn.platform.set_aside(r.id.as_str(), &aside) {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    reload(rn, r).await
}

async fn reload<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<RestoreOp>,
) -> Record<RestoreOp> {
    if r.op.plan.reload {
        if let Err(e) = rn.save(&mut r, RestorePhase::Reloading, "") {
            return rn.end(r, Outcome::Failed, e.to_string(), None).await;
        }
        if let Err(e) = rn.systemd.reload().await {
            return rn
                .end(r, Outcome::Failed, format!("daemon-reload: {e}"), None)
                .await;
        }
    }
    restart(rn, r).await
}

async fn restart<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<RestoreOp>,
) -> Record<RestoreOp> {
    let units = r.op.plan.restart.clone();
    if let Err(e) = rn.save(&mut r, RestorePhase::Restarting, &units.join(" ")) {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    for u in &units {
        // A unit that failed stays failed through a restart job.
        let _ = rn.systemd.reset_failed(u).await;
        if let Err(e) = rn.systemd.job(Verb::Restart, u).await {
            return rn
                .end(r, Outcome::Failed, format!("restarting {u}: {e}"), None)
                .await;
        }
    }
    r.changed_units = units;
    gate(rn, r).await
}

async fn gate<P: Platform, S: Systemd + 'static>(
    rn: R<P, S>,
    mut r: Record<RestoreOp>,
) -> Record<RestoreOp> {
    if let Err(e) = rn.save(&mut r, RestorePhase::HealthGate, "") {
        return rn.end(r, Outcome::Failed, e.to_string(), None).await;
    }
    let manifest = rn.platform.manifest(r.op.generation);
    let g = steps::generation_gate(manifest.as_ref(), &r.changed_units, r.deadline_sec, rn.poll);
    if let Err(f) = steps::wait_cancellable(&rn, &r, &g).await {
        let (outcome, msg) = steps::explain(&rn, &mut r, f).await;
        let outcome = match outcome {
            Outcome::Canceled => Outcome::Canceled,
            _ => Outcome::Failed,
        };
        return rn.end(r, outcome, msg, None).await;
    }
    rn.end(r, Outcome::Committed, String::new(), None).await
}

/// Resolves a restore found unfinished at start.
pub async fn recover<P: Platform, S: Systemd + 'static>(
    rn: &R<P, S>,
    r: Record<RestoreOp>,
    why: String,
) -> Record<RestoreOp> {
    match r.phase() {
        RestorePhase::Recorded => {
            let msg = format!("{why}; nothing was changed");
            rn.end(r, Outcome::Canceled, msg, None).await
        }
        RestorePhase::Rewriting => rewrite(rn.clone(), r).await,
        RestorePhase::Reloading => reload(rn.clone(), r).await,
        // The gate's clock starts over, and what it waits for starts
        // over with it: the units are restarted again.
        RestorePhase::Restarting | RestorePhase::HealthGate => restart(rn.clone(), r).await,
        RestorePhase::Finished => {
            let msg = format!("{why}; finished without a result");
            rn.end(r, Outcome::Failed, msg, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::compare::OwnedFile;

    fn f(kind: DriftKind, app: &str, unit: &str, path: Option<&str>) -> Finding {
        Finding {
            kind,
            app: Some(app.into()),
            unit: Some(unit.into()),
            path: path.map(PathBuf::from),
            detail: "x".into(),
        }
    }

    fn owned() -> Owned {
        Owned {
            services: ["web.service", "db.service"].map(String::from).into(),
            files: vec![OwnedFile {
                path: "/g/1/quadlet/web.container".into(),
                rel: "quadlet/web.container".into(),
                sha256: "aa".into(),
                unit: Some("web.service".into()),
                app: Some("web".into()),
            }],
            ..Default::default()
        }
    }

    fn cov() -> Coverage {
        Coverage {
            admin_dirs: crate::drift::compare::ADMIN_DIRS.to_vec(),
            restore: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_edited_file_is_rewritten_and_only_its_unit_restarted() {
        let p = plan(
            &[f(
                DriftKind::Modified,
                "web",
                "web.service",
                Some("/g/1/quadlet/web.container"),
            )],
            &owned(),
            &cov(),
            Path::new("/"),
        );
        assert_eq!(
            p.rewrite,
            [(
                "quadlet/web.container".to_string(),
                PathBuf::from("/g/1/quadlet/web.container")
            )]
        );
        assert!(p.reload);
        assert_eq!(p.restart, ["web.service"]);
        assert_eq!(p.apps, ["web"]);
        assert!(p.set_aside.is_empty());
    }

    #[test]
    fn drop_ins_and_masks_are_set_aside_only_under_the_admin_directories() {
        let p = plan(
            &[
                f(
                    DriftKind::DropInAdded,
                    "db",
                    "db.service",
                    Some("/r/etc/systemd/system/db.service.d/override.conf"),
                ),
                f(
                    DriftKind::Masked,
                    "web",
                    "web.service",
                    Some("/r/run/systemd/system/web.service"),
                ),
                // Not under the admin directories: left alone.
                f(
                    DriftKind::DropInAdded,
                    "x",
                    "x.service",
                    Some("/usr/lib/systemd/system/x.service.d/a.conf"),
                ),
                // A job's service: reloaded, never run by a restore.
                f(
                    DriftKind::DropInAdded,
                    "web",
                    "web-backup.service",
                    Some("/r/etc/systemd/system/web-backup.service.d/a.conf"),
                ),
            ],
            &owned(),
            &cov(),
            Path::new("/r"),
        );
        assert_eq!(
            p.set_aside,
            [
                PathBuf::from("/r/etc/systemd/system/db.service.d/override.conf"),
                PathBuf::from("/r/etc/systemd/system/web-backup.service.d/a.conf"),
                PathBuf::from("/r/run/systemd/system/web.service")
            ]
        );
        assert_eq!(p.restart, ["db.service", "web.service"]);
        assert!(p.rewrite.is_empty());
    }

    #[test]
    fn an_image_drift_restarts_its_unit_and_nothing_else() {
        let p = plan(
            &[f(DriftKind::Image, "web", "web.service", None)],
            &owned(),
            &cov(),
            Path::new("/"),
        );
        assert_eq!(p.restart, ["web.service"]);
        assert!(!p.reload && p.rewrite.is_empty() && p.set_aside.is_empty());
    }
}
