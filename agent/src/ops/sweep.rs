//! Sweeps: the job a systemd timer fires to keep apps on their newest good
//! release (SPEC §3.2).
//!
//! For every app of the running generation with `release.track = "semver"`
//! (or the one app asked for), the registry's tags are listed (OCI
//! distribution API, [`windlass_net::registry`]) and the newest admitted
//! release is compared with the app's *canonical* release: the last one a
//! sweep promoted (`<state>/releases/<app>.json`, written only when the
//! switch to it committed), or, before any promotion, the release tag the
//! app runs. Not newer → `skipped`, whatever other tags did. Newer → on the
//! native platform a generation is derived from the running one with only
//! that app's image changed (its `Image=`, and its hooks that ran the old
//! image), staged, and switched to with the normal
//! health gate, as a switch operation inside the sweep; a commit promotes
//! the release, a rollback records it as failed (it is not tried again; a
//! newer release is) and the canonical stays. On NixOS and Guix the agent
//! cannot build a system, so the sweep reports the release to rebuild with.
//!
//! A sweep started while another operation is in flight finishes at once
//! as `skipped` (busy). Every run appends one JSON line per app to
//! `<state>/sweeps.jsonl` and logs it to the journal with
//! `WINDLASS_OPERATION` and `WINDLASS_APP`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use windlass_net::registry::{ImageName, RegistryClient, RegistryOptions, TagCache};
use windlass_net::release::{self, Decision, Policy};
use windlass_net::semver::{Version, VersionReq};

use super::runner::{OpError, Runner};
use super::switch::{self, SwitchOptions};
use crate::contract::{self, GenerationId, MANIFEST};
use crate::durable::{append_line, now, write_atomic};
use crate::platform::Platform;
use crate::record::{Confirm, OpId, Outcome, Record, SweepOp, SweepPhase, SweepResult};
use crate::systemd::Systemd;

/// Where sweeps look and what they write.
#[derive(Debug, Clone, Default)]
pub struct SweepConfig {
    /// Registry hosts (`host[:port]` as in image names) spoken to over
    /// plain HTTP: a registry on loopback in tests. Empty in production.
    pub insecure_registries: Vec<String>,
    /// Tries per registry request (0: the client's default).
    pub registry_attempts: u32,
}

#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Only this app.
    pub app: Option<String>,
    /// Decide and report; change nothing.
    pub dry_run: bool,
    /// The caller's request id (see [`Record::request`]); a sweep
    /// skipped because another operation was in flight keeps it too.
    pub request: Option<String>,
    /// With `app`: move to exactly this release tag (a fleet rollout
    /// decided it once for every host) instead of the newest one. The
    /// same rules hold: it must be listed by the registry, admitted by
    /// the app's policy, not failed here before, and newer than the
    /// canonical release; otherwise the app is skipped, saying which.
    pub release: Option<String>,
    /// How the sweep's switch commits: `manual` waits for `Confirm` of
    /// the sweep (or of that switch), as a fleet rollout's switches do.
    pub confirm: Confirm,
}

/// The promoted release of one app and the releases that failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Canonical {
    pub app: String,
    /// The promoted tag; `None` until a sweep promotes one.
    pub tag: Option<String>,
    pub image: Option<String>,
    pub promoted_at: Option<u64>,
    /// The switch that committed it.
    pub operation: Option<OpId>,
    #[serde(default)]
    pub failed: Vec<FailedRelease>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedRelease {
    pub tag: String,
    pub operation: Option<OpId>,
    pub at: u64,
    pub reason: String,
}

fn releases_dir(state: &Path) -> PathBuf {
    state.join("releases")
}

pub fn results_log(state: &Path) -> PathBuf {
    state.join("sweeps.jsonl")
}

fn cache_path(state: &Path) -> PathBuf {
    state.join("registry-cache.json")
}

