//! The D-Bus face of the agent: [`agent::Agent`] exports
//! `io.windlass.Agent1`, [`operation::Operation`] one
//! `io.windlass.Operation1` object per operation; [`Signals`] turns what
//! operations report into signals and property changes, in order, on one
//! task. Nothing below this module speaks the bus API (the systemd client
//! in `systemd.rs` is a client of systemd's, not of ours).

pub mod access;
pub mod agent;
pub mod error;
pub mod operation;
pub mod options;

use std::sync::Arc;

use tokio::sync::mpsc;
use zbus::Connection;
use zbus::object_server::SignalEmitter;

use self::access::Access;
use self::agent::Agent;
use self::operation::{Operation, op_path, register};
use crate::OBJECT_PATH;
use crate::contract::GenerationId;
use crate::ops::Engine;
use crate::ops::runner::Notify;
use crate::platform::Platform;
use crate::record::{OpId, Outcome};
use crate::systemd::Systemd;

enum Event {
    Started(OpId),
    Phase(OpId, String, String),
    Finished(OpId, Outcome, String),
    Generation(GenerationId),
    Drift(Option<GenerationId>, Vec<crate::drift::Finding>),
}

/// Queues what operations report, for [`run_signals`].
pub struct Signals {
    tx: mpsc::UnboundedSender<Event>,
}

impl Notify for Signals {
    fn started(&self, id: &OpId) {
        let _ = self.tx.send(Event::Started(id.clone()));
    }
    fn phase(&self, id: &OpId, phase: &str, detail: &str) {
        let _ = self.tx.send(Event::Phase(
            id.clone(),
            phase.to_string(),
            detail.to_string(),
        ));
    }
    fn finished(&self, id: &OpId, outcome: Outcome, error: &str) {
        let _ = self
            .tx
            .send(Event::Finished(id.clone(), outcome, error.to_string()));
    }
    fn generation_changed(&self, g: GenerationId) {
        let _ = self.tx.send(Event::Generation(g));
    }
    fn drift(&self, g: Option<GenerationId>, added: &[crate::drift::Finding], _count: u32) {
        let _ = self.tx.send(Event::Drift(g, added.to_vec()));
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
pub async fn run_signals<P: Platform, S: Systemd + 'static>(
    conn: Connection,
    engine: Arc<Engine<P, S>>,
    mut rx: SignalsRx,
) {
    let agent_emitter = SignalEmitter::new(&conn, OBJECT_PATH).expect("valid path");
    while let Some(ev) = rx.0.recv().await {
        let res: zbus::Result<()> = async {
            let agent = conn
                .object_server()
                .interface::<_, Agent<P, S>>(OBJECT_PATH)
                .await?;
            match ev {
                Event::Started(id) => {
                    let access = agent.get().await.access.clone();
                    register(&conn, &engine, &access, &id).await;
                    let path = op_path(&id);
                    Agent::<P, S>::operation_started(&agent_emitter, path.as_ref()).await?;
                    agent.get().await.state_changed(&agent_emitter).await?;
                }
                Event::Phase(id, phase, detail) => {
                    let path = op_path(&id);
                    let e = SignalEmitter::new(&conn, path.clone())?;
                    Operation::<P, S>::phase_changed_signal(&e, &phase, &detail).await?;
                    if let Ok(op) = conn
                        .object_server()
                        .interface::<_, Operation<P, S>>(path)
                        .await
                    {
                        op.get().await.phase_changed(&e).await?;
                    }
                }
                Event::Finished(id, outcome, error) => {
                    let path = op_path(&id);
                    let e = SignalEmitter::new(&conn, path.clone())?;
                    if let Ok(op) = conn
                        .object_server()
                        .interface::<_, Operation<P, S>>(path)
                        .await
                    {
                        let o = op.get().await;
                        o.result_changed(&e).await?;
                        o.error_changed(&e).await?;
                        o.finished_at_changed(&e).await?;
                    }
                    Operation::<P, S>::finished(&e, outcome.as_str(), &error).await?;
                    agent.get().await.state_changed(&agent_emitter).await?;
                }
                Event::Drift(g, added) => {
                    if !added.is_empty() {
                        let g = g.map(|g| g.to_string()).unwrap_or_default();
                        let rows: Vec<_> = added.iter().map(agent::finding_row).collect();
                        Agent::<P, S>::drift_detected(&agent_emitter, &g, rows).await?;
                    }
                    agent
                        .get()
                        .await
                        .drift_count_changed(&agent_emitter)
                        .await?;
                }
                Event::Generation(g) => {
                    Agent::<P, S>::generation_changed(&agent_emitter, &g.to_string()).await?;
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
pub async fn export<P: Platform, S: Systemd + 'static>(
    conn: &Connection,
    engine: Arc<Engine<P, S>>,
    access: Access,
) -> zbus::Result<()> {
    conn.object_server()
        .at(
            OBJECT_PATH,
            Agent {
                engine: engine.clone(),
                access: access.clone(),
            },
        )
        .await?;
    for r in engine.runner.store.all() {
        register(conn, &engine, &access, &r.id).await;
    }
    Ok(())
}
