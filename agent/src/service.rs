//! The D-Bus face of the engine: `io.windlass.Agent1` at
//! `/io/windlass/Agent1`, and one `io.windlass.Operation1` object per
//! operation at `/io/windlass/Agent1/operation/<id>` (re-exported after a
//! restart, under the same id). Reading is open; every mutating method
//! checks the caller's uid and groups (`GetConnectionCredentials`) and
//! refuses with `io.windlass.Error.AccessDenied` unless root or a member
//! of the configured group.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zbus::{Connection, fdo};

use crate::engine::{Engine, EngineError, Notify, SwitchOptions};
use crate::platform::Platform;
use crate::store::Record;
use crate::sweep::SweepOptions;
use crate::systemd::Systemd;
use crate::{OBJECT_PATH, OPERATION_PREFIX, VERSION};

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.windlass.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    AccessDenied(String),
    Busy(String),
    NotFound(String),
    InvalidArgument(String),
    VerificationFailed(String),
    NotSupported(String),
    Failed(String),
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Error {
        match e {
            EngineError::Busy(id) => Error::Busy(format!(
                "operation {id} is in flight ({OPERATION_PREFIX}/{id})"
            )),
            EngineError::NotFound(m) => Error::NotFound(m),
            EngineError::InvalidArgument(m) => Error::InvalidArgument(m),
            EngineError::VerificationFailed(m) => Error::VerificationFailed(m),
            EngineError::Failed(m) => Error::Failed(m),
        }
    }
}

pub fn op_path(id: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{OPERATION_PREFIX}/{id}")).expect("ids are path-safe")
}

fn op_id(path: &ObjectPath<'_>) -> Result<String, Error> {
    path.as_str()
        .strip_prefix(OPERATION_PREFIX)
        .and_then(|s| s.strip_prefix('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidArgument(format!("{path} is not an operation path")))
}

/// Who may change things: root, or members of `gid`.
#[derive(Debug, Clone)]
pub struct Access {
    pub group: String,
    pub gid: Option<u32>,
}

impl Access {
    pub fn for_group(group: &str) -> Access {
        let c = std::ffi::CString::new(group).unwrap_or_default();
        // SAFETY: getgrnam with a NUL-terminated name; the result is read
        // at once and not kept.
        let gid = unsafe {
            let g = libc::getgrnam(c.as_ptr());
            if g.is_null() { None } else { Some((*g).gr_gid) }
        };
        Access {
            group: group.to_string(),
            gid,
        }
    }

    async fn check(&self, conn: &Connection, hdr: &Header<'_>, method: &str) -> Result<(), Error> {
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::AccessDenied("no sender on the message".into()))?;
        let creds = fdo::DBusProxy::new(conn)
            .await?
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| {
                Error::AccessDenied(format!("cannot read the caller's credentials: {e}"))
            })?;
        let uid = creds
            .unix_user_id()
            .ok_or_else(|| Error::AccessDenied("the bus gave no uid for the caller".into()))?;
        if uid == 0 {
            return Ok(());
        }
        let groups = creds.unix_group_ids().cloned().unwrap_or_default();
        if let Some(gid) = self.gid
            && groups.contains(&gid)
        {
            return Ok(());
        }
        tracing::warn!(uid, method, "refused a mutating call");
        Err(Error::AccessDenied(format!(
            "{method} needs root or membership in group {:?} (caller uid {uid})",
            self.group
        )))
    }
}

pub struct Agent<S: Systemd + 'static> {
    pub engine: Arc<Engine<S>>,
    pub access: Access,
}

fn opts(options: &HashMap<String, OwnedValue>) -> Result<SwitchOptions, Error> {
    let mut o = SwitchOptions::default();
    for (k, v) in options {
        match k.as_str() {
            "confirm" => {
                o.confirm = String::try_from(v.clone())
                    .map_err(|_| Error::InvalidArgument("option confirm must be a string".into()))?
            }
            "deadline" => {
                let d = u64::try_from(v.clone())
                    .or_else(|_| u32::try_from(v.clone()).map(u64::from))
                    .map_err(|_| {
                        Error::InvalidArgument("option deadline must be seconds (t or u)".into())
                    })?;
                o.deadline_sec = Some(d);
            }
            other => return Err(Error::InvalidArgument(format!("unknown option {other:?}"))),
        }
    }
    Ok(o)
}

async fn register<S: Systemd + 'static>(conn: &Connection, engine: &Arc<Engine<S>>, id: &str) {
    let _ = conn
        .object_server()
        .at(
            op_path(id),
            Operation {
                engine: engine.clone(),
                id: id.to_string(),
            },
        )
        .await;
}