impl Canonical {
    pub fn load(state: &Path, app: &str) -> Canonical {
        std::fs::read(releases_dir(state).join(format!("{app}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| Canonical {
                app: app.to_string(),
                ..Default::default()
            })
    }

    fn save(&self, state: &Path) -> std::io::Result<()> {
        let mut b = serde_json::to_vec_pretty(self).expect("serializes");
        b.push(b'\n');
        write_atomic(&releases_dir(state).join(format!("{}.json", self.app)), &b)
    }
}

/// What discovery found for one app.
struct Found {
    app: contract::App,
    image: Option<ImageName>,
    canonical: Canonical,
    /// The canonical release as a version (promoted, or the running tag).
    current: Option<(String, Version)>,
    decision: Result<Decision, String>,
    requests: u32,
    started_at: u64,
}

/// What a sweep runs with: the runner and where registries are.
pub struct Cx<P, S> {
    pub rn: Arc<Runner<P, S>>,
    pub config: Arc<SweepConfig>,
}

impl<P, S> Clone for Cx<P, S> {
    fn clone(&self) -> Self {
        Cx {
            rn: self.rn.clone(),
            config: self.config.clone(),
        }
    }
}

type Rec = Record<SweepOp>;

impl<P: Platform, S: Systemd + 'static> Cx<P, S> {
    /// Starts a sweep; returns its record. When another operation is in
    /// flight the sweep is recorded as finished, `skipped` (busy).
    pub fn start(&self, opts: SweepOptions) -> Result<Rec, OpError> {
        if opts.release.is_some() && opts.app.is_none() {
            return Err(OpError::InvalidArgument(
                "release needs app: a release tag belongs to one app".into(),
            ));
        }
        let running = self.rn.platform.running();
        let manifest = running.and_then(|g| self.rn.platform.manifest(g));
        if let Some(app) = &opts.app {
            let known = manifest
                .as_ref()
                .is_some_and(|m| m.apps.iter().any(|a| &a.name == app));
            if !known {
                return Err(OpError::NotFound(format!(
                    "no app {app:?} in the running generation"
                )));
            }
        }
        let request = opts.request.clone();
        // The request is checked and indexed under one lock with the
        // sweep recorded, run or skipped.
        self.rn.under_request(request.as_deref(), move || {
            let mut r = self.rn.record(SweepOp {
                phase: SweepPhase::Recorded,
                from_generation: running,
                to_generation: running,
                results: Vec::new(),
            });
            r.request = opts.request.clone();
            let begun = self
                .rn
                .refuse_while_recovering()
                .and_then(|()| self.rn.begin_unindexed(r));
            match begun {
                Ok(r) => {
                    let me = self.clone();
                    let rec = r.clone();
                    tokio::spawn(async move { me.run(rec, opts).await });
                    Ok(r)
                }
                Err(OpError::Busy(other)) => Ok(self.skipped_busy(running, &other, &opts)),
                Err(e) => Err(e),
            }
        })
    }

