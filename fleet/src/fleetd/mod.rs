//! fleetd, the host side of fleet rollouts (docs/design/fleet.md §4, §6,
//! §7): it reads its host's order key, fences it against the live lease
//! (§3.4), has windlassd carry it out with the order id as the request
//! id, reports each step through the durable outbox, and puts heartbeats.
//!
//! Tasks (all in [`Fleetd`]; stopping it aborts them, as a crash would):
//! - **connection**: opens the buckets once NATS answers (retrying), and
//!   on every (re)connect reads the order key again, flushes the outbox
//!   and sends a heartbeat. NATS unreachable ⇒ everything local goes on;
//!   the client reconnects forever.
//! - **subscription**: one core NATS subscription on
//!   `$KV.windlass-orders.<host>` (no JetStream consumer, so no idle
//!   heartbeats), feeding the order loop.
//! - **orders**: judges each order ([`crate::lease::may_execute`]) and
//!   accepts it into the state file, then spawns its driver
//!   ([`exec`]). A parked order is judged again on the next message, on
//!   reconnect, and on each heartbeat tick (a lagging lease read).
//! - **heartbeat**: every interval, and 100 ms after any change the agent
//!   signals (windlassd taking or losing its bus name included) or a step
//!   of ours.
//! - **agent signals**: one subscription on windlassd's bus
//!   ([`AgentApi::changes`]).
//!
//! **Wakeups.** An idle fleetd (no order in flight) wakes for its
//! heartbeat tick and for news only: an order message, an agent signal,
//! a NATS connection event. Nothing polls between heartbeats:
//! - the heartbeat's clock is a thread of its own sleeping in the kernel
//!   until the next tick ([`heartbeat::clock`]), not a tokio timer: the
//!   runtime's timer wheel wakes a few seconds before a long deadline to
//!   move it to a finer level (measured: one wakeup in the middle of
//!   most intervals), a kernel sleep wakes once.
//! - windlassd absent from its bus: the bus tells when it appears
//!   (`NameOwnerChanged`); the heartbeat in between says `agent: ""`.
//! - the bus itself absent (or the connection to it lost): subscribing
//!   is tried again after 250 ms, doubling, and once that reaches the
//!   heartbeat interval, at each heartbeat tick ([`heartbeat::back_off`]).
//!   Opening the buckets backs off the same way; NATS reconnects back off
//!   from 100 ms to at most one heartbeat interval.
//! - a parked order is judged again, and an outbox that could not be
//!   published is tried again, at each heartbeat tick (and on reconnect).
//! - the NATS client's PING timer is set to a day ([`PING_INTERVAL`]):
//!   any timer pending in tokio's wheel wakes the runtime when it is
//!   cascaded, even one reset before it fires. Liveness comes from the
//!   heartbeat instead: its put must be acknowledged, and one that fails
//!   while the client believes it is connected forces a reconnect. (The
//!   server still PINGs once an hour to measure the round trip.)
//!
//! With an order in flight, its driver asks a missing agent again every
//! second and re-reads the followed operation every 5 s (a lost signal):
//! that is not idle, and it ends with the order.
//!
//! Not done yet (design §4, §6): native artifacts are not fetched from
//! the object store (a switch order needs its tree staged on the host
//! already; else it is `refused`, naming the digest), and results of
//! local operations (`<host>.local.<op-id>`) are not written; the
//! heartbeat's `last` shows the newest one.
//!
//! Choices where the design is silent:
//! - Ignored orders (older epoch, replays) produce no result: a stale
//!   coordinator's seq may be reused by the live one, whose result key
//!   must stay free.
//! - Agent calls that fail for a transient reason (windlassd restarting,
//!   off the bus) or find the agent busy with another operation (a timer
//!   sweep, a local switch) are asked again every second until the
//!   order's `deadline_at`, then the order ends `failed` (`refused` when
//!   busy); other refusals (invalid, not found, unsupported) end it at
//!   once as `refused`.

pub mod exec;
pub mod heartbeat;
pub mod outbox;
pub mod state;