#[zbus::interface(name = "io.windlass.Agent1")]
impl<S: Systemd + 'static> Agent<S> {
    #[zbus(property)]
    fn version(&self) -> String {
        VERSION.to_string()
    }

    #[zbus(property)]
    fn platform(&self) -> String {
        self.engine.platform.name().to_string()
    }

    #[zbus(property)]
    fn state(&self) -> String {
        match self.engine.active() {
            Some(_) => "busy".into(),
            None => "idle".into(),
        }
    }

    #[zbus(property)]
    fn selected_generation(&self) -> String {
        self.engine.platform.selected().unwrap_or_default()
    }

    #[zbus(property)]
    fn running_generation(&self) -> String {
        self.engine.platform.running().unwrap_or_default()
    }

    fn status(&self) -> String {
        let p = &self.engine.platform;
        let running = p.running();
        let apps: Vec<serde_json::Value> = running
            .as_deref()
            .and_then(|g| p.manifest(g))
            .map(|m| {
                m.apps
                    .iter()
                    .map(|a| {
                        let canonical =
                            crate::sweep::Canonical::load(&self.engine.store.state_dir(), &a.name)
                                .tag;
                        json!({
                            "name": a.name,
                            "unit": a.unit,
                            "image": a.image,
                            "canonical_release": canonical,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "version": VERSION,
            "platform": p.name(),
            "selected": p.selected(),
            "running": running,
            "generations": p.generations(),
            "apps": apps,
            "active_operation": self.engine.active(),
        })
        .to_string()
    }

    fn list_generations(&self) -> String {
        serde_json::to_string(&self.engine.platform.generations()).expect("serializes")
    }

    async fn stage(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        path: String,
    ) -> Result<String, Error> {
        self.access.check(conn, &hdr, "Stage").await?;
        let p = std::path::Path::new(&path);
        if !p.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "{path:?} is not an absolute path"
            )));
        }
        let engine = self.engine.clone();
        let p = p.to_path_buf();
        tokio::task::spawn_blocking(move || engine.platform.stage(&p))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
            .map_err(|e| match e {
                crate::platform::PlatformError::NotFound(m) => Error::NotFound(m),
                crate::platform::PlatformError::Invalid(m) => Error::InvalidArgument(m),
                crate::platform::PlatformError::Failed(m) => Error::Failed(m),
            })
    }

    async fn switch(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        generation: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Switch").await?;
        let o = opts(&options)?;
        let r = self.engine.switch(&generation, o)?;
        register(conn, &self.engine, &r.id).await;
        Ok(op_path(&r.id))
    }

    async fn rollback(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        generation: String,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Rollback").await?;
        if let Some(k) = options.keys().next() {
            return Err(Error::InvalidArgument(format!("unknown option {k:?}")));
        }
        let target = Some(generation.as_str()).filter(|g| !g.is_empty());
        let r = self.engine.rollback(target)?;
        register(conn, &self.engine, &r.id).await;
        Ok(op_path(&r.id))
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
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Cutover").await?;
        let mut req = crate::cutover::Request {
            target,
            version,
            url,
            sha256,
            deadline_sec: None,
        };
        req.options(&options)?;
        let r = self.engine.cutover(req)?;
        register(conn, &self.engine, &r.id).await;
        Ok(op_path(&r.id))
    }

    /// Options: `app` (s) sweeps one app, `dry_run` (b) changes nothing.
    /// A sweep asked for while another operation is in flight is an
    /// operation that finished at once, `skipped` (busy).
    async fn sweep(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        self.access.check(conn, &hdr, "Sweep").await?;
        let mut o = SweepOptions::default();
        for (k, v) in &options {
            match k.as_str() {
                "app" => {
                    o.app = Some(String::try_from(v.clone()).map_err(|_| {
                        Error::InvalidArgument("option app must be a string".into())
                    })?)
                }
                "dry_run" => {
                    o.dry_run = bool::try_from(v.clone()).map_err(|_| {
                        Error::InvalidArgument("option dry_run must be a boolean".into())
                    })?
                }
                other => return Err(Error::InvalidArgument(format!("unknown option {other:?}"))),
            }
        }
        let r = self.engine.sweep(o)?;
        register(conn, &self.engine, &r.id).await;
        Ok(op_path(&r.id))
    }

    #[zbus(signal)]
    async fn operation_started(
        emitter: &SignalEmitter<'_>,
        operation: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn generation_changed(emitter: &SignalEmitter<'_>, generation: &str) -> zbus::Result<()>;
}

pub struct Operation<S: Systemd + 'static> {
    engine: Arc<Engine<S>>,
    id: String,
}

impl<S: Systemd + 'static> Operation<S> {
    fn record(&self) -> fdo::Result<Record> {
        self.engine
            .store
            .load(&self.id)
            .map_err(|e| fdo::Error::Failed(format!("operation {}: {e}", self.id)))
    }
}

