//! One term of leadership: the caches fed by the watches, the drive pass
//! over the active rollouts, and the guarded writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt, stream};

use super::discover::{self, Registry};
use super::{Buckets, Canonical, Faults, Status, is_active, key, now_ms};
use crate::buckets::{ORDERS, ResultKey, RolloutKey, Step, host_key};
use crate::kv::{Change, KvError};
use crate::lease::{Leadership, LeaseGuard, Lost};
use crate::model::{Epoch, Heartbeat, HostId, HostResult, Order, RolloutId};
use crate::spec::{RolloutSpec, TargetSpec};
use crate::wave::{self, Effect, Observed, RolloutPhase, RolloutState};

/// Why a term ended.
#[derive(Debug)]
pub(crate) enum TermEnd {
    /// The lease guard failed.
    Lost(Lost),
    /// The server refused a write, or a state carries a newer epoch:
    /// another coordinator leads.
    Fenced(String),
    /// A read failed (retried within the term while it is transport).
    Kv(KvError),
    /// A write's outcome is unknown (after retries): the term ends, and
    /// the next term's takeover writes what the state holds.
    WriteFailed(KvError),
    /// A watch ended.
    Watch(String),
}

impl std::fmt::Display for TermEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermEnd::Lost(l) => write!(f, "{l}"),
            TermEnd::Fenced(why) => write!(f, "fenced: {why}"),
            TermEnd::Kv(e) => write!(f, "{e}"),
            TermEnd::WriteFailed(e) => write!(f, "a write failed: {e}"),
            TermEnd::Watch(why) => write!(f, "watch: {why}"),
        }
    }
}

impl From<KvError> for TermEnd {
    fn from(e: KvError) -> Self {
        TermEnd::Kv(e)
    }
}

enum Event {
    Host(Box<Change<Heartbeat>>),
    Result(Box<Change<HostResult>>),
    /// A key of the rollouts bucket changed.
    Rollout(String),
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, KvError>> + Send>>;

/// Per rollout: the latest step of each (host, seq).
type Results = BTreeMap<(HostId, u64), (Step, HostResult)>;

/// How long events are gathered into one drive pass.
const BATCH: Duration = Duration::from_millis(20);
/// The longest sleep without news: a full re-read.
const MAX_IDLE_MS: u64 = 60_000;
/// After a failed read.
const RETRY_MS: u64 = 1000;

pub(crate) struct Term<'a> {
    pub(super) b: &'a Buckets,
    leadership: &'a Leadership,
    guard: LeaseGuard,
    pub(super) epoch: Epoch,
    faults: &'a Faults,
    status: &'a Arc<Mutex<Status>>,
    /// The latest heartbeat of each host with its receive time.
    heartbeats: BTreeMap<HostId, (Heartbeat, u64)>,
    /// Per active rollout: the latest step of each (host, seq).
    results: HashMap<RolloutId, Results>,
    active: BTreeSet<RolloutId>,
    specs: HashMap<RolloutId, RolloutSpec>,
    /// The order key revisions this term read or wrote.
    order_revs: HashMap<HostId, u64>,
    registry: &'a Registry,
    /// Release discoveries in flight (sweeps without a release).
    discoveries: HashMap<RolloutId, tokio::task::JoinHandle<Result<String, String>>>,
    /// A discovery ended: drive again.
    discovered: tokio::sync::mpsc::UnboundedSender<()>,
    discovered_rx: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl Drop for Term<'_> {
    fn drop(&mut self) {
        for h in self.discoveries.values() {
            h.abort();
        }
    }
}

