//! The coordinator: the runtime around the pure wave machine (`wave.rs`),
//! docs/design/fleet.md §3 and §5.
//!
//! [`Coordinator::run`] campaigns for the lease (`lease.rs`); once leader
//! with epoch E it runs a *term*:
//! 1. **takeover** (§3.3, `takeover.rs`): every active rollout (running,
//!    paused, rolling back) whose state carries another epoch is adopted:
//!    its state is rewritten by revision with E, then every order key of
//!    that rollout without a final result is rewritten by revision with
//!    E (same id, seq and action). A rollout just created by
//!    [`start_rollout`] (epoch zero) is adopted the same way when it
//!    first shows up.
//! 2. **drive** (`drive.rs`): for each active rollout, read state, spec
//!    and control, fold in the heartbeats and results it keeps from its
//!    watches, call [`wave::step`] and perform the effects in order:
//!    `SaveState` is an update by revision of `<rollout>.state`, an order
//!    is an update of `windlass-orders/<host>` at the last revision this
//!    term read or wrote (a create when the key has none), and
//!    `RecordCanonical` writes `canonical.<app>`. [`LeaseGuard::check`]
//!    runs immediately before every write.
//!
//! A term ends, and the coordinator goes back to campaigning, at once
//! when the guard fails (its drive future is dropped mid-await: nothing
//! more is written) or when a write is refused by the server (a
//! `Conflict` or `AlreadyExists`: someone newer fenced us), or when a
//! state carries a newer epoch than ours.
//!
//! **Wakeups.** Three KV watches (hosts, results, rollouts), merged: an
//! event wakes the drive (events arriving within 20 ms are taken as one
//! batch); otherwise the earliest [`wave::next_wake`] of the active
//! rollouts, and at the latest every 60 s a full re-read. No other poll.
//! Idle cost: the three ordered consumers each get async-nats' fixed 5 s
//! idle heartbeat from the server (handled inside the client: they do
//! not wake the drive), plus one drive pass per heartbeat put, which
//! reads nothing while no rollout is active. Watching keeps the
//! heartbeat→confirm path to one event instead of a poll period.
//!
//! Where the design is silent:
//! - Heartbeat receive times are the coordinator's clock when the watch
//!   delivers the put; those loaded at the start of a term use the
//!   entry's server `created` time.
//! - The results kept for a rollout are the latest step of each
//!   (host, seq) (started < awaiting < final); local results are ignored.
//! - An order write whose `AlreadyExists`/`Conflict` means another writer
//!   touched the host's order key: only a newer coordinator does, so the
//!   term ends. A transport error retries an order write 3 times (guard
//!   checked each time), then ends the term, as does a state or
//!   canonical write whose outcome is unknown; the next term's takeover
//!   writes any order the state holds but the key lacks. A failed
//!   *read* (or a watch that fails) is retried within the term every
//!   second: the guard ends the term if the server stays away past the
//!   lease's validity.
//! - Takeover also *repairs*: when the state allocated an order (its seq
//!   is the host's latest) but the host's key holds an older one or none
//!   (a coordinator died between its state save and the order write),
//!   the order is rebuilt from the state and spec and written with E.
//! - [`start_rollout`] refuses a rollout sharing a host with an active
//!   one (two rollouts would interleave one host's seqs) and starts seqs
//!   above both the hosts' reported `orders.last_seq` and the seq of the
//!   order in each host's key.
//! - A sweep whose rollout file names no release: the first drive pass
//!   of a term that finds the state without one lists the registry in a
//!   task of its own (`discover.rs`: where to look and what counts come
//!   from the hosts' heartbeats) and saves the release it chose into the
//!   state, or the rollout as `refused` with the reason; nothing is
//!   ordered before. A term that ends before the save leaves it to the
//!   next term, which discovers again (still before any order).
//! - `canonical.<app>` is `{release, rollout, epoch, recorded_at}`,
//!   written after the state save that sets `canonical_recorded`; a
//!   coordinator dying between the two leaves it unwritten (logged by
//!   nobody): the operator sees `completed` with `canonical_recorded`.

mod discover;
mod drive;
mod takeover;