/// The agent's redaction of URLs (credentials in user info and queries),
/// shared as a file: the fleet crate does not link the agent's library
/// (its HTTP and TLS stack) for 100 dependency-free lines.
#[path = "../../../agent/src/redact.rs"]
mod redact;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, watch};

use crate::agent::AgentApi;
use crate::buckets::{HOSTS, LEASE, ORDERS, RESULTS};
use crate::kv::Bucket;
use crate::lease::{self, Lease, OrderStamp, Verdict};
use crate::model::{Heartbeat, HostId, HostResult, Order, check_id};
use outbox::Outbox;
use state::StateFile;

/// The NATS client's own PING period: a day, i.e. practically never
/// while heartbeats flow (every message from the server resets it). A
/// heartbeat whose put fails while the client thinks it is connected
/// makes it reconnect instead (heartbeat::send).
pub const PING_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How fleetd is run.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: HostId,
    pub nats_url: String,
    /// How it logs in to NATS and checks the server (credentials,
    /// nkey or user and password file; TLS CA and client certificate).
    pub auth: crate::auth::NatsAuth,
    pub state_dir: PathBuf,
    pub heartbeat_interval: Duration,
    pub labels: BTreeMap<String, String>,
}

impl Config {
    pub fn new(host: impl Into<String>, nats_url: impl Into<String>, state_dir: PathBuf) -> Self {
        Config {
            host: host.into(),
            nats_url: nats_url.into(),
            auth: Default::default(),
            state_dir,
            heartbeat_interval: Duration::from_secs(30),
            labels: BTreeMap::new(),
        }
    }
}

/// The buckets fleetd uses.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub orders: Bucket<Order>,
    pub lease: Bucket<Lease>,
    pub hosts: Bucket<Heartbeat>,
    pub results: Bucket<HostResult>,
}

impl Buckets {
    pub async fn open(js: &jetstream::Context) -> Result<Buckets, crate::kv::KvError> {
        Ok(Buckets {
            orders: Bucket::open(js, ORDERS).await?,
            lease: Bucket::open(js, LEASE).await?,
            hosts: Bucket::open(js, HOSTS).await?,
            results: Bucket::open(js, RESULTS).await?,
        })
    }
}

pub(crate) enum OrderEvent {
    /// An order as published on the host's subject.
    Message(Box<Order>),
    /// Read the order key again (start, reconnect).
    Catchup,
    /// Judge a parked order again.
    Recheck,
}

pub(crate) struct Ctx<A> {
    pub cfg: Config,
    pub agent: Arc<A>,
    pub state: Mutex<StateFile>,
    pub outbox: Outbox,
    pub buckets: watch::Sender<Option<Buckets>>,
    pub kick_flush: Notify,
    pub kick_heartbeat: Notify,
    /// Every heartbeat tick (`notify_waiters`): what waits for something
    /// absent tries again with it.
    pub beat: Notify,
    pub orders: mpsc::UnboundedSender<OrderEvent>,
    pub heartbeats_sent: AtomicU64,
    pub client: async_nats::Client,
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl<A> Ctx<A> {
    pub fn state(&self) -> std::sync::MutexGuard<'_, StateFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn buckets(&self) -> Option<Buckets> {
        self.buckets.borrow().clone()
    }

    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|h| !h.is_finished());
        t.push(h.abort_handle());
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A running fleetd. Dropping it (or [`Fleetd::stop`]) aborts every task
/// at once, as a crash would: what it persisted is what a restart finds.
pub struct Fleetd<A: AgentApi> {
    ctx: Arc<Ctx<A>>,
    client: async_nats::Client,
}

