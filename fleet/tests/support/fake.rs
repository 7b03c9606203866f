//! The fake agent of the fleetd tests: an in-memory [`AgentApi`] that
//! records calls and plays an operation's phases. Generation 1 runs at
//! start; a switch to 3 fails its gate, one to 4 is slow.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use windlass_contract::GenerationId;
use windlass_fleet::agent::{
    AgentApi, AgentError, AgentResult, AgentStatus, Changes, Confirm, Generation, OpEnd, OpEvent,
    OpEvents,
};
use windlass_fleet::model::{CurrentOperation, GenerationRef, OpId};

// ---------------------------------------------------------------------
// The fake agent

pub struct FakeOp {
    pub kind: String,
    pub request: String,
    pub from: u64,
    pub to: u64,
    pub state: watch::Sender<(String, Option<OpEnd>)>,
}

#[derive(Default)]
pub struct FakeState {
    pub running: u64,
    pub ops: BTreeMap<OpId, FakeOp>,
    pub by_request: HashMap<String, OpId>,
    pub calls: Vec<String>,
    pub next: u64,
    /// How many more starting calls are answered Busy.
    pub busy: u32,
}

#[derive(Clone)]
pub struct Fake {
    st: Arc<Mutex<FakeState>>,
    changes: broadcast::Sender<()>,
}

impl Fake {
    pub fn new() -> Fake {
        let st = FakeState {
            running: 1,
            ..FakeState::default()
        };
        Fake {
            st: Arc::new(Mutex::new(st)),
            changes: broadcast::channel(64).0,
        }
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.st.lock().unwrap()
    }

    /// The calls that change something (switch, confirm, cancel, rollback).
    pub fn calls(&self) -> Vec<String> {
        self.st().calls.clone()
    }

    pub fn digest(g: u64) -> String {
        format!("sha256:{g:02}")
    }

    pub fn set(&self, op: &str, phase: &str, end: Option<(&str, &str)>) {
        let mut st = self.st();
        let o = st.ops.get(op).unwrap();
        let end = end.map(|(r, e)| OpEnd {
            result: r.into(),
            error: e.into(),
        });
        let back = end.as_ref().is_some_and(|e| e.result != "committed");
        let (from, to) = (o.from, o.to);
        o.state.send_replace((phase.to_string(), end));
        if back {
            st.running = from;
        } else if phase == "waiting-confirm" || phase == "finished" {
            st.running = to;
        }
        drop(st);
        let _ = self.changes.send(());
    }

    pub fn phase(&self, op: &str) -> (String, Option<OpEnd>) {
        self.st().ops[op].state.borrow().clone()
    }

    pub fn begin(&self, kind: &str, request: &str, to: u64) -> OpId {
        let mut st = self.st();
        if let Some(op) = st.by_request.get(request) {
            return op.clone();
        }
        st.next += 1;
        let id = format!("00000000{}x000", st.next);
        let from = st.running;
        st.ops.insert(
            id.clone(),
            FakeOp {
                kind: kind.into(),
                request: request.into(),
                from,
                to,
                state: watch::channel(("recorded".to_string(), None)).0,
            },
        );
        st.by_request.insert(request.into(), id.clone());
        drop(st);
        let _ = self.changes.send(());
        id
    }
}

impl AgentApi for Fake {
    async fn status(&self) -> AgentResult<AgentStatus> {
        let st = self.st();
        let r = |g: u64| GenerationRef {
            generation: GenerationId(g),
            digest: Fake::digest(g),
        };
        let current = st
            .ops
            .iter()
            .find(|(_, o)| o.state.borrow().1.is_none())
            .map(|(id, o)| CurrentOperation {
                id: id.clone(),
                kind: o.kind.clone(),
                phase: o.state.borrow().0.clone(),
                request: Some(o.request.clone()),
                to: Some(r(o.to)),
            });
        Ok(AgentStatus {
            version: "0.2.0".into(),
            platform: "native".into(),
            selected: Some(r(st.running)),
            running: Some(r(st.running)),
            busy: current.is_some(),
            operation: current,
            last: None,
            releases: BTreeMap::from([("web".into(), "1.4.2".into())]),
            apps: BTreeMap::from([(
                "web".into(),
                windlass_fleet::model::AppReport {
                    image: "reg.example/web:1.4.2".into(),
                    track: "semver".into(),
                    allow_prerelease: false,
                    constraint: None,
                },
            )]),
            drift: Default::default(),
        })
    }

    async fn generations(&self) -> AgentResult<Vec<Generation>> {
        let running = self.st().running;
        Ok((1..=4)
            .map(|g| Generation {
                id: GenerationId(g),
                selected: g == running,
                running: g == running,
                digest: Fake::digest(g),
            })
            .collect())
    }

