//! `io.windlass.Agent1` at `/io/windlass/Agent1`: properties and reading
//! methods are open; every mutating method checks the caller first
//! ([`Access`]), parses its options ([`super::options`]), and hands a
//! typed call to the operations.

use std::sync::Arc;

use serde_json::json;
use zbus::Connection;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use super::access::Access;
use super::error::Error;
use super::operation::{op_id, op_path, register};
use super::options::{self, Options};
use crate::VERSION;
use crate::ops::Engine;
use crate::ops::sweep::Canonical;
use crate::platform::Platform;
use crate::systemd::Systemd;

/// Stage imports running at once (the others wait their turn): each
/// reads and writes up to a tree's cap, on a blocking thread.
static STAGES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Runs one Stage import on a blocking thread, a few at a time.
async fn staged(
    f: impl FnOnce() -> Result<crate::contract::GenerationId, crate::platform::PlatformError>
    + Send
    + 'static,
) -> Result<String, Error> {
    let _turn = STAGES
        .acquire()
        .await
        .map_err(|e| Error::Failed(e.to_string()))?;
    let g = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(e.to_string()))??;
    Ok(g.to_string())
}

/// A finding on the bus: (kind, app, unit, path, detail), empty where
/// there is none.
pub fn finding_row(f: &crate::drift::Finding) -> (String, String, String, String, String) {
    (
        f.kind.as_str().to_string(),
        f.app.clone().unwrap_or_default(),
        f.unit.clone().unwrap_or_default(),
        f.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        f.detail.clone(),
    )
}

/// What an operation moves from and to, as `Status` shows it: the
/// generations of a switch, rollback, sweep or restore, the versions of a
/// cutover.
fn ends(r: &crate::record::Record) -> (Option<String>, Option<String>) {
    use crate::record::Op;
    match &r.op {
        Op::Cutover(c) => (c.from_version.clone(), Some(c.to_version.clone())),
        _ => (
            r.from_generation().map(|g| g.to_string()),
            r.to_generation().map(|g| g.to_string()),
        ),
    }
}

pub struct Agent<P, S> {
    pub engine: Arc<Engine<P, S>>,
    pub access: Access,
}

impl<P: Platform, S: Systemd + 'static> Agent<P, S> {
    async fn started(
        &self,
        conn: &Connection,
        r: Result<crate::record::Record, crate::ops::runner::OpError>,
    ) -> Result<OwnedObjectPath, Error> {
        let id = r?.id;
        register(conn, &self.engine, &self.access, &id).await;
        Ok(op_path(&id))
    }
}