impl<A: AgentApi> Fleetd<A> {
    /// Starts fleetd: loads the state and the outbox, resumes the orders
    /// in flight, and connects to NATS in the background (it does not
    /// wait for NATS to answer).
    pub async fn start(cfg: Config, agent: A) -> anyhow::Result<Fleetd<A>> {
        check_id("host", &cfg.host).map_err(anyhow::Error::msg)?;
        let state = StateFile::open(&cfg.state_dir)?;
        let outbox = Outbox::open(&cfg.state_dir)?;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let opts = cfg.auth.options().await.map_err(anyhow::Error::msg)?;
        let reconnect_cap = cfg.heartbeat_interval.max(Duration::from_millis(100));
        // Replies come to the host's own inbox prefix: its permission
        // block lets it subscribe to nothing else (crate::permissions).
        let client = opts
            .custom_inbox_prefix(crate::permissions::inbox_prefix(&cfg.host))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // The heartbeat's acknowledgement is the liveness check
            // (heartbeat::send); the client's own PING timer would be a
            // wakeup of its own (see the module doc).
            .ping_interval(PING_INTERVAL)
            // 100 ms doubling, at most a heartbeat interval: a server
            // that stays away costs about one attempt per heartbeat.
            .reconnect_delay_callback(move |n| {
                Duration::from_millis(100u64.saturating_mul(1 << n.min(16))).min(reconnect_cap)
            })
            .event_callback(move |e| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(e);
                }
            })
            .connect(cfg.nats_url.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("NATS {}: {e}", redact::url(&cfg.nats_url)))?;
        let (orders_tx, orders_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            cfg,
            agent: Arc::new(agent),
            state: Mutex::new(state),
            outbox,
            buckets: watch::channel(None).0,
            kick_flush: Notify::new(),
            kick_heartbeat: Notify::new(),
            beat: Notify::new(),
            orders: orders_tx,
            heartbeats_sent: AtomicU64::new(0),
            client: client.clone(),
            tasks: Mutex::new(Vec::new()),
        });
        // Orders accepted before a restart are driven on.
        let open: Vec<String> = ctx.state().st.open.keys().cloned().collect();
        for id in open {
            let c = ctx.clone();
            ctx.spawn(exec::drive(c, id));
        }
        // Connection: buckets, then catch-up on every (re)connect.
        let c = ctx.clone();
        let js = jetstream::new(client.clone());
        ctx.spawn(async move {
            let mut failures = 0;
            let b = loop {
                match Buckets::open(&js).await {
                    Ok(b) => break b,
                    Err(e) => {
                        tracing::warn!("fleet buckets: {e}; trying again");
                        heartbeat::back_off(&*c, failures).await;
                        failures += 1;
                    }
                }
            };
            c.buckets.send_replace(Some(b));
            loop {
                let _ = c.orders.send(OrderEvent::Catchup);
                c.kick_flush.notify_one();
                c.kick_heartbeat.notify_one();
                loop {
                    match events.recv().await {
                        Some(async_nats::Event::Connected) => break,
                        Some(e) => tracing::info!("NATS: {e}"),
                        None => return,
                    }
                }
                tracing::info!("NATS: connected");
            }
        });
        // The order key's subject.
        let c = ctx.clone();
        let subject = format!("$KV.{ORDERS}.{}", ctx.cfg.host);
        let mut sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| anyhow::anyhow!("subscribe {subject}: {e}"))?;
        ctx.spawn(async move {
            while let Some(m) = sub.next().await {
                let op = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .map(|v| v.as_str().to_string());
                if op.is_some_and(|o| o != "PUT") || m.payload.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Order>(&m.payload) {
                    Ok(o) => {
                        let _ = c.orders.send(OrderEvent::Message(Box::new(o)));
                    }
                    Err(e) => tracing::error!("{}: not an order: {e}", m.subject),
                }
            }
        });
        let c = ctx.clone();
        ctx.spawn(order_loop(c, orders_rx));
        let c = ctx.clone();
        ctx.spawn(async move {
            loop {
                c.kick_flush.notified().await;
                flush(&c).await;
            }
        });
        let c = ctx.clone();
        ctx.spawn(heartbeat::run(c));
        let c = ctx.clone();
        ctx.spawn(heartbeat::watch_agent(c));
        Ok(Fleetd { ctx, client })
    }

    /// Aborts every task (a crash, as far as the state is concerned).
    pub fn stop(self) {}

    /// Results still waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.ctx.outbox.len()
    }

    /// A copy of the persisted state.
    pub fn state(&self) -> state::FleetdState {
        self.ctx.state().st.clone()
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

impl<A: AgentApi> Drop for Fleetd<A> {
    fn drop(&mut self) {
        for t in self
            .ctx
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// Publishes the outbox if NATS is there.
pub(crate) async fn flush<A>(ctx: &Ctx<A>) {
    let Some(b) = ctx.buckets() else { return };
    match ctx.outbox.flush(&b.results).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!("published {n} result(s)");
            ctx.kick_heartbeat.notify_one();
        }
        Err(e) => tracing::warn!("outbox: {e}; kept for the next connection"),
    }
}

async fn order_loop<A: AgentApi>(ctx: Arc<Ctx<A>>, mut rx: mpsc::UnboundedReceiver<OrderEvent>) {
    let mut parked: Option<Order> = None;
    while let Some(ev) = rx.recv().await {
        let order = match ev {
            OrderEvent::Message(o) => *o,
            OrderEvent::Catchup => {
                let Some(b) = ctx.buckets() else { continue };
                match b.orders.get(&ctx.cfg.host).await {
                    Ok(Some(e)) => e.value,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!("reading the order key: {e}");
                        continue;
                    }
                }
            }
            OrderEvent::Recheck => match parked.take() {
                Some(o) => o,
                None => continue,
            },
        };
        // The key holds one order: the one judged last replaces a parked
        // one, whatever their seqs (a dead coordinator's parked order may
        // carry a larger seq than the live one's next).
        parked = judge(&ctx, order).await;
    }
}