impl<'a> Term<'a> {
    pub(crate) fn new(
        b: &'a Buckets,
        leadership: &'a Leadership,
        faults: &'a Faults,
        status: &'a Arc<Mutex<Status>>,
        registry: &'a Registry,
    ) -> Term<'a> {
        let (discovered, discovered_rx) = tokio::sync::mpsc::unbounded_channel();
        Term {
            b,
            leadership,
            guard: leadership.guard(),
            epoch: leadership.epoch(),
            faults,
            status,
            heartbeats: BTreeMap::new(),
            results: HashMap::new(),
            active: BTreeSet::new(),
            specs: HashMap::new(),
            order_revs: HashMap::new(),
            registry,
            discoveries: HashMap::new(),
            discovered,
            discovered_rx: Some(discovered_rx),
        }
    }

    /// Leads until something ends the term.
    pub(crate) async fn lead(mut self) -> TermEnd {
        match self.lead_inner().await {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }

    async fn lead_inner(&mut self) -> Result<Infallible, TermEnd> {
        let mut discovered = self.discovered_rx.take().expect("a term is led once");
        let mut events = self.connect().await?;
        loop {
            let mut wake: Option<u64> = None;
            let ids: Vec<RolloutId> = self.active.iter().cloned().collect();
            for id in ids {
                let w = match self.drive(&id).await {
                    Ok(w) => w,
                    // A read failed before anything was written: again
                    // soon (the guard runs out if this goes on).
                    Err(TermEnd::Kv(e)) if e.is_transport() => {
                        tracing::warn!("rollout {id}: {e}; again in 1 s");
                        Some(now_ms() + RETRY_MS)
                    }
                    // Not our JSON (a newer version's, or damaged):
                    // left alone, said once.
                    Err(TermEnd::Kv(e @ KvError::Decode { .. })) => {
                        tracing::error!("rollout {id}: {e}; left alone");
                        self.retire(&id);
                        None
                    }
                    Err(e) => return Err(e),
                };
                if let Some(w) = w {
                    wake = Some(wake.map_or(w, |x| x.min(w)));
                }
            }
            let now = now_ms();
            let until = wake.unwrap_or(u64::MAX).min(now + MAX_IDLE_MS);
            let sleep = Duration::from_millis(until.saturating_sub(now));
            tokio::select! {
                ev = events.next() => {
                    let mut r = self.apply(ev);
                    let end = tokio::time::Instant::now() + BATCH;
                    while r.is_ok()
                        && let Ok(ev) = tokio::time::timeout_at(end, events.next()).await
                    {
                        r = self.apply(ev);
                    }
                    if let Err(e) = r {
                        tracing::warn!("{e}; watching and reading again");
                        events = self.connect().await?;
                    }
                }
                _ = discovered.recv() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// The watches, then the full read (watch first: nothing written in
    /// between is missed); retried while the server cannot be reached.
    async fn connect(&mut self) -> Result<Events, TermEnd> {
        loop {
            let r = match self.watch().await {
                Ok(ev) => self.load().await.map(|()| ev),
                Err(e) => Err(e),
            };
            match r {
                Err(TermEnd::Kv(e)) if e.is_transport() => {
                    tracing::warn!("{e}; again in 1 s");
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                }
                r => return r,
            }
        }
    }

    async fn watch(&self) -> Result<Events, TermEnd> {
        let hosts = self
            .b
            .hosts
            .watch(">")
            .await?
            .map(|c| c.map(|c| Event::Host(Box::new(c))));
        let results = self
            .b
            .results
            .watch(">")
            .await?
            .map(|c| c.map(|c| Event::Result(Box::new(c))));
        let bucket = self.b.states.name().to_string();
        let rollouts = self
            .b
            .states
            .store()
            .watch(">")
            .await
            .map_err(|e| KvError::Transport {
                bucket: bucket.clone(),
                op: "watch",
                source: Box::new(e),
            })?
            .map(move |e| {
                e.map(|e| Event::Rollout(e.key))
                    .map_err(|e| KvError::Transport {
                        bucket: bucket.clone(),
                        op: "watch",
                        source: Box::new(e),
                    })
            });
        Ok(Box::pin(stream::select_all([
            hosts.boxed(),
            results.boxed(),
            rollouts.boxed(),
        ])))
    }

    /// The term's first read: heartbeats (received at their server
    /// time), active rollouts and their results.
    async fn load(&mut self) -> Result<(), TermEnd> {
        for host in self.b.hosts.keys().await? {
            let e = match self.b.hosts.get(&host).await {
                Ok(e) => e,
                Err(e @ KvError::Decode { .. }) => {
                    tracing::warn!("ignored: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(e) = e {
                let at = e
                    .created
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                self.heartbeats.insert(host, (e.value, at));
            }
        }
        for k in self.b.states.keys().await? {
            let Ok(RolloutKey::State(id)) = RolloutKey::parse(&k) else {
                continue;
            };
            match self.b.states.get(&k).await {
                Ok(Some(e)) if is_active(e.value.phase) => {
                    self.active.insert(id);
                }
                Ok(_) => {}
                Err(e @ KvError::Decode { .. }) => {
                    tracing::error!("rollout {id}: {e}; left alone");
                }
                Err(e) => return Err(e.into()),
            }
        }
        for k in self.b.results.keys().await? {
            let Ok(ResultKey::Order { rollout, .. }) = ResultKey::parse(&k) else {
                continue;
            };
            if !self.active.contains(&rollout) {
                continue;
            }
            match self.b.results.get(&k).await {
                Ok(Some(e)) => self.result(&k, e.value),
                Ok(None) => {}
                Err(e @ KvError::Decode { .. }) => tracing::warn!("ignored: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn apply(&mut self, ev: Option<Result<Event, KvError>>) -> Result<(), TermEnd> {
        let ev = match ev {
            None => return Err(TermEnd::Watch("a watch ended".into())),
            Some(Err(e @ KvError::Decode { .. })) => {
                tracing::warn!("ignored: {e}");
                return Ok(());
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(ev)) => ev,
        };
        match ev {
            Event::Host(c) => match *c {
                Change::Put(e) => {
                    self.heartbeats.insert(e.key, (e.value, now_ms()));
                }
                Change::Deleted { key, .. } => {
                    self.heartbeats.remove(&key);
                }
            },
            Event::Result(c) => {
                if let Change::Put(e) = *c {
                    self.result(&e.key, e.value);
                }
            }
            Event::Rollout(k) => {
                if let Ok(RolloutKey::State(id)) = RolloutKey::parse(&k) {
                    self.active.insert(id);
                }
            }
        }
        Ok(())
    }

    /// Keeps a result if its rollout is active and it is the latest step.
    fn result(&mut self, key: &str, r: HostResult) {
        let Ok(ResultKey::Order {
            host,
            rollout,
            seq,
            step,
        }) = ResultKey::parse(key)
        else {
            return;
        };
        if !self.active.contains(&rollout) {
            return;
        }
        let m = self.results.entry(rollout).or_default();
        match m.get(&(host.clone(), seq)) {
            Some((have, _)) if *have > step => {}
            _ => {
                m.insert((host, seq), (step, r));
            }
        }
    }

    pub(super) fn results_of(&self, id: &str) -> BTreeMap<(HostId, u64), HostResult> {
        self.results
            .get(id)
            .map(|m| m.iter().map(|(k, (_, r))| (k.clone(), r.clone())).collect())
            .unwrap_or_default()
    }

    fn retire(&mut self, id: &str) {
        if let Some(h) = self.discoveries.remove(id) {
            h.abort();
        }
        self.active.remove(id);
        self.results.remove(id);
        self.specs.remove(id);
    }

    /// One pass over one rollout; when to pass again without news.
    async fn drive(&mut self, id: &str) -> Result<Option<u64>, TermEnd> {
        let Some(entry) = self
            .b
            .states
            .get(&key(RolloutKey::State(id.into()))?)
            .await?
        else {
            self.retire(id);
            return Ok(None);
        };
        if !is_active(entry.value.phase) {
            self.retire(id);
            return Ok(None);
        }
        let spec = match self.specs.get(id) {
            Some(s) => s.clone(),
            None => {
                let Some(s) = self.b.specs.get(&key(RolloutKey::Spec(id.into()))?).await? else {
                    tracing::warn!("rollout {id}: a state without a spec; left alone");
                    self.retire(id);
                    return Ok(None);
                };
                self.specs.insert(id.to_string(), s.value.clone());
                s.value
            }
        };
        let (mut state, mut rev) = (entry.value, entry.revision);
        if state.epoch > self.epoch {
            return Err(TermEnd::Fenced(format!(
                "rollout {id} has epoch {}, newer than ours",
                state.epoch
            )));
        }
        if state.epoch < self.epoch {
            (state, rev) = self.adopt(state, rev, &spec).await?;
        }
        if wave::awaits_release(&spec, &state)
            && matches!(state.phase, RolloutPhase::Running | RolloutPhase::Paused)
            && let Some(found) = self.discovery(id, &spec, &state).await?
        {
            let now = now_ms();
            state = match found {
                Ok(tag) => {
                    tracing::info!("rollout {id}: every wave moves to release {tag}");
                    let mut n = state;
                    n.release = Some(tag);
                    n.updated_at = now;
                    n
                }
                Err(why) => {
                    tracing::warn!("rollout {id}: refused: {why}");
                    wave::refuse(&state, why, now)
                }
            };
            rev = self.save_state(&state, rev).await?;
        }
        let control = self
            .b
            .controls
            .get(&key(RolloutKey::Control(id.into()))?)
            .await?
            .map(|e| e.value);
        let results = self.results_of(id);
        let now = now_ms();
        let observed = Observed {
            heartbeats: &self.heartbeats,
            results: &results,
            control: control.as_ref(),
        };
        let (next, effects) = wave::step(&state, &spec, &observed, now);
        for fx in effects {
            match fx {
                Effect::SaveState => {
                    rev = self.save_state(&next, rev).await?;
                }
                Effect::Order(o) => self.write_order(&o).await?,
                Effect::RecordCanonical { app, release } => {
                    self.write_canonical(&app, &release, id).await?
                }
                Effect::Log(m) => tracing::info!("rollout {id}: {m}"),
            }
        }
        if !is_active(next.phase) {
            tracing::info!("rollout {id}: {}", next.phase);
            self.retire(id);
            return Ok(None);
        }
        Ok(wave::next_wake(&next, &spec, now))
    }

    /// The release a sweep without one moves to, once its discovery
    /// (spawned by the first call) has ended; `Err` is the refusal.
    async fn discovery(
        &mut self,
        id: &str,
        spec: &RolloutSpec,
        state: &RolloutState,
    ) -> Result<Option<Result<String, String>>, TermEnd> {
        if let Some(h) = self.discoveries.get(id) {
            if !h.is_finished() {
                return Ok(None);
            }
            let h = self.discoveries.remove(id).expect("present");
            let r = h
                .await
                .unwrap_or_else(|e| Err(format!("the release discovery failed: {e}")));
            return Ok(Some(r));
        }
        let TargetSpec::Sweep { app, .. } = &spec.target else {
            return Ok(None);
        };
        let hosts: Vec<HostId> = state
            .waves
            .iter()
            .flat_map(|w| w.hosts.keys().cloned())
            .collect();
        let plan = match discover::plan(app, &hosts, &self.heartbeats) {
            Ok(p) => p,
            Err(why) => return Ok(Some(Err(why))),
        };
        let canonical = self
            .b
            .canonical
            .get(&key(RolloutKey::Canonical(app.clone()))?)
            .await?
            .map(|e| e.value.release);
        tracing::info!(
            "rollout {id}: looking for the newest release of app {app} ({}/{})",
            plan.image.host,
            plan.image.repository
        );
        let (registry, tx) = (self.registry.clone(), self.discovered.clone());
        let h = tokio::spawn(async move {
            let r = discover::discover(registry, plan, canonical).await;
            let _ = tx.send(());
            r
        });
        self.discoveries.insert(id.to_string(), h);
        Ok(None)
    }

    fn check(&self) -> Result<Epoch, TermEnd> {
        self.guard.check().map_err(TermEnd::Lost)
    }

    fn count(&self, accepted: bool) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if accepted {
            s.writes += 1;
        } else {
            s.rejected += 1;
        }
    }

    /// A write's error: a refusal ends the term as fenced, anything else
    /// as failed.
    fn refused(&self, e: KvError) -> TermEnd {
        if e.is_conflict() || e.is_already_exists() {
            self.count(false);
            TermEnd::Fenced(e.to_string())
        } else {
            TermEnd::WriteFailed(e)
        }
    }

    /// `<rollout>.state` by revision; the new revision.
    pub(super) async fn save_state(&self, s: &RolloutState, rev: u64) -> Result<u64, TermEnd> {
        let k = key(RolloutKey::State(s.id.clone()))?;
        self.check()?;
        match self.b.states.update(&k, s, rev).await {
            Ok(r) => {
                self.count(true);
                Ok(r)
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// The host's order key as of now (its revision is remembered).
    pub(super) async fn read_order(&mut self, host: &str) -> Result<Option<Order>, TermEnd> {
        let k = host_key(host).map_err(|e| KvError::InvalidKey {
            bucket: ORDERS.to_string(),
            key: e.0,
        })?;
        let e = self.b.orders.get(&k).await?;
        match e {
            Some(e) => {
                self.order_revs.insert(host.to_string(), e.revision);
                Ok(Some(e.value))
            }
            None => {
                self.order_revs.remove(host);
                Ok(None)
            }
        }
    }

    /// Writes `o` to its host's key at the last revision this term saw
    /// (a create when the key has none).
    pub(super) async fn write_order(&mut self, o: &Order) -> Result<(), TermEnd> {
        let k = host_key(&o.host).map_err(|e| KvError::InvalidKey {
            bucket: ORDERS.to_string(),
            key: e.0,
        })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if !self.order_revs.contains_key(&o.host) {
                self.read_order(&o.host).await?;
            }
            let known = self.order_revs.get(&o.host).copied();
            self.check()?;
            self.faults.before_order_write(self.leadership);
            let r = match known {
                Some(rev) => self.b.orders.update(&k, o, rev).await,
                None => self.b.orders.create(&k, o).await,
            };
            match r {
                Ok(rev) => {
                    self.count(true);
                    self.order_revs.insert(o.host.clone(), rev);
                    tracing::info!(
                        "order {} to {}: {} (epoch {})",
                        o.id,
                        o.host,
                        o.action.kind(),
                        o.epoch
                    );
                    return Ok(());
                }
                Err(e) if e.is_transport() && attempt < 3 => {
                    tracing::warn!("order {} to {}: {e}; again", o.id, o.host);
                    // It may have been written after all: read again.
                    self.order_revs.remove(&o.host);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.refused(e)),
            }
        }
    }

    async fn write_canonical(
        &self,
        app: &str,
        release: &str,
        rollout: &str,
    ) -> Result<(), TermEnd> {
        let k = key(RolloutKey::Canonical(app.to_string()))?;
        let v = Canonical {
            release: release.to_string(),
            rollout: rollout.to_string(),
            epoch: self.epoch,
            recorded_at: now_ms(),
        };
        let cur = self.b.canonical.get(&k).await?;
        self.check()?;
        let r = match cur {
            Some(e) => self.b.canonical.update(&k, &v, e.revision).await,
            None => self.b.canonical.create(&k, &v).await,
        };
        match r {
            Ok(_) => {
                self.count(true);
                tracing::info!("canonical {app} = {release} (rollout {rollout})");
                Ok(())
            }
            Err(e) => Err(self.refused(e)),
        }
    }
}