#[zbus::interface(name = "io.windlass.Operation1")]
impl<S: Systemd + 'static> Operation<S> {
    #[zbus(property)]
    fn kind(&self) -> fdo::Result<String> {
        Ok(self.record()?.kind.as_str().to_string())
    }

    #[zbus(property)]
    fn phase(&self) -> fdo::Result<String> {
        Ok(self.record()?.phase)
    }

    #[zbus(property)]
    fn result(&self) -> fdo::Result<String> {
        Ok(self
            .record()?
            .result
            .map(|o| o.as_str().to_string())
            .unwrap_or_default())
    }

    #[zbus(property)]
    fn error(&self) -> fdo::Result<String> {
        Ok(self.record()?.error)
    }

    /// Seconds since the epoch.
    #[zbus(property)]
    fn started_at(&self) -> fdo::Result<u64> {
        Ok(self.record()?.started_at)
    }

    /// Seconds since the epoch; 0 while running.
    #[zbus(property)]
    fn finished_at(&self) -> fdo::Result<u64> {
        Ok(self.record()?.finished_at.unwrap_or(0))
    }

    /// A sweep's result per app so far, as a JSON array (windlass
    /// extension; `[]` for other operations).
    #[zbus(property)]
    fn results(&self) -> fdo::Result<String> {
        Ok(serde_json::Value::from(self.record()?.results).to_string())
    }

    /// The operation this one runs inside (a sweep's switch), or "".
    #[zbus(property)]
    fn parent(&self) -> fdo::Result<String> {
        Ok(self.record()?.parent.unwrap_or_default())
    }

    #[zbus(signal, name = "PhaseChanged")]
    async fn phase_changed_signal(
        emitter: &SignalEmitter<'_>,
        phase: &str,
        detail: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn finished(emitter: &SignalEmitter<'_>, result: &str, error: &str) -> zbus::Result<()>;
}

enum Event {
    Started(String),
    Phase(String, String, String),
    Finished(String, String, String),
    Generation(String),
}

/// Turns engine events into signals, in order, on one task.
pub struct Signals {
    tx: mpsc::UnboundedSender<Event>,
}

impl Notify for Signals {
    fn started(&self, r: &Record) {
        let _ = self.tx.send(Event::Started(r.id.clone()));
    }
    fn phase(&self, r: &Record, detail: &str) {
        let _ = self.tx.send(Event::Phase(
            r.id.clone(),
            r.phase.clone(),
            detail.to_string(),
        ));
    }
    fn finished(&self, r: &Record) {
        let _ = self.tx.send(Event::Finished(
            r.id.clone(),
            r.result.map(|o| o.as_str()).unwrap_or_default().to_string(),
            r.error.clone(),
        ));
    }
    fn generation_changed(&self, g: &str) {
        let _ = self.tx.send(Event::Generation(g.to_string()));
    }
}

impl Signals {
    /// The notifier, and the receiving end for [`run_signals`].
    pub fn channel() -> (Signals, SignalsRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Signals { tx }, SignalsRx(rx))
    }
}

pub struct SignalsRx(mpsc::UnboundedReceiver<Event>);

/// Emits the queued events as D-Bus signals and property changes.
pub async fn run_signals<S: Systemd + 'static>(
    conn: Connection,
    engine: Arc<Engine<S>>,
    mut rx: SignalsRx,
) {
    let agent_emitter = SignalEmitter::new(&conn, OBJECT_PATH).expect("valid path");
    while let Some(ev) = rx.0.recv().await {
        let res: zbus::Result<()> = async {
            let agent = conn
                .object_server()
                .interface::<_, Agent<S>>(OBJECT_PATH)
                .await?;
            match ev {
                Event::Started(id) => {
                    register(&conn, &engine, &id).await;
                    let path = op_path(&id);
                    Agent::<S>::operation_started(&agent_emitter, path.as_ref()).await?;
                    agent.get().await.state_changed(&agent_emitter).await?;
                }
                Event::Phase(id, phase, detail) => {
                    let path = op_path(&id);
                    let e = SignalEmitter::new(&conn, path.clone())?;
                    Operation::<S>::phase_changed_signal(&e, &phase, &detail).await?;
                    if let Ok(op) = conn
                        .object_server()
                        .interface::<_, Operation<S>>(path)
                        .await
                    {
                        op.get().await.phase_changed(&e).await?;
                    }
                }
                Event::Finished(id, result, error) => {
                    let path = op_path(&id);
                    let e = SignalEmitter::new(&conn, path.clone())?;
                    if let Ok(op) = conn
                        .object_server()
                        .interface::<_, Operation<S>>(path)
                        .await
                    {
                        let o = op.get().await;
                        o.result_changed(&e).await?;
                        o.error_changed(&e).await?;
                        o.finished_at_changed(&e).await?;
                    }
                    Operation::<S>::finished(&e, &result, &error).await?;
                    agent.get().await.state_changed(&agent_emitter).await?;
                }
                Event::Generation(g) => {
                    Agent::<S>::generation_changed(&agent_emitter, &g).await?;
                    let a = agent.get().await;
                    a.selected_generation_changed(&agent_emitter).await?;
                    a.running_generation_changed(&agent_emitter).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!("cannot emit a signal: {e}");
        }
    }
}

/// Exports the agent and every recorded operation on `conn`.
pub async fn export<S: Systemd + 'static>(
    conn: &Connection,
    engine: Arc<Engine<S>>,
    access: Access,
) -> zbus::Result<()> {
    conn.object_server()
        .at(
            OBJECT_PATH,
            Agent {
                engine: engine.clone(),
                access,
            },
        )
        .await?;
    for r in engine.store.all().unwrap_or_default() {
        register(conn, &engine, &r.id).await;
    }
    Ok(())
}