pub use discover::RegistryConfig;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use crate::buckets::{self, HOSTS, LEASE, ORDERS, RESULTS, ROLLOUTS, RolloutKey};
use crate::kv::{Bucket, KvError};
use crate::lease::{Campaign, Leadership, Lease};
use crate::model::{Control, ControlCommand, Epoch, Heartbeat, HostResult, Order, RolloutId};
use crate::select::{self, SelectError};
use crate::spec::{self, RolloutSpec, SpecErrors};
use crate::wave::{self, RolloutPhase, RolloutState};

/// `windlass-rollouts / canonical.<app>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canonical {
    pub release: String,
    pub rollout: RolloutId,
    pub epoch: Epoch,
    pub recorded_at: u64,
}

/// The buckets, typed (the rollouts bucket holds four types).
#[derive(Clone, Debug)]
pub struct Buckets {
    pub lease: Bucket<Lease>,
    pub hosts: Bucket<Heartbeat>,
    pub orders: Bucket<Order>,
    pub results: Bucket<HostResult>,
    pub specs: Bucket<RolloutSpec>,
    pub states: Bucket<RolloutState>,
    pub controls: Bucket<Control>,
    pub canonical: Bucket<Canonical>,
}

impl Buckets {
    pub async fn open(js: &jetstream::Context) -> Result<Buckets, KvError> {
        let rollouts: Bucket<RolloutState> = Bucket::open(js, ROLLOUTS).await?;
        let store = rollouts.store().clone();
        Ok(Buckets {
            lease: Bucket::open(js, LEASE).await?,
            hosts: Bucket::open(js, HOSTS).await?,
            orders: Bucket::open(js, ORDERS).await?,
            results: Bucket::open(js, RESULTS).await?,
            specs: Bucket::from_store(store.clone()),
            controls: Bucket::from_store(store.clone()),
            canonical: Bucket::from_store(store),
            states: rollouts,
        })
    }
}

/// Whether a rollout in this phase still needs a coordinator.
pub fn is_active(phase: RolloutPhase) -> bool {
    matches!(
        phase,
        RolloutPhase::Running | RolloutPhase::Paused | RolloutPhase::RollingBack
    )
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn key(k: RolloutKey) -> Result<String, KvError> {
    k.build().map_err(|e| KvError::InvalidKey {
        bucket: ROLLOUTS.to_string(),
        key: e.0,
    })
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Written into the lease for operators (`<hostname>:<pid>`).
    pub holder: String,
    /// Must equal the lease bucket's `max_age` (checked at start).
    pub lease_ttl: Duration,
    /// Test hooks; inert unless armed.
    pub faults: Faults,
    /// How sweeps without a release list the registry.
    pub registry: RegistryConfig,
}

impl Config {
    pub fn new(holder: impl Into<String>, lease_ttl: Duration) -> Config {
        Config {
            holder: holder.into(),
            lease_ttl,
            faults: Faults::default(),
            registry: RegistryConfig::default(),
        }
    }
}

/// What a coordinator is doing, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The epoch of the current term, while leading.
    pub leading: Option<Epoch>,
    /// Terms won so far.
    pub terms: u32,
    /// Writes the server accepted (states, orders, canonical).
    pub writes: u64,
    /// Writes the server refused (`Conflict`/`AlreadyExists`): each ends
    /// a term.
    pub rejected: u64,
    /// Why the last term ended.
    pub last_end: Option<String>,
}

/// Fault injection for tests.
///
/// - In process (always compiled, inert unless armed):
///   [`Faults::freeze_before_next_order_write`] makes the next order
///   write, right after its guard check, stop its lease renewals and
///   block its thread until [`Faults::thaw`] — what a SIGSTOP does to a
///   process, without stopping the test.
/// - With the `fault-injection` cargo feature, the environment variable
///   `WINDLASS_FLEET_FAULT=stop-before-order-write` makes the process
///   SIGSTOP itself at that point (once).
#[derive(Clone, Default)]
pub struct Faults(Arc<FaultState>);

#[derive(Default)]
struct FaultState {
    armed: AtomicBool,
    /// `true` while a writer is frozen.
    frozen: Mutex<bool>,
    cv: Condvar,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("armed", &self.0.armed.load(Ordering::SeqCst))
            .field("frozen", &self.is_frozen())
            .finish()
    }
}