#[zbus::interface(name = "io.windlass.Agent1")]
impl<P: Platform, S: Systemd + 'static> Agent<P, S> {
    #[zbus(property)]
    fn version(&self) -> String {
        VERSION.to_string()
    }

    #[zbus(property)]
    fn platform(&self) -> String {
        self.engine.runner.platform.name().to_string()
    }

    #[zbus(property)]
    fn state(&self) -> String {
        // Busy too between two records resolved after a restart.
        if self.engine.active().is_some() || self.engine.runner.recovering() {
            "busy".into()
        } else {
            "idle".into()
        }
    }

    #[zbus(property)]
    fn selected_generation(&self) -> String {
        let p = &self.engine.runner.platform;
        p.selected().map(|g| g.to_string()).unwrap_or_default()
    }

    #[zbus(property)]
    fn running_generation(&self) -> String {
        let p = &self.engine.runner.platform;
        p.running().map(|g| g.to_string()).unwrap_or_default()
    }

    /// How many drift findings there are now (0 also when drift
    /// detection is off: see `Status`).
    #[zbus(property)]
    fn drift_count(&self) -> u32 {
        self.engine.drift.count()
    }

    /// A full drift scan now; returns the drift section of `Status` once
    /// it is done (what it was, when an operation is in flight: the scan
    /// after the operation comes anyway). Checked like the mutating
    /// methods: it sets the image baseline, and costs work.
    async fn scan_drift(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.access.check(conn, &hdr, "ScanDrift").await?;
        let report = match self.engine.drift.scan().await {
            Some(r) => r,
            None => self.engine.drift.report(),
        };
        Ok(serde_json::to_string(&report).expect("serializes"))
    }

    fn status(&self) -> String {
        let rn = &self.engine.runner;
        let p = &rn.platform;
        let running = p.running();
        let state = rn.store.state_dir();
        let apps: Vec<serde_json::Value> = running
            .and_then(|g| p.manifest(g))
            .map(|m| {
                m.apps
                    .iter()
                    .map(|a| {
                        json!({
                            "name": a.name,
                            "unit": a.unit,
                            "image": a.image,
                            "canonical_release": Canonical::load(&state, &a.name).tag,
                            // What a fleet sweep that names no release
                            // discovers with.
                            "release": {
                                "track": a.release.track,
                                "allow_prerelease": a.release.allow_prerelease,
                                "constraint": a.release.constraint,
                            },
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let generations = p.generations();
        // A generation with what it is on every host (for the fleet
        // layer: numbers are per host).
        let reference = |g: Option<crate::contract::GenerationId>| {
            g.map(|g| {
                let digest = generations
                    .iter()
                    .find(|i| i.id == g)
                    .map(|i| i.digest.as_str())
                    .unwrap_or_default();
                json!({"generation": g, "digest": digest})
            })
        };
        let selected = p.selected();
        let active = self.engine.active();
        let operation = active
            .as_ref()
            .and_then(|id| rn.store.load(id).ok())
            .map(|r| {
                let (from, to) = ends(&r);
                json!({
                    "id": r.id,
                    "kind": r.kind().as_str(),
                    "phase": r.phase_str(),
                    "request": r.request,
                    "from": from,
                    "to": to,
                })
            });
        // The newest finished operation of the host (a sweep's own
        // switches are part of their sweep, not operations of their own
        // here). Records say when in seconds: within the same second the
        // record written last (its end is its last write) is the newest.
        let written = |r: &crate::record::Record| {
            std::fs::metadata(rn.store.path(&r.id))
                .and_then(|m| m.modified())
                .ok()
        };
        let last_operation = rn
            .store
            .scan()
            .records
            .into_iter()
            .filter(|r| r.finished() && r.parent.is_none())
            .map(|r| ((r.finished_at, written(&r), r.id.clone()), r))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, r)| {
                json!({
                    "id": r.id,
                    "kind": r.kind().as_str(),
                    "result": r.result.map(|o| o.as_str()),
                    "request": r.request,
                    "finished_at": r.finished_at,
                })
            });
        json!({
            "version": VERSION,
            "platform": p.name(),
            "selected": selected,
            "running": running,
            "selected_ref": reference(selected),
            "running_ref": reference(running),
            "generations": generations,
            "apps": apps,
            "active_operation": active,
            "operation": operation,
            "last_operation": last_operation,
            // Entries of operations/ that were not readable records,
            // moved to operations/damaged/ at start.
            "damaged_records": rn.store.damaged(),
            "drift": self.engine.drift.report(),
        })
        .to_string()
    }

    /// The operation recorded for request id `request` (given with
    /// `Switch`, `Rollback`, `Cutover` or `Sweep`), in flight or
    /// finished; `NotFound` when there is none. Open to any caller, as
    /// reading the operations is. (windlass extension)
    async fn operation_by_request(
        &self,
        #[zbus(connection)] conn: &Connection,
        request: String,
    ) -> Result<OwnedObjectPath, Error> {
        crate::record::check_request(&request).map_err(Error::InvalidArgument)?;
        match self.engine.by_request(&request)? {
            Some(r) => self.started(conn, Ok(r)).await,
            None => Err(Error::NotFound(format!(
                "no operation was started for request {request:?}"
            ))),
        }
    }

    fn list_generations(&self) -> String {
        serde_json::to_string(&self.engine.runner.platform.generations()).expect("serializes")
    }

    /// Imports the tree at `path`, opened by the agent (with its own
    /// privileges and in its own mount namespace, so not under /home or
    /// /tmp with the shipped unit): kept for compatibility; windlassctl
    /// uses [`stage_fd`](Self::stage_fd).
    async fn stage(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        path: String,
    ) -> Result<String, Error> {
        self.access.check(conn, &hdr, "Stage").await?;
        let p = std::path::PathBuf::from(&path);
        if !p.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "{path:?} is not an absolute path"
            )));
        }
        let rn = self.engine.runner.clone();
        staged(move || rn.platform.stage(&p)).await
    }

    /// Imports the tree beneath `dir`, a directory the caller opened and
    /// passes as a descriptor (as rpm-ostree does): read with the
    /// caller's access to the directory, wherever the caller sees it.
    async fn stage_fd(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        dir: zbus::zvariant::OwnedFd,
    ) -> Result<String, Error> {
        self.access.check(conn, &hdr, "StageFd").await?;
        let dir: std::os::fd::OwnedFd = dir.into();
        match crate::platform::import::is_dir(std::os::fd::AsFd::as_fd(&dir)) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::InvalidArgument(
                    "the descriptor passed to StageFd is not a directory".into(),
                ));
            }
            Err(e) => return Err(Error::InvalidArgument(format!("StageFd: {e}"))),
        }
        let rn = self.engine.runner.clone();
        staged(move || rn.platform.stage_dir(dir)).await
    }

    async fn switch(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        generation: String,
        options: Options,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Switch").await?;
        let o = options::switch(&options)?;
        let to = options::generation(&generation)?;
        self.started(conn, self.engine.switch(to, o)).await
    }

    async fn rollback(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        generation: String,
        options: Options,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Rollback").await?;
        let o = options::rollback(&options)?;
        let to = match generation.as_str() {
            "" => None,
            g => Some(options::generation(g)?),
        };
        self.started(conn, self.engine.rollback_with(to, o)).await
    }

    async fn confirm(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        operation: ObjectPath<'_>,
    ) -> Result<(), Error> {
        self.access.check(conn, &hdr, "Confirm").await?;
        Ok(self.engine.confirm(&op_id(&operation)?)?)
    }

    async fn cancel(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        operation: ObjectPath<'_>,
    ) -> Result<(), Error> {
        self.access.check(conn, &hdr, "Cancel").await?;
        Ok(self.engine.cancel(&op_id(&operation)?)?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn cutover(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        target: String,
        version: String,
        url: String,
        sha256: String,
        options: Options,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Cutover").await?;
        let req = options::cutover(target, version, url, sha256, &options)?;
        self.started(conn, self.engine.cutover(req)).await
    }

    /// Options: `app` (s) sweeps one app, `dry_run` (b) changes nothing.
    /// A sweep asked for while another operation is in flight is an
    /// operation that finished at once, `skipped` (busy).
    async fn sweep(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: Options,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Sweep").await?;
        let o = options::sweep(&options)?;
        self.started(conn, self.engine.sweep(o)).await
    }

    /// Puts the running generation back where the host drifted from it
    /// (what `Status` lists under `drift`), whatever the apps' policy.
    /// Options: `app` (s) only that app's drift.
    async fn restore(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: Options,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Restore").await?;
        let o = options::restore(&options)?;
        self.started(conn, self.engine.restore(o).await).await
    }

    #[zbus(signal)]
    pub async fn operation_started(
        emitter: &SignalEmitter<'_>,
        operation: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    /// New drift on the running generation: (kind, app, unit, path,
    /// detail) of each finding not reported before.
    #[zbus(signal)]
    pub async fn drift_detected(
        emitter: &SignalEmitter<'_>,
        generation: &str,
        findings: Vec<(String, String, String, String, String)>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn generation_changed(
        emitter: &SignalEmitter<'_>,
        generation: &str,
    ) -> zbus::Result<()>;
}
