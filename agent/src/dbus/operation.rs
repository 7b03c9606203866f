//! `io.windlass.Operation1`: one object per operation at
//! `/io/windlass/Agent1/operation/<id>`, its properties read from the
//! operation's record.

use std::sync::Arc;

use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus::{Connection, fdo};

use super::access::Access;
use super::error::Error;
use crate::OPERATION_PREFIX;
use crate::ops::Engine;
use crate::platform::Platform;
use crate::record::{OpId, Record};
use crate::systemd::Systemd;

pub fn op_path(id: &OpId) -> OwnedObjectPath {
    // OpId admits only letters, digits and `_`: always a valid element.
    OwnedObjectPath::try_from(format!("{OPERATION_PREFIX}/{id}")).expect("ids are path-safe")
}

/// The operation an object path names.
pub fn op_id(path: &ObjectPath<'_>) -> Result<OpId, Error> {
    path.as_str()
        .strip_prefix(OPERATION_PREFIX)
        .and_then(|s| s.strip_prefix('/'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("{path} is not an operation path")))
}

pub struct Operation<P, S> {
    pub engine: Arc<Engine<P, S>>,
    pub access: Access,
    pub id: OpId,
}

/// Exports the object of operation `id` (again, after a restart).
pub async fn register<P: Platform, S: Systemd + 'static>(
    conn: &Connection,
    engine: &Arc<Engine<P, S>>,
    access: &Access,
    id: &OpId,
) {
    let _ = conn
        .object_server()
        .at(
            op_path(id),
            Operation {
                engine: engine.clone(),
                access: access.clone(),
                id: id.clone(),
            },
        )
        .await;
}

impl<P: Platform, S: Systemd + 'static> Operation<P, S> {
    fn record(&self) -> fdo::Result<Record> {
        self.engine
            .runner
            .store
            .load(&self.id)
            .map_err(|e| fdo::Error::Failed(format!("operation {}: {e}", self.id)))
    }
}

#[zbus::interface(name = "io.windlass.Operation1")]
impl<P: Platform, S: Systemd + 'static> Operation<P, S> {
    #[zbus(property)]
    fn kind(&self) -> fdo::Result<String> {
        Ok(self.record()?.kind().as_str().to_string())
    }

    #[zbus(property)]
    fn phase(&self) -> fdo::Result<String> {
        Ok(self.record()?.phase_str().to_string())
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
        Ok(serde_json::to_string(self.record()?.results()).expect("serializes"))
    }

    /// The operation this one runs inside (a sweep's switch), or "".
    #[zbus(property)]
    fn parent(&self) -> fdo::Result<String> {
        Ok(self
            .record()?
            .parent
            .map(|p| p.to_string())
            .unwrap_or_default())
    }

    /// The request id the operation was started with, or "" (windlass
    /// extension).
    #[zbus(property)]
    fn request(&self) -> fdo::Result<String> {
        Ok(self.record()?.request.unwrap_or_default())
    }

    /// The journal lines the operation kept of the unit it blames (a
    /// failed gate), with a heading line; empty when it kept none. For
    /// root and the agent's group only: units print what they like.
    /// (windlass extension)
    async fn journal(
        &self,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>, Error> {
        self.access.check(conn, &hdr, "Journal").await?;
        Ok(self
            .engine
            .runner
            .store
            .load(&self.id)
            .map_err(|e| Error::Failed(format!("operation {}: {e}", self.id)))?
            .journal)
    }

    /// The operation's diagnostics bundle as a zstd-compressed tar
    /// archive, read from the descriptor returned: the bundle written
    /// when it ended without committing, or one collected now. For root
    /// and the agent's group only. (windlass extension)
    async fn bundle(
        &self,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<zbus::zvariant::OwnedFd, Error> {
        self.access.check(conn, &hdr, "Bundle").await?;
        let dir = self.engine.runner.bundle_of(&self.id).await?;
        let fd = tokio::task::spawn_blocking(move || crate::bundle::archive(&dir))
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
            .map_err(|e| Error::Failed(format!("cannot archive the bundle: {e}")))?;
        Ok(fd.into())
    }

    #[zbus(signal, name = "PhaseChanged")]
    pub async fn phase_changed_signal(
        emitter: &SignalEmitter<'_>,
        phase: &str,
        detail: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn finished(
        emitter: &SignalEmitter<'_>,
        result: &str,
        error: &str,
    ) -> zbus::Result<()>;
}