/// Judges one order; `Some(order)` when it is parked.
async fn judge<A: AgentApi>(ctx: &Arc<Ctx<A>>, order: Order) -> Option<Order> {
    if order.host != ctx.cfg.host {
        tracing::warn!(
            "order {} is for host {:?}, not us: ignored",
            order.id,
            order.host
        );
        return None;
    }
    let stamp = {
        let s = ctx.state();
        if s.st.open.contains_key(&order.id) || s.st.host.ops.contains_key(&order.id) {
            return None;
        }
        let in_progress =
            s.st.host
                .in_progress
                .as_ref()
                .is_some_and(|o| o.id == order.id);
        let stamp = OrderStamp {
            epoch: order.epoch,
            seq: order.seq,
            in_progress,
        };
        // Without asking the lease: is it to be ignored anyway?
        if lease::may_execute(
            s.st.max_epoch(),
            s.st.host.last_seq,
            stamp,
            Some(order.epoch),
        ) == Verdict::Ignore
        {
            tracing::info!(
                "order {} (seq {}, epoch {}) ignored: already done or older than epoch {:?}",
                order.id,
                order.seq,
                order.epoch,
                s.st.max_epoch().map(|e| e.to_string())
            );
            return None;
        }
        stamp
    };
    let Some(b) = ctx.buckets() else {
        return Some(order);
    };
    let live = match live_epoch(ctx, &b).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("order {}: cannot read the lease ({e}); parked", order.id);
            return Some(order);
        }
    };
    let verdict = {
        let s = ctx.state();
        lease::may_execute(s.st.max_epoch(), s.st.host.last_seq, stamp, live)
    };
    match verdict {
        Verdict::Ignore => None,
        Verdict::Park => {
            tracing::info!(
                "order {} of epoch {} parked: the live lease's epoch is {:?}",
                order.id,
                order.epoch,
                live.map(|e| e.to_string())
            );
            Some(order)
        }
        Verdict::Execute => {
            exec::accept(ctx, order);
            None
        }
    }
}

/// The live lease's epoch, if its era is the lease stream's (a lease
/// written before the buckets were re-created is no lease).
async fn live_epoch<A>(
    ctx: &Ctx<A>,
    b: &Buckets,
) -> Result<Option<crate::model::Epoch>, crate::kv::KvError> {
    let Some(epoch) = lease::live_epoch(&b.lease).await? else {
        return Ok(None);
    };
    let era = lease::era(&b.lease).await?;
    {
        let mut s = ctx.state();
        if s.st.host.era_seen != era {
            s.st.host.era_seen = era;
            if let Err(e) = s.save() {
                tracing::error!("state: {e}");
            }
        }
    }
    Ok((epoch.era == era).then_some(epoch))
}