    /// Records a sweep that did not run because `other` is in flight.
    fn skipped_busy(
        &self,
        running: Option<GenerationId>,
        other: &OpId,
        opts: &SweepOptions,
    ) -> Rec {
        let t = now();
        let reason = format!("busy: operation {other} is in flight");
        let mut r = self.rn.record(SweepOp {
            phase: SweepPhase::Finished,
            from_generation: running,
            to_generation: running,
            results: Vec::new(),
        });
        r.result = Some(Outcome::Skipped);
        r.error = reason.clone();
        r.request = opts.request.clone();
        r.finished_at = Some(t);
        r.history = vec![(SweepPhase::Finished.to_string(), t)];
        let apps = running
            .and_then(|g| self.rn.platform.manifest(g))
            .map(|m| m.apps)
            .unwrap_or_default();
        for a in apps.iter().filter(|a| tracked(a)) {
            if opts.app.as_ref().is_some_and(|x| *x != a.name) {
                continue;
            }
            let mut line = self.line(&r, &a.name, &a.image, opts, t);
            line.reason = reason.clone();
            line.finished_at = t;
            self.log_result(&mut r, line);
        }
        if let Err(e) = self.rn.store.save(&r) {
            tracing::error!("cannot persist sweep {}: {e}", r.id);
        }
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            result = "skipped",
            "sweep skipped: {reason}"
        );
        self.rn.notify.started(&r.id);
        self.rn.notify.finished(&r.id, Outcome::Skipped, &r.error);
        r
    }

    /// A result line for `app`, skipped until decided.
    fn line(
        &self,
        r: &Rec,
        app: &str,
        image: &str,
        opts: &SweepOptions,
        started_at: u64,
    ) -> SweepResult {
        SweepResult {
            sweep: r.id.clone(),
            app: app.to_string(),
            image: image.to_string(),
            from: None,
            to: None,
            result: Outcome::Skipped,
            reason: String::new(),
            operation: None,
            generation: None,
            dry_run: opts.dry_run,
            registry_requests: 0,
            started_at,
            finished_at: 0,
        }
    }

    fn log_result(&self, r: &mut Rec, mut line: SweepResult) {
        line.reason = crate::redact::text(&line.reason);
        let text = serde_json::to_string(&line).expect("serializes");
        if let Err(e) = append_line(&results_log(&self.rn.store.state_dir()), &text) {
            tracing::error!("cannot append to the sweep results log: {e}");
        }
        tracing::info!(
            WINDLASS_OPERATION = line.sweep.as_str(),
            WINDLASS_APP = line.app.as_str(),
            WINDLASS_GENERATION = line.generation.map(|g| g.0),
            from = line.from.as_deref().unwrap_or(""),
            to = line.to.as_deref().unwrap_or(""),
            result = line.result.as_str(),
            reason = line.reason.as_str(),
            "sweep result"
        );
        r.op.results.push(line);
    }

    fn registry(&self) -> RegistryClient {
        // Read at every sweep: a `podman login` between sweeps counts.
        let credentials = windlass_net::auth::Credentials::from_env();
        for p in credentials.problems() {
            tracing::warn!("registry credentials: skipped {p}");
        }
        let mut o = RegistryOptions {
            insecure_hosts: self.config.insecure_registries.clone(),
            credentials: std::sync::Arc::new(credentials),
            ..Default::default()
        };
        if self.config.registry_attempts > 0 {
            o.attempts = self.config.registry_attempts;
        }
        let cache: TagCache = std::fs::read(cache_path(&self.rn.store.state_dir()))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        RegistryClient::new(self.rn.http.clone(), o).with_cache(cache)
    }

    async fn run(self, mut r: Rec, opts: SweepOptions) -> Rec {
        let running = r.op.from_generation;
        let manifest = running.and_then(|g| self.rn.platform.manifest(g));
        let Some(manifest) = manifest else {
            let msg = "no running generation with a windlass-generation.json".into();
            return self.rn.end(r, Outcome::Skipped, msg, None).await;
        };
        let apps: Vec<contract::App> = manifest
            .apps
            .into_iter()
            .filter(tracked)
            .filter(|a| opts.app.as_ref().is_none_or(|x| *x == a.name))
            .collect();
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        if let Err(e) = self
            .rn
            .save(&mut r, SweepPhase::Discovering, &names.join(" "))
        {
            return self.rn.end(r, Outcome::Failed, e.to_string(), None).await;
        }
        let state = self.rn.store.state_dir();
        let registry = Arc::new(self.registry());
        // Discovery, a few apps at a time.
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, app) in apps.into_iter().enumerate() {
            let (registry, sem, state) = (registry.clone(), sem.clone(), state.clone());
            let only = opts.release.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire().await;
                (i, discover(&registry, &state, app, only.as_deref()).await)
            });
        }
        let mut found: Vec<(usize, Found)> = tasks.join_all().await;
        found.sort_by_key(|(i, _)| *i);
        if let Ok(b) = serde_json::to_vec(&registry.cache()) {
            let _ = write_atomic(&cache_path(&state), &b);
        }
        let mut counts = std::collections::BTreeMap::<Outcome, usize>::new();
        for (_, f) in found {
            let line = self.settle(&mut r, f, &opts).await;
            *counts.entry(line.result).or_default() += 1;
            self.log_result(&mut r, line);
            if let Err(e) = self.rn.store.save(&r) {
                tracing::error!("cannot persist sweep {}: {e}", r.id);
            }
        }
        r.op.to_generation = self.rn.platform.running();
        let n = |o: Outcome| counts.get(&o).copied().unwrap_or(0);
        let outcome = [
            Outcome::Failed,
            Outcome::RolledBack,
            Outcome::Canceled,
            Outcome::Committed,
        ]
        .into_iter()
        .find(|o| n(*o) > 0)
        .unwrap_or(Outcome::Skipped);
        let error = match outcome {
            Outcome::Committed | Outcome::Skipped => String::new(),
            _ => format!(
                "{} promoted, {} rolled back, {} canceled, {} failed",
                n(Outcome::Committed),
                n(Outcome::RolledBack),
                n(Outcome::Canceled),
                n(Outcome::Failed)
            ),
        };
        self.rn.end(r, outcome, error, None).await
    }

    /// Acts on one app's decision; returns its result line.
    async fn settle(&self, r: &mut Rec, f: Found, opts: &SweepOptions) -> SweepResult {
        let mut line = self.line(r, &f.app.name, &f.app.image, opts, f.started_at);
        line.from = f.current.as_ref().map(|(t, _)| t.clone());
        line.registry_requests = f.requests;
        let decision = match f.decision {
            Ok(d) => d,
            Err(e) => {
                line.result = Outcome::Failed;
                line.reason = e;
                line.finished_at = now();
                return line;
            }
        };
        match decision {
            Decision::Pinned => line.reason = "pinned by digest".into(),
            Decision::NoRelease => {
                line.reason = match &opts.release {
                    Some(t) => format!(
                        "release {t} is not listed by the registry, not admitted by the \
                         app's policy, or failed here before"
                    ),
                    None => "no release tag (semver) admitted by the app's policy".into(),
                }
            }
            Decision::UpToDate { newest, .. } => {
                line.reason = format!("no new release (newest is {newest})");
            }
            Decision::Upgrade { tag, .. } => {
                line.to = Some(tag.clone());
                if opts.dry_run {
                    line.reason = format!("dry run: would upgrade to {tag}");
                } else if let Some(image) = &f.image {
                    self.upgrade(r, &f.app, image, f.canonical, &tag, opts, &mut line)
                        .await;
                }
            }
        }
        line.finished_at = now();
        line
    }

    /// Derives and stages the generation that runs `image` for `app`.
    fn derive_generation(&self, r: &Rec, app: &str, image: &str) -> Result<GenerationId, String> {
        let base = self
            .rn
            .platform
            .running()
            .ok_or_else(|| "no running generation".to_string())?;
        let Some(tree) = self.rn.platform.generation_tree(base) else {
            return Err(format!(
                "on {} the agent does not build generations",
                self.rn.platform.name()
            ));
        };
        let tmp = self
            .rn
            .store
            .state_dir()
            .join(format!(".sweep-{}-{app}", r.id));
        let staged = derive(&tree, &tmp, app, image)
            .map_err(|e| format!("cannot derive a generation from {base}: {e}"))
            .and_then(|()| {
                self.rn
                    .platform
                    .stage(&tmp)
                    .map_err(|e| format!("cannot stage the derived generation: {e}"))
            });
        let _ = std::fs::remove_dir_all(&tmp);
        staged
    }

    /// Switches `app` to `tag` and promotes it when the switch commits.
    #[allow(clippy::too_many_arguments)]
    async fn upgrade(
        &self,
        r: &mut Rec,
        app: &contract::App,
        image: &ImageName,
        mut canonical: Canonical,
        tag: &str,
        opts: &SweepOptions,
        line: &mut SweepResult,
    ) {
        let new_image = format!("{}/{}:{tag}", image.host, image.repository);
        let p = &self.rn.platform;
        if p.running().and_then(|g| p.generation_tree(g)).is_none() {
            line.reason = format!(
                "release {tag} available: rebuild the system with image {new_image} \
                 (on {} the agent does not build generations)",
                self.rn.platform.name()
            );
            return;
        }
        let _ = self
            .rn
            .save(r, SweepPhase::Upgrading, &format!("{} → {tag}", app.name));
        let generation = match self.derive_generation(r, &app.name, &new_image) {
            Ok(g) => g,
            Err(e) => {
                line.result = Outcome::Failed;
                line.reason = e;
                return;
            }
        };
        line.generation = Some(generation);
        let (outcome, error) = match self.switch_to(r, generation, opts.confirm, line).await {
            Ok(x) => x,
            Err(e) => {
                line.result = Outcome::Failed;
                line.reason = e;
                return;
            }
        };
        let state = self.rn.store.state_dir();
        if outcome == Outcome::Committed {
            canonical.tag = Some(tag.to_string());
            canonical.image = Some(new_image.clone());
            canonical.promoted_at = Some(now());
            canonical.operation = line.operation.clone();
            match canonical.save(&state) {
                Ok(()) => {
                    line.result = Outcome::Committed;
                    if line.reason.is_empty() {
                        line.reason = format!("promoted {tag}");
                    } else {
                        line.reason.push_str(&format!("; promoted {tag}"));
                    }
                }
                Err(e) => {
                    line.result = Outcome::Failed;
                    line.reason = format!("switched, but cannot record the promotion: {e}");
                }
            }
            return;
        }
        let first = error.lines().next().unwrap_or("").to_string();
        line.result = outcome;
        if outcome == Outcome::Canceled {
            // Canceled says nothing about the release: it may be tried again.
            line.reason = format!("the switch to {tag} was canceled");
            return;
        }
        line.reason = format!("release {tag} is red: {first}");
        canonical.failed.push(FailedRelease {
            tag: tag.to_string(),
            operation: line.operation.clone(),
            at: now(),
            reason: first,
        });
        if let Err(e) = canonical.save(&state) {
            tracing::error!("cannot record the failed release of {}: {e}", app.name);
        }
    }

    /// Switches to `generation` inside the sweep; returns how it ended.
    async fn switch_to(
        &self,
        r: &Rec,
        generation: GenerationId,
        confirm: Confirm,
        line: &mut SweepResult,
    ) -> Result<(Outcome, String), String> {
        // The same release may already run and be committed (a sweep
        // interrupted between the commit and the promotion).
        let p = &self.rn.platform;
        if p.running() == Some(generation) && p.selected() == Some(generation) {
            line.reason = format!("generation {generation} already runs it");
            return Ok((Outcome::Committed, String::new()));
        }
        let o = SwitchOptions {
            confirm,
            ..Default::default()
        };
        let sw = switch::begin(&self.rn, generation, o, Some(&r.id))
            .map_err(|e| format!("cannot switch to generation {generation}: {e}"))?;
        line.operation = Some(sw.id.clone());
        let done = switch::run(self.rn.clone(), sw).await;
        done.result
            .map(|o| (o, done.error))
            .ok_or_else(|| "the switch left no result".to_string())
    }

    /// Resolves a sweep found unfinished at start: its switch, if one was
    /// under way, is recovered on its own record.
    pub async fn recover(&self, r: Rec, why: String) -> Rec {
        match r.phase() {
            SweepPhase::Recorded => {
                let msg = format!("{why}; nothing was changed");
                self.rn.end(r, Outcome::Canceled, msg, None).await
            }
            SweepPhase::Discovering | SweepPhase::Upgrading | SweepPhase::Finished => {
                self.rn.end(r, Outcome::Failed, why, None).await
            }
        }
    }
}