impl Faults {
    pub fn freeze_before_next_order_write(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    pub fn is_frozen(&self) -> bool {
        *self.0.frozen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn thaw(&self) {
        let mut f = self.0.frozen.lock().unwrap_or_else(|p| p.into_inner());
        *f = false;
        self.0.cv.notify_all();
    }

    /// The hook between an order write's guard check and the write.
    fn before_order_write(&self, leadership: &Leadership) {
        #[cfg(feature = "fault-injection")]
        {
            static FIRED: AtomicBool = AtomicBool::new(false);
            if std::env::var("WINDLASS_FLEET_FAULT").as_deref() == Ok("stop-before-order-write")
                && !FIRED.swap(true, Ordering::SeqCst)
            {
                eprintln!("windlass-coordinator: fault injected: stop-before-order-write");
                // SAFETY: signals our own process; it resumes on SIGCONT.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGSTOP);
                }
            }
        }
        if !self.0.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        tracing::warn!("fault injected: frozen before an order write");
        leadership.pause_renewals(true);
        // Blocks this thread, as a stopped process would; the runtime's
        // other tasks move to other workers (needs the multi-thread
        // runtime, as the binary and the tests use).
        tokio::task::block_in_place(|| {
            let mut f = self.0.frozen.lock().unwrap_or_else(|p| p.into_inner());
            *f = true;
            self.0.cv.notify_all();
            while *f {
                f = self.0.cv.wait(f).unwrap_or_else(|p| p.into_inner());
            }
        });
        leadership.pause_renewals(false);
    }
}

/// One coordinator process's loop; see the module doc.
pub struct Coordinator {
    js: jetstream::Context,
    cfg: Config,
    status: Arc<Mutex<Status>>,
}

/// A view of a running coordinator's [`Status`].
#[derive(Clone, Debug)]
pub struct StatusHandle(Arc<Mutex<Status>>);

impl StatusHandle {
    pub fn get(&self) -> Status {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Coordinator {
    pub fn new(js: jetstream::Context, cfg: Config) -> Coordinator {
        Coordinator {
            js,
            cfg,
            status: Arc::default(),
        }
    }

    pub fn status(&self) -> StatusHandle {
        StatusHandle(self.status.clone())
    }

    /// Verifies the buckets, then campaigns and leads until `cancel`
    /// resolves (then resigns the lease, so a successor need not wait
    /// for the TTL). Returns an error only for what retrying cannot fix
    /// (missing or misconfigured buckets).
    pub async fn run(self, cancel: impl Future<Output = ()>) -> anyhow::Result<()> {
        let bcfg = buckets::Config {
            lease_ttl: self.cfg.lease_ttl,
            ..Default::default()
        };
        buckets::verify(&self.js, &bcfg).await?;
        let b = Buckets::open(&self.js).await?;
        let registry = discover::Registry::new(self.cfg.registry.clone());
        let campaign = Campaign::new(b.lease.clone(), self.cfg.holder.clone(), self.cfg.lease_ttl);
        tokio::pin!(cancel);
        loop {
            let leadership = tokio::select! {
                _ = &mut cancel => return Ok(()),
                l = campaign.campaign() => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!("campaign: {e}");
                        tokio::time::sleep(self.cfg.lease_ttl / 2).await;
                        continue;
                    }
                },
            };
            let epoch = leadership.epoch();
            tracing::info!("{}: leading with epoch {epoch}", self.cfg.holder);
            self.set(|s| {
                s.leading = Some(epoch);
                s.terms += 1;
            });
            let guard = leadership.guard();
            let end = {
                let term =
                    drive::Term::new(&b, &leadership, &self.cfg.faults, &self.status, &registry);
                let lead = term.lead();
                tokio::pin!(lead);
                tokio::select! {
                    _ = &mut cancel => None,
                    lost = guard.lost() => Some(drive::TermEnd::Lost(lost)),
                    end = &mut lead => Some(end),
                }
            };
            self.set(|s| {
                s.leading = None;
                s.last_end = Some(end.as_ref().map_or("cancelled".into(), |e| e.to_string()));
            });
            match end {
                None => {
                    if let Err(e) = leadership.resign().await {
                        tracing::warn!("resign: {e}");
                    }
                    return Ok(());
                }
                Some(e) => {
                    tracing::warn!("{}: term {epoch} ended: {e}", self.cfg.holder);
                    if let Err(e) = leadership.resign().await {
                        tracing::debug!("resign: {e}");
                    }
                    // Let a newer holder's renewals settle before trying.
                    tokio::time::sleep(self.cfg.lease_ttl / 2).await;
                }
            }
        }
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// [`Coordinator::run`] in one call.
pub async fn run(
    js: jetstream::Context,
    cfg: Config,
    cancel: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    Coordinator::new(js, cfg).run(cancel).await
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    #[error("{0}")]
    Select(#[from] SelectError),
    #[error("{0}")]
    Refused(String),
    #[error("rollout {0:?} exists already")]
    Exists(RolloutId),
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// Reads and starts the rollout file `spec_file`; see [`start_rollout_text`].
pub async fn start_rollout(
    js: &jetstream::Context,
    spec_file: &Path,
) -> Result<RolloutState, StartError> {
    let name = spec_file.display().to_string();
    let text = tokio::fs::read_to_string(spec_file)
        .await
        .map_err(|source| StartError::Read {
            file: name.clone(),
            source,
        })?;
    start_rollout_text(js, &name, &text).await
}

/// Parses the spec, resolves its hosts from the current heartbeats,
/// builds the first state (epoch zero: the coordinator adopts it) with
/// seqs above anything the hosts have seen, and creates `<id>.spec` then
/// `<id>.state`. The coordinator picks it up from its watch.
pub async fn start_rollout_text(
    js: &jetstream::Context,
    file: &str,
    text: &str,
) -> Result<RolloutState, StartError> {
    let spec = spec::parse(file, text)?;
    let b = Buckets::open(js).await?;
    let mut known = BTreeMap::new();
    let mut last_seq = BTreeMap::new();
    for host in b.hosts.keys().await? {
        if let Some(e) = b.hosts.get(&host).await? {
            last_seq.insert(host.clone(), e.value.orders.last_seq);
            known.insert(host, e.value.labels);
        }
    }
    let hosts = select::resolve(&spec.waves, &known)?;
    let ours: BTreeSet<&String> = hosts.iter().flatten().collect();
    // One active rollout per host.
    for k in b.states.keys().await? {
        if !matches!(RolloutKey::parse(&k), Ok(RolloutKey::State(_))) {
            continue;
        }
        let s = match b.states.get(&k).await {
            Ok(Some(e)) => e.value,
            Ok(None) => continue,
            // Not a state this version reads: no rollout of ours.
            Err(e @ KvError::Decode { .. }) => {
                tracing::warn!("ignored: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !is_active(s.phase) {
            continue;
        }
        if s.id == spec.id {
            return Err(StartError::Exists(spec.id));
        }
        if let Some(h) = s
            .waves
            .iter()
            .flat_map(|w| w.hosts.keys())
            .find(|h| ours.contains(h))
        {
            return Err(StartError::Refused(format!(
                "host {h:?} is in rollout {:?}, which is {}",
                s.id, s.phase
            )));
        }
    }
    let mut first_seq = 0;
    for h in &ours {
        first_seq = first_seq.max(last_seq.get(*h).copied().unwrap_or(0));
        if let Some(o) = b.orders.get(h).await? {
            first_seq = first_seq.max(o.value.seq);
        }
    }
    let state = wave::start(
        &spec,
        hosts,
        Epoch { era: 0, rev: 0 },
        first_seq + 1,
        now_ms(),
    )
    .map_err(StartError::Refused)?;
    let exists = |e: KvError| {
        if e.is_already_exists() {
            StartError::Exists(spec.id.clone())
        } else {
            e.into()
        }
    };
    b.specs
        .create(&key(RolloutKey::Spec(spec.id.clone()))?, &spec)
        .await
        .map_err(exists)?;
    b.states
        .create(&key(RolloutKey::State(spec.id.clone()))?, &state)
        .await
        .map_err(exists)?;
    Ok(state)
}

/// Writes `<rollout>.control` (by revision, or create); the revision.
/// `NotFound` when the rollout has no state; `Conflict` when another
/// operator wrote it meanwhile.
pub async fn control(
    js: &jetstream::Context,
    rollout: &str,
    command: ControlCommand,
    by: &str,
) -> Result<u64, KvError> {
    let b = Buckets::open(js).await?;
    b.states
        .require(&key(RolloutKey::State(rollout.to_string()))?)
        .await?;
    let k = key(RolloutKey::Control(rollout.to_string()))?;
    let c = Control {
        command,
        by: by.to_string(),
        at: now_ms(),
    };
    match b.controls.get(&k).await? {
        Some(e) => b.controls.update(&k, &c, e.revision).await,
        None => b.controls.create(&k, &c).await,
    }
}
