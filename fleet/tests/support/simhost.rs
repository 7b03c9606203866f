//! A simulated host for coordinator tests: a task that does what a
//! well-behaved fleetd in front of a well-behaved windlassd writes, with
//! no D-Bus and no generations. It polls its order key every 50 ms,
//! obeys the host-side fence (`lease::may_execute` against a fresh lease
//! read), and writes results and heartbeats:
//! - switch/sweep: `started` (with `from`), then after `switch_delay`
//!   the target runs and `awaiting-confirm` (with `from`, `to`) follows,
//!   with a heartbeat at once showing `waiting-confirm` for the request;
//!   a `confirm` commits it (final `committed` for both orders); no
//!   confirm within `deadline_sec` reverts it (`rolled-back`);
//!   an unhealthy host fails its health check: final `rolled-back`;
//! - rollback: back to `to` (canceling the switch if in flight);
//! - cancel: the switch goes back if in flight, canceled.
//!
//! Every order it executed is logged, in order, for the assertions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use windlass_contract::GenerationId;
use windlass_fleet::buckets::{HOSTS, LEASE, ORDERS, RESULTS, ResultKey, Step};
use windlass_fleet::kv::Bucket;
use windlass_fleet::lease::{self, Lease, OrderStamp, Verdict};
use windlass_fleet::model::{
    Action, AppReport, CurrentOperation, Epoch, GenerationRef, Heartbeat, HostActivity, HostResult,
    LastOperation, Order, OrdersSeen, ResultOutcome,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Every switch fails its health check and reverts.
    Unhealthy,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub health: Health,
    /// From `started` to `awaiting-confirm`.
    pub switch_delay: Duration,
    pub heartbeat: Duration,
    pub labels: BTreeMap<String, String>,
    /// The apps it reports (image and release policy, for sweeps whose
    /// release the coordinator discovers).
    pub apps: BTreeMap<String, AppReport>,
    /// The apps' canonical releases at start.
    pub releases: BTreeMap<String, String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            health: Health::Healthy,
            switch_delay: Duration::from_millis(100),
            heartbeat: Duration::from_millis(300),
            labels: BTreeMap::new(),
            apps: BTreeMap::new(),
            releases: BTreeMap::new(),
        }
    }
}

/// What a host runs before any rollout.
pub fn original(host: &str) -> GenerationRef {
    GenerationRef {
        generation: GenerationId(6),
        digest: format!("sha256:old-{host}"),
    }
}

pub struct SimHost {
    pub name: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    executed: Mutex<Vec<Order>>,
    running: Mutex<GenerationRef>,
    stop: AtomicBool,
}

impl SimHost {
    pub fn spawn(js: &jetstream::Context, name: &str, opts: Opts) -> SimHost {
        let shared = Arc::new(Shared {
            executed: Mutex::default(),
            running: Mutex::new(original(name)),
            stop: AtomicBool::new(false),
        });
        let sim = Sim {
            js: js.clone(),
            name: name.to_string(),
            opts: opts.clone(),
            shared: shared.clone(),
            releases: opts.releases.clone(),
            last_seq: 0,
            max_epoch: None,
            op: None,
            last: None,
            n: 0,
            dirty: true,
            gen_counter: 6,
        };
        SimHost {
            name: name.to_string(),
            shared,
            task: tokio::spawn(sim.run()),
        }
    }

    /// The orders it executed, in order.
    pub fn executed(&self) -> Vec<Order> {
        self.shared.executed.lock().unwrap().clone()
    }

    pub fn running(&self) -> GenerationRef {
        self.shared.running.lock().unwrap().clone()
    }

    /// Stops it (no more heartbeats): the host is gone.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum OpPhase {
    Starting { until: u64 },
    Waiting { deadline: u64 },
}

struct Op {
    order: Order,
    from: GenerationRef,
    to: GenerationRef,
    releases_before: BTreeMap<String, String>,
    release: Option<(String, String)>,
    phase: OpPhase,
}