fn tracked(a: &contract::App) -> bool {
    a.release.track == contract::Track::Semver
}

/// Lists `app`'s tags and decides; with `only`, that tag is the only
/// candidate.
async fn discover(
    registry: &RegistryClient,
    state: &Path,
    app: contract::App,
    only: Option<&str>,
) -> Found {
    let started_at = now();
    let canonical = Canonical::load(state, &app.name);
    let parsed = ImageName::parse(&app.image);
    let mut found = Found {
        current: None,
        image: parsed.as_ref().ok().cloned(),
        canonical,
        decision: Err(String::new()),
        requests: 0,
        started_at,
        app,
    };
    let image = match parsed {
        Ok(i) => i,
        Err(e) => {
            found.decision = Err(e.to_string());
            return found;
        }
    };
    found.current = match &found.canonical.tag {
        Some(t) => release::parse(t).map(|v| (t.clone(), v)),
        None => image
            .tag
            .as_ref()
            .and_then(|t| release::parse(t).map(|v| (t.clone(), v))),
    };
    let rel = found.app.release.clone();
    let constraint = match rel.constraint.as_deref().map(VersionReq::parse) {
        Some(Err(e)) => {
            found.decision = Err(format!("release.constraint: {e}"));
            return found;
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let policy = Policy {
        allow_prerelease: rel.allow_prerelease,
        constraint,
    };
    if image.digest.is_some() {
        found.decision = Ok(Decision::Pinned);
        return found;
    }
    match registry.list_tags_with_stats(&image).await {
        Ok((tags, stats)) => {
            found.requests = stats.pages + stats.token_requests + stats.retries;
            let failed: Vec<&str> = found
                .canonical
                .failed
                .iter()
                .map(|f| f.tag.as_str())
                .collect();
            let candidates = tags
                .iter()
                .map(String::as_str)
                .filter(|t| only.is_none_or(|o| o == *t))
                .filter(|t| !failed.contains(t));
            found.decision = Ok(release::decide(
                candidates,
                &policy,
                found.current.as_ref().map(|(_, v)| v),
                false,
            ));
        }
        Err(e) => found.decision = Err(e.to_string()),
    }
    found
}

/// Writes into `out` the generation `base` with app `app`'s image
/// replaced by `image`: the `Image=` key of its Quadlet unit (a typed edit
/// of the parsed unit, nothing else in it changes) and the app's entry in
/// `windlass-generation.json` (its `image`, and the image word of each of
/// its hooks that ran the old image), with the unit's sha256 updated.
/// Other files are carried unchanged (the native platform runs the
/// Quadlet and systemd units).
pub fn derive(base: &Path, out: &Path, app: &str, image: &str) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(out);
    let mut m = contract::Manifest::read(base).map_err(|e| e.to_string())?;
    let unit_file = format!("quadlet/{app}.container");
    let mut replaced = false;
    for f in m.files.iter_mut() {
        let path = f.path.clone();
        if path.split('/').any(|c| c == ".." || c.is_empty()) || path.starts_with('/') {
            return Err(format!("unsafe path {path:?} in {MANIFEST}"));
        }
        let mut bytes = std::fs::read(base.join(&path)).map_err(|e| format!("{path}: {e}"))?;
        if path == unit_file {
            let text = String::from_utf8(bytes).map_err(|e| format!("{path}: {e}"))?;
            bytes = contract::set_container_image(&text, image)
                .map_err(|e| format!("{path}: {e}"))?
                .into_bytes();
            f.sha256 = hex::encode(Sha256::digest(&bytes));
            replaced = true;
        }
        let dest = out.join(&path);
        std::fs::create_dir_all(dest.parent().expect("relative path has a parent"))
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        std::fs::write(&dest, &bytes).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    if !replaced {
        return Err(format!("{unit_file} is not in the generation"));
    }
    let entry = m
        .apps
        .iter_mut()
        .find(|a| a.name == app)
        .ok_or_else(|| format!("{MANIFEST}: no app {app}"))?;
    let old = std::mem::replace(&mut entry.image, image.to_string());
    set_hook_images(&mut entry.hooks, &old, image);
    std::fs::write(out.join(MANIFEST), m.to_json()).map_err(|e| format!("{MANIFEST}: {e}"))?;
    Ok(())
}

/// Puts `new` in place of the image word of each hook that runs `old`
/// (the app's image before the sweep); a hook that names an image of its
/// own keeps it.
fn set_hook_images(hooks: &mut contract::Hooks, old: &str, new: &str) {
    // Every field by name: a new kind of hook does not compile until it
    // is here. Kinds this agent does not know (`other`) it never runs.
    let contract::Hooks {
        down,
        post_commit,
        pre_activate,
        pre_commit,
        other: _,
    } = hooks;
    for hook in [down, post_commit, pre_activate, pre_commit]
        .into_iter()
        .flatten()
    {
        if hook.image() == Some(old) {
            hook.set_image(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derive_changes_only_the_image() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base");
        std::fs::create_dir_all(base.join("quadlet")).unwrap();
        let unit = "[Container]\nImage=reg.example:5000/fleet/web:1.0.0\nContainerName=web\n";
        std::fs::write(base.join("quadlet/web.container"), unit).unwrap();
        std::fs::write(
            base.join("quadlet/db.container"),
            "[Container]\nImage=x/db:1\n",
        )
        .unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let m = json!({
            "format": 1,
            "files": [
                {"path": "quadlet/db.container", "sha256": sha(b"[Container]\nImage=x/db:1\n")},
                {"path": "quadlet/web.container", "sha256": sha(unit.as_bytes())},
            ],
            "apps": [
                {"name": "db", "unit": "db.service", "image": "x/db:1"},
                {"name": "web", "unit": "web.service", "image": "reg.example:5000/fleet/web:1.0.0"},
            ],
        });
        std::fs::write(base.join(MANIFEST), m.to_string()).unwrap();
        let out = d.path().join("out");
        derive(&base, &out, "web", "reg.example:5000/fleet/web:1.1.0").unwrap();
        let new = std::fs::read_to_string(out.join("quadlet/web.container")).unwrap();
        assert_eq!(new, unit.replace("1.0.0", "1.1.0"));
        let nm = contract::Manifest::read(&out).unwrap();
        assert_eq!(nm.apps[1].image, "reg.example:5000/fleet/web:1.1.0");
        assert_eq!(nm.apps[0].image, "x/db:1");
        let f = nm
            .files
            .iter()
            .find(|f| f.path == "quadlet/web.container")
            .unwrap();
        assert_eq!(f.sha256, sha(new.as_bytes()));
        assert_eq!(
            std::fs::read(out.join("quadlet/db.container")).unwrap(),
            b"[Container]\nImage=x/db:1\n"
        );
        // An app without a Quadlet unit is an error, and writes nothing usable.
        assert!(derive(&base, &d.path().join("o2"), "nope", "a/b:1").is_err());
    }
}