    async fn stage(&self, _dir: &std::path::Path) -> AgentResult<GenerationId> {
        Err(AgentError::Unsupported("fake".into()))
    }

    async fn switch(
        &self,
        generation: GenerationId,
        confirm: Confirm,
        _deadline_sec: Option<u64>,
        request: &str,
    ) -> AgentResult<OpId> {
        {
            let mut st = self.st();
            st.calls.push(format!(
                "switch {} {} {request}",
                generation.0,
                confirm.as_str()
            ));
            if st.busy > 0 {
                st.busy -= 1;
                return Err(AgentError::Busy("a sweep is in flight".into()));
            }
        }
        let op = self.begin("switch", request, generation.0);
        let me = self.clone();
        let id = op.clone();
        let g = generation.0;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            me.set(&id, "activating", None);
            let wait = if g == 4 { 1500 } else { 50 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if g == 3 {
                me.set(&id, "rolling-back", None);
                me.set(
                    &id,
                    "finished",
                    Some(("rolled-back", "web.service failed its health gate")),
                );
            } else if confirm == Confirm::Manual {
                me.set(&id, "waiting-confirm", None);
            } else {
                me.set(&id, "finished", Some(("committed", "")));
            }
        });
        Ok(op)
    }

    async fn confirm(&self, op: &OpId) -> AgentResult<()> {
        self.st().calls.push(format!("confirm {op}"));
        if self.phase(op).0 != "waiting-confirm" {
            return Err(AgentError::Refused(format!(
                "{op} is not waiting for a confirm"
            )));
        }
        let me = self.clone();
        let id = op.clone();
        tokio::spawn(async move {
            me.set(&id, "committing", None);
            tokio::time::sleep(Duration::from_millis(30)).await;
            me.set(&id, "finished", Some(("committed", "")));
        });
        Ok(())
    }

    async fn cancel(&self, op: &OpId) -> AgentResult<()> {
        self.st().calls.push(format!("cancel {op}"));
        if self.phase(op).1.is_some() {
            return Err(AgentError::Refused(format!("{op} is not in flight")));
        }
        self.set(op, "finished", Some(("canceled", "canceled")));
        Ok(())
    }

    async fn rollback(&self, to: GenerationId, request: &str) -> AgentResult<OpId> {
        self.st().calls.push(format!("rollback {} {request}", to.0));
        let op = self.begin("rollback", request, to.0);
        let me = self.clone();
        let id = op.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            me.set(&id, "finished", Some(("committed", "")));
        });
        Ok(op)
    }

    async fn sweep(
        &self,
        _app: &str,
        _release: &str,
        _confirm: Confirm,
        _deadline_sec: Option<u64>,
        _request: &str,
    ) -> AgentResult<OpId> {
        Err(AgentError::Unsupported(
            "no fleet sweeps in the fake".into(),
        ))
    }

    async fn cutover(
        &self,
        _target: &str,
        _version: &str,
        _url: &str,
        _sha256: &str,
        _deadline_sec: Option<u64>,
        _request: &str,
    ) -> AgentResult<OpId> {
        Err(AgentError::Unsupported("no cutover in the fake".into()))
    }

    async fn operation_by_request(&self, request: &str) -> AgentResult<Option<OpId>> {
        let mut st = self.st();
        st.calls.push(format!("by-request {request}"));
        Ok(st.by_request.get(request).cloned())
    }

    async fn follow(&self, op: &OpId) -> AgentResult<OpEvents> {
        let rx = self
            .st()
            .ops
            .get(op)
            .ok_or_else(|| AgentError::NotFound(op.clone()))?
            .state
            .subscribe();
        // (phase, end) changes as events: the current phase first.
        let s =
            futures_util::stream::unfold((rx, false, false), |(mut rx, first, done)| async move {
                if done {
                    return None;
                }
                if first && rx.changed().await.is_err() {
                    return None;
                }
                let (phase, end) = rx.borrow_and_update().clone();
                match end {
                    Some(e) => Some((OpEvent::Finished(e), (rx, true, true))),
                    None => Some((
                        OpEvent::Phase {
                            phase,
                            detail: String::new(),
                        },
                        (rx, true, false),
                    )),
                }
            });
        Ok(Box::pin(s))
    }

    async fn journal(&self, _op: &OpId, _max: usize) -> Vec<String> {
        vec![
            "web.service: exited 1".into(),
            "fetching https://u:SECRET@h/x?sig=SECRET2".into(),
        ]
    }

    async fn changes(&self) -> AgentResult<Changes> {
        let rx = self.changes.subscribe();
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            loop {
                match rx.recv().await {
                    Ok(()) => return Some(((), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })))
    }
}