struct Sim {
    js: jetstream::Context,
    name: String,
    opts: Opts,
    shared: Arc<Shared>,
    releases: BTreeMap<String, String>,
    last_seq: u64,
    max_epoch: Option<Epoch>,
    op: Option<Op>,
    last: Option<LastOperation>,
    n: u64,
    dirty: bool,
    gen_counter: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct B {
    lease: Bucket<Lease>,
    hosts: Bucket<Heartbeat>,
    orders: Bucket<Order>,
    results: Bucket<HostResult>,
}

impl Sim {
    async fn run(mut self) {
        let b = B {
            lease: Bucket::open(&self.js, LEASE).await.unwrap(),
            hosts: Bucket::open(&self.js, HOSTS).await.unwrap(),
            orders: Bucket::open(&self.js, ORDERS).await.unwrap(),
            results: Bucket::open(&self.js, RESULTS).await.unwrap(),
        };
        let mut next_hb = 0;
        while !self.shared.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.tick(&b).await {
                eprintln!("sim {}: {e}", self.name);
            }
            let now = now_ms();
            if self.dirty || now >= next_hb {
                self.dirty = false;
                next_hb = now + self.opts.heartbeat.as_millis() as u64;
                let hb = self.heartbeat();
                if let Err(e) = b.hosts.put(&self.name, &hb).await {
                    eprintln!("sim {}: heartbeat: {e}", self.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn running(&self) -> GenerationRef {
        self.shared.running.lock().unwrap().clone()
    }

    fn set_running(&self, g: GenerationRef) {
        *self.shared.running.lock().unwrap() = g;
    }

    fn heartbeat(&mut self) -> Heartbeat {
        self.n += 1;
        let running = self.running();
        Heartbeat {
            host: self.name.clone(),
            n: self.n,
            sent_at: now_ms(),
            fleetd: "0.0.0-sim".into(),
            agent: "0.0.0-sim".into(),
            platform: "native".into(),
            labels: self.opts.labels.clone(),
            selected: Some(running.clone()),
            running: Some(running),
            state: if self.op.is_some() {
                HostActivity::Busy
            } else {
                HostActivity::Idle
            },
            operation: self.op.as_ref().map(|op| CurrentOperation {
                id: format!("sim{}", op.order.seq),
                kind: op.order.action.kind().to_string(),
                phase: match op.phase {
                    OpPhase::Starting { .. } => "starting".into(),
                    OpPhase::Waiting { .. } => "waiting-confirm".into(),
                },
                request: Some(op.order.id.clone()),
                to: Some(op.to.clone()),
            }),
            last: self.last.clone(),
            releases: self.releases.clone(),
            apps: self.opts.apps.clone(),
            drift: Default::default(),
            orders: OrdersSeen {
                last_seq: self.last_seq,
                max_epoch: self.max_epoch,
            },
            outbox: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn result(
        &self,
        b: &B,
        order: &Order,
        step: Step,
        outcome: ResultOutcome,
        from: Option<GenerationRef>,
        to: Option<GenerationRef>,
        error: &str,
    ) -> Result<(), String> {
        let key = ResultKey::Order {
            host: self.name.clone(),
            rollout: order.rollout.clone(),
            seq: order.seq,
            step,
        }
        .build()
        .map_err(|e| e.to_string())?;
        let r = HostResult {
            order: order.id.clone(),
            host: self.name.clone(),
            rollout: order.rollout.clone(),
            seq: order.seq,
            epoch: order.epoch,
            operation: Some(format!("sim{}", order.seq)),
            kind: Some(order.action.kind().to_string()),
            outcome,
            from,
            to,
            error: error.to_string(),
            journal: Vec::new(),
            at: now_ms(),
        };
        match b.results.create(&key, &r).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn finish(&mut self, request: &str, result: &str) {
        self.last = Some(LastOperation {
            id: format!("sim-{request}"),
            kind: "switch".into(),
            result: result.into(),
            request: Some(request.into()),
            finished_at: now_ms(),
        });
        self.dirty = true;
    }

    async fn tick(&mut self, b: &B) -> Result<(), String> {
        let now = now_ms();
        // The operation in flight moves on.
        match self.op.as_ref().map(|op| &op.phase) {
            Some(OpPhase::Starting { until }) if now >= *until => {
                let op = self.op.as_mut().unwrap();
                let deadline = match op.order.action {
                    Action::Switch { deadline_sec, .. } | Action::Sweep { deadline_sec, .. } => {
                        now + deadline_sec * 1000
                    }
                    _ => now + 60_000,
                };
                op.phase = OpPhase::Waiting { deadline };
                let (order, from, to) = (op.order.clone(), op.from.clone(), op.to.clone());
                if let Some((app, rel)) = op.release.clone() {
                    self.releases.insert(app, rel);
                }
                self.set_running(to.clone());
                self.dirty = true;
                self.result(
                    b,
                    &order,
                    Step::Awaiting,
                    ResultOutcome::AwaitingConfirm,
                    Some(from),
                    Some(to),
                    "",
                )
                .await?;
            }
            Some(OpPhase::Waiting { deadline }) if now >= *deadline => {
                let op = self.op.take().unwrap();
                self.revert(&op);
                self.result(
                    b,
                    &op.order,
                    Step::Final,
                    ResultOutcome::RolledBack,
                    Some(op.from.clone()),
                    Some(op.to.clone()),
                    "not confirmed in time",
                )
                .await?;
                self.finish(&op.order.id, "rolled-back");
            }
            _ => {}
        }
        // A new order? The poll is given up after a second, as the
        // next one comes 50 ms later: a request lost when the server went
        // away would otherwise hold this loop, and with it the heartbeat
        // (a real fleetd beats in a task of its own), for the client's
        // 5 s request timeout, and the coordinator would see the host
        // unavailable (one CI run under load: a wave red, paused, its
        // hosts reverted unconfirmed).
        let polled = tokio::time::timeout(Duration::from_secs(1), b.orders.get(&self.name))
            .await
            .map_err(|_| "windlass-orders: get: no answer within 1 s".to_string())?;
        let Some(e) = polled.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let o = e.value;
        if o.seq <= self.last_seq {
            return Ok(());
        }
        let live = lease::live_epoch(&b.lease)
            .await
            .map_err(|e| e.to_string())?;
        let stamp = OrderStamp {
            epoch: o.epoch,
            seq: o.seq,
            in_progress: false,
        };
        if lease::may_execute(self.max_epoch, self.last_seq, stamp, live) != Verdict::Execute {
            return Ok(());
        }
        self.max_epoch = Some(self.max_epoch.map_or(o.epoch, |m| m.max(o.epoch)));
        self.last_seq = o.seq;
        self.dirty = true;
        self.shared.executed.lock().unwrap().push(o.clone());
        self.execute(b, o).await
    }

    fn revert(&mut self, op: &Op) {
        self.set_running(op.from.clone());
        self.releases = op.releases_before.clone();
        self.dirty = true;
    }

    async fn execute(&mut self, b: &B, o: Order) -> Result<(), String> {
        let from = self.running();
        match o.action.clone() {
            Action::Switch { .. } | Action::Sweep { .. } => {
                self.result(
                    b,
                    &o,
                    Step::Started,
                    ResultOutcome::Started,
                    Some(from.clone()),
                    None,
                    "",
                )
                .await?;
                if self.opts.health == Health::Unhealthy {
                    self.result(
                        b,
                        &o,
                        Step::Final,
                        ResultOutcome::RolledBack,
                        Some(from),
                        None,
                        "health check failed",
                    )
                    .await?;
                    self.finish(&o.id, "rolled-back");
                    return Ok(());
                }
                self.gen_counter += 1;
                let (digest, release) = match &o.action {
                    Action::Switch { target, .. } => (target.digest().to_string(), None),
                    Action::Sweep { app, release, .. } => (
                        format!("sha256:{app}-{release}"),
                        Some((app.clone(), release.clone())),
                    ),
                    _ => unreachable!(),
                };
                let to = GenerationRef {
                    generation: GenerationId(self.gen_counter),
                    digest,
                };
                self.op = Some(Op {
                    order: o,
                    from,
                    to,
                    releases_before: self.releases.clone(),
                    release,
                    phase: OpPhase::Starting {
                        until: now_ms() + self.opts.switch_delay.as_millis() as u64,
                    },
                });
            }
            Action::Confirm { of } => {
                let waiting = self.op.as_ref().is_some_and(|op| {
                    op.order.id == of && matches!(op.phase, OpPhase::Waiting { .. })
                });
                if !waiting {
                    self.result(
                        b,
                        &o,
                        Step::Final,
                        ResultOutcome::Failed,
                        None,
                        None,
                        "not waiting",
                    )
                    .await?;
                    return Ok(());
                }
                let op = self.op.take().unwrap();
                let (f, t) = (Some(op.from.clone()), Some(op.to.clone()));
                self.result(
                    b,
                    &op.order,
                    Step::Final,
                    ResultOutcome::Committed,
                    f.clone(),
                    t.clone(),
                    "",
                )
                .await?;
                self.result(b, &o, Step::Final, ResultOutcome::Committed, f, t, "")
                    .await?;
                self.finish(&of, "committed");
            }
            Action::Rollback { of, to } => {
                self.result(
                    b,
                    &o,
                    Step::Started,
                    ResultOutcome::Started,
                    Some(from.clone()),
                    None,
                    "",
                )
                .await?;
                if let Some(op) = self.op.take_if(|op| op.order.id == of) {
                    self.revert(&op);
                    self.result(
                        b,
                        &op.order,
                        Step::Final,
                        ResultOutcome::Canceled,
                        Some(op.from.clone()),
                        None,
                        "canceled",
                    )
                    .await?;
                } else {
                    self.set_running(to.clone());
                }
                self.result(
                    b,
                    &o,
                    Step::Final,
                    ResultOutcome::Committed,
                    Some(from),
                    Some(to),
                    "",
                )
                .await?;
                self.finish(&o.id, "committed");
            }
            Action::Cancel { of } => {
                if let Some(op) = self.op.take_if(|op| op.order.id == of) {
                    self.revert(&op);
                    self.result(
                        b,
                        &op.order,
                        Step::Final,
                        ResultOutcome::Canceled,
                        Some(op.from.clone()),
                        None,
                        "canceled",
                    )
                    .await?;
                }
                self.result(b, &o, Step::Final, ResultOutcome::Committed, None, None, "")
                    .await?;
                self.dirty = true;
            }
            Action::Cutover { .. } => {
                self.result(
                    b,
                    &o,
                    Step::Final,
                    ResultOutcome::Refused,
                    None,
                    None,
                    "not simulated",
                )
                .await?;
            }
        }
        Ok(())
    }
}
