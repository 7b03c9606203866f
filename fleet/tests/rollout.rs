//! End to end, every component real: one nats-server, five windlassd
//! (`--systemd none --platform native`, each on its own private bus with
//! its own state and run dirs), five fleetd (in process, [`DbusAgent`] on
//! each host's bus) and the coordinator (in process).
//!
//! Every host starts on generation A (staged and switched through its
//! windlassd before fleetd starts); B is staged on every host (artifacts
//! are not fetched yet), and the rollout targets B's digest. B has one
//! app, `web.service`, whose `health.http` probe points at a tiny HTTP
//! server of the test that answers 200 or 503 as the test says: with
//! `--systemd none` the unit is active at once, so the probe is what
//! makes B healthy or not, and what holds a host in its health gate.
//!
//! Timings: heartbeats every 400 ms (the spec says 1 s: unavailable
//! after 3 s), lease TTL 2 s, soak 1 s (4 s where a cut host must come
//! back while its wave soaks), wave deadline 20 s. One host's fleetd can
//! reach NATS through a proxy (tests/support/proxy.rs) the test cuts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use support::nats::NatsServer;
use support::proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use windlass_contract::GenerationId;
use windlass_fleet::agent::{AgentApi, Confirm, DbusAgent, OpEnd, OpEvent};
use windlass_fleet::buckets::{self, HOSTS, ORDERS, RESULTS, ROLLOUTS};
use windlass_fleet::coordinator::{self, Config as CoordConfig, Coordinator, StatusHandle};
use windlass_fleet::fleetd::{Config, Fleetd};
use windlass_fleet::kv::Bucket;
use windlass_fleet::model::{
    Action, ControlCommand, Epoch, GenerationRef, Heartbeat, HostResult, Order, ResultOutcome,
    order_id,
};
use windlass_fleet::wave::{HostPhase, RolloutPhase, RolloutState, WavePhase};

const TTL: Duration = Duration::from_secs(2);
const HEARTBEAT: Duration = Duration::from_millis(400);
const HEX: &str = "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c";
const HOSTS5: [&str; 5] = ["h1", "h2", "h3", "h4", "h5"];

// ---------------------------------------------------------------------
// B's health probe

/// An HTTP server on loopback answering every request 200 while
/// `healthy`, else 503.
struct Probe {
    url: String,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    async fn start(healthy: bool) -> Probe {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", l.local_addr().unwrap());
        let flag = Arc::new(AtomicBool::new(healthy));
        let f = flag.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let ok = f.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let status = if ok {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = s
                        .write_all(
                            format!(
                                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Probe {
            url,
            healthy: flag,
            task,
        }
    }

    fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------
// Generations

fn sha256_hex(data: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), data).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Generation B: one app, `web.service` (a plain systemd unit), whose
/// health probe is `probe`.
fn web_tree(dir: &Path, probe: &str) {
    std::fs::create_dir_all(dir.join("systemd")).unwrap();
    let unit = b"[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/true\n";
    std::fs::write(dir.join("systemd/web.service"), unit).unwrap();
    let m = serde_json::json!({
        "apps": [{
            "name": "web",
            "unit": "web.service",
            "health": {"container_check": false, "http": probe},
            "update": {"health_deadline_sec": 20, "order": "stop-first", "rollback": "auto"},
        }],
        "files": [{"path": "systemd/web.service", "sha256": sha256_hex(unit)}],
        "format": 1,
        "inputs": [{"path": "b.toml", "sha256": "0".repeat(64)}],
        "targets": ["quadlet", "systemd"],
    });
    std::fs::write(
        dir.join("windlass-generation.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

/// What the agent says of `request`'s operation, and how it ended.
async fn agent_op(agent: &DbusAgent, request: &str) -> OpEnd {
    let op = agent.operation_by_request(request).await.unwrap().unwrap();
    let mut ev = agent.follow(&op).await.unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), ev.next())
            .await
            .expect("the operation ended within 20 s");
        match e {
            Some(OpEvent::Finished(end)) => return end,
            Some(_) => {}
            None => panic!("the stream ended without the end"),
        }
    }
}

// ---------------------------------------------------------------------
// Hosts

/// One host: windlassd on its private bus, and fleetd. Fields drop in
/// order: fleetd first, the directory last.
struct Host {
    _fleetd: Fleetd<DbusAgent>,
    agent: DbusAgent,
    _wd: support::agent::Windlassd,
    _bus: support::agent::Bus,
    dir: tempfile::TempDir,
    a: GenerationRef,
    b: GenerationRef,
}

impl Host {
    async fn start(
        test: &str,
        bin: &Path,
        name: &str,
        nats_url: &str,
        probe: &str,
    ) -> Option<Host> {
        let bus = support::agent::bus(test)?;
        let dir = tempfile::tempdir().unwrap();
        let wd = tokio::task::block_in_place(|| support::agent::start(bin, &bus, dir.path()));
        let agent = DbusAgent::connect(&bus.address).await.unwrap();
        support::agent::empty_tree(&dir.path().join("a"), "a");
        web_tree(&dir.path().join("b"), probe);
        let ga = agent.stage(&dir.path().join("a")).await.unwrap();
        agent
            .switch(ga, Confirm::Auto, None, "setup-a")
            .await
            .unwrap();
        let end = agent_op(&agent, "setup-a").await;
        assert_eq!(end.result, "committed", "{name}: {end:?}");
        let gb = agent.stage(&dir.path().join("b")).await.unwrap();
        let gens = agent.generations().await.unwrap();
        let r = |g: GenerationId| GenerationRef {
            digest: gens.iter().find(|x| x.id == g).unwrap().digest.clone(),
            generation: g,
        };
        let (a, b) = (r(ga), r(gb));
        assert_ne!(a.digest, b.digest);
        let mut cfg = Config::new(name, nats_url, dir.path().join("fleetd"));
        cfg.heartbeat_interval = HEARTBEAT;
        let fleetd = Fleetd::start(cfg, agent.clone()).await.unwrap();
        Some(Host {
            _fleetd: fleetd,
            agent,
            _wd: wd,
            _bus: bus,
            dir,
            a,
            b,
        })
    }

    async fn running(&self) -> GenerationRef {
        self.agent.status().await.unwrap().running.unwrap()
    }

    /// Every operation record in windlassd's state dir.
    fn records(&self) -> Vec<serde_json::Value> {
        let d = self.dir.path().join("state/operations");
        let mut v = Vec::new();
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                v.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
            }
        }
        v
    }

    /// The records of operations started for `rollout`'s orders.
    fn rollout_records(&self, rollout: &str) -> Vec<serde_json::Value> {
        let prefix = format!("{rollout}/");
        self.records()
            .into_iter()
            .filter(|r| {
                r["request"]
                    .as_str()
                    .is_some_and(|q| q.starts_with(&prefix))
            })
            .collect()
    }
}

struct World {
    js: jetstream::Context,
    probe: Probe,
    proxy: Option<Proxy>,
    /// Declared before the server: fleetd stops first.
    hosts: BTreeMap<String, Host>,
    _nats: NatsServer,
}

struct Running {
    status: StatusHandle,
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Sets up the world or returns from the test (skipped loudly).
macro_rules! world {
    ($name:expr, $healthy:expr) => {
        match World::start($name, $healthy).await {
            Some(w) => w,
            None => return,
        }
    };
}

impl World {
    async fn start(test: &str, healthy: bool) -> Option<World> {
        World::start_with(test, healthy, None).await
    }

    /// [`World::start`] with `proxied`'s fleetd reaching NATS through a
    /// proxy the test can cut.
    async fn start_with(test: &str, healthy: bool, proxied: Option<&str>) -> Option<World> {
        let bin = support::agent::windlassd(test)?;
        let nats = NatsServer::start(test)?;
        let (_c, js) = nats.connect().await;
        let cfg = buckets::Config {
            lease_ttl: TTL,
            ..Default::default()
        };
        buckets::init(&js, &cfg).await.unwrap();
        let probe = Probe::start(healthy).await;
        let mut hosts = BTreeMap::new();
        let proxy = match proxied {
            Some(_) => Some(Proxy::start(nats.port()).await),
            None => None,
        };
        for h in HOSTS5 {
            let url = match &proxy {
                Some(p) if proxied == Some(h) => p.url(),
                _ => nats.url(),
            };
            let host = Host::start(test, &bin, h, &url, &probe.url).await?;
            hosts.insert(h.to_string(), host);
        }
        let w = World {
            js,
            probe,
            proxy,
            hosts,
            _nats: nats,
        };
        // Every host heartbeats, running A.
        let hb: Bucket<Heartbeat> = Bucket::open(&w.js, HOSTS).await.unwrap();
        wait(Duration::from_secs(10), "heartbeats on A", || async {
            for (h, host) in &w.hosts {
                let e = hb.get(h).await.unwrap()?;
                (e.value.running.as_ref() == Some(&host.a)).then_some(())?;
            }
            Some(())
        })
        .await;
        Some(w)
    }

    fn coordinator(&self, holder: &str) -> Running {
        let c = Coordinator::new(self.js.clone(), CoordConfig::new(holder, TTL));
        let status = c.status();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(c.run(async move {
            let _ = rx.await;
        }));
        Running {
            status,
            _stop: tx,
            task,
        }
    }

    fn host(&self, h: &str) -> &Host {
        &self.hosts[h]
    }

    /// B's digest (the same tree on every host).
    fn b_digest(&self) -> String {
        let d = &self.host("h1").b.digest;
        assert!(self.hosts.values().all(|h| &h.b.digest == d));
        d.clone()
    }

    /// The rollout file: B in waves canary(1) / 2 / 2.
    fn spec(&self, id: &str, health_deadline_sec: u64, on_fail: &str) -> String {
        self.spec_with(id, health_deadline_sec, on_fail, 1, 0)
    }

    fn spec_with(
        &self,
        id: &str,
        health_deadline_sec: u64,
        on_fail: &str,
        soak_sec: u64,
        max_unavailable: u32,
    ) -> String {
        format!(
            "id = \"{id}\"\n[target.generation]\nnative = {{ digest = \"{}\", \
             artifact = \"sha256-{HEX}\", artifact_sha256 = \"{HEX}\", size = 1 }}\n\
             [[wave]]\nname = \"canary\"\nhosts = [\"h1\"]\n\
             [[wave]]\nname = \"two\"\nhosts = [\"h2\", \"h3\"]\n\
             [[wave]]\nname = \"rest\"\nhosts = [\"h4\", \"h5\"]\n\
             [policy]\nsoak = \"{soak_sec}s\"\nmax_unavailable = {max_unavailable}\nheartbeat_interval = \"1s\"\nwave_deadline = \"20s\"\n\
             health_deadline = \"{health_deadline_sec}s\"\non_fail = \"{on_fail}\"\n",
            self.b_digest()
        )
    }

    async fn start_rollout(&self, text: &str) -> RolloutState {
        coordinator::start_rollout_text(&self.js, "rollout.toml", text)
            .await
            .unwrap()
    }

    async fn state(&self, id: &str) -> RolloutState {
        let b: Bucket<RolloutState> = Bucket::open(&self.js, ROLLOUTS).await.unwrap();
        b.require(&format!("{id}.state")).await.unwrap().value
    }

    async fn until(
        &self,
        id: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&RolloutState) -> bool,
    ) -> RolloutState {
        let t = Instant::now();
        loop {
            let s = self.state(id).await;
            if pred(&s) {
                return s;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                panic!("{what}: not within {secs} s; state: {s:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every order a host's key held (history 8), oldest first.
    async fn orders(&self, host: &str) -> Vec<Order> {
        let b: Bucket<Order> = Bucket::open(&self.js, ORDERS).await.unwrap();
        b.history(host)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.value)
            .collect()
    }

    async fn result(&self, host: &str, rollout: &str, seq: u64, step: &str) -> Option<HostResult> {
        let b: Bucket<HostResult> = Bucket::open(&self.js, RESULTS).await.unwrap();
        b.get(&format!("{host}.{rollout}.{seq}.{step}"))
            .await
            .unwrap()
            .map(|e| e.value)
    }
}

async fn wait<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `host`'s windlassd runs `g`, nothing in flight.
async fn settles_on(w: &World, host: &str, g: &GenerationRef, secs: u64) {
    let a = &w.host(host).agent;
    wait(
        Duration::from_secs(secs),
        &format!("{host} idle on {}", g.generation),
        || async {
            let st = a.status().await.ok()?;
            (!st.busy && st.running.as_ref() == Some(g)).then_some(())
        },
    )
    .await;
}

/// The host's switch for the rollout: one operation record, a switch
/// with a manual confirm, carrying the switch order's id as its request.
fn the_switch(w: &World, host: &str, rollout: &str, seq: u64) -> serde_json::Value {
    let recs = w.host(host).rollout_records(rollout);
    let switches: Vec<&serde_json::Value> = recs.iter().filter(|r| r["kind"] == "switch").collect();
    assert_eq!(
        switches.len(),
        1,
        "{host}: one switch for {rollout}: {recs:#?}"
    );
    let r = switches[0].clone();
    assert_eq!(r["request"], order_id(rollout, seq), "{host}: {r:#}");
    assert_eq!(r["confirm"], "manual", "{host}: {r:#}");
    // No request (order) was carried out twice.
    let reqs: Vec<&str> = recs.iter().filter_map(|r| r["request"].as_str()).collect();
    let set: BTreeSet<&str> = reqs.iter().copied().collect();
    assert_eq!(set.len(), reqs.len(), "{host}: {reqs:?}");
    r
}

fn phases(r: &serde_json::Value) -> Vec<String> {
    r["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|p| p[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waves_1_2_2_over_five_real_hosts_commit() {
    const NAME: &str = "waves_1_2_2_over_five_real_hosts_commit";
    let t0 = Instant::now();
    let w = world!(NAME, true);
    let setup = t0.elapsed();
    let c = w.coordinator("a");
    let epoch: Epoch = wait(Duration::from_secs(10), "leadership", || async {
        c.status.get().leading
    })
    .await;
    w.start_rollout(&w.spec("b-1", 10, "pause")).await;
    let s = w
        .until("b-1", 40, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert_eq!(s.epoch, epoch);
    assert!(
        s.waves.iter().all(|w| w.phase == WavePhase::Green),
        "{s:#?}"
    );
    let b = w.b_digest();
    for (wi, hosts) in [vec!["h1"], vec!["h2", "h3"], vec!["h4", "h5"]]
        .into_iter()
        .enumerate()
    {
        assert_eq!(s.waves[wi].hosts.len(), hosts.len(), "{s:#?}");
        for h in hosts {
            let p = &s.waves[wi].hosts[h];
            assert_eq!(p.phase, HostPhase::Committed, "{h}: {p:?}");
            assert_eq!(p.from.as_ref(), Some(&w.host(h).a), "{h}");
            let seq = p.seq.unwrap();
            settles_on(&w, h, &w.host(h).b, 10).await;
            let st = w.host(h).agent.status().await.unwrap();
            assert_eq!(st.running.unwrap().digest, b, "{h}");
            let r = the_switch(&w, h, "b-1", seq);
            assert_eq!(r["result"], "committed", "{h}: {r:#}");
            assert!(
                phases(&r).iter().any(|p| p == "waiting-confirm"),
                "{h} waited for the confirm: {r:#}"
            );
            // The confirm came from the coordinator, as an order.
            let fin = w.result(h, "b-1", seq, "final").await.unwrap();
            assert_eq!(fin.outcome, ResultOutcome::Committed, "{h}");
            let kinds: Vec<_> = w
                .orders(h)
                .await
                .into_iter()
                .map(|o| o.action.kind())
                .collect();
            assert_eq!(kinds.len(), 2, "{h}: switch then confirm: {kinds:?}");
            let confirm = w.orders(h).await.pop().unwrap();
            assert_eq!(
                confirm.action,
                Action::Confirm {
                    of: order_id("b-1", seq)
                },
                "{h}"
            );
        }
    }
    c.task.abort();
    eprintln!(
        "{NAME}: {:.1} s ({:.1} s of it setting up five hosts)",
        t0.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_red_canary_reverts_on_its_own_and_no_wave_2_order_is_written() {
    const NAME: &str = "a_red_canary_reverts_on_its_own_and_no_wave_2_order_is_written";
    let t0 = Instant::now();
    // B's probe answers 503: B never passes its gate (2 s).
    let w = world!(NAME, false);
    let c = w.coordinator("a");
    w.start_rollout(&w.spec("b-2", 2, "pause")).await;
    let s = w
        .until("b-2", 30, "paused", |s| s.phase == RolloutPhase::Paused)
        .await;
    assert!(s.waves[0].phase == WavePhase::Red, "{s:#?}");
    let p = &s.waves[0].hosts["h1"];
    assert_eq!(p.phase, HostPhase::Failed, "{p:?}");
    // The canary's windlassd reverted on its own: no rollback order.
    settles_on(&w, "h1", &w.host("h1").a, 10).await;
    let r = the_switch(&w, "h1", "b-2", p.seq.unwrap());
    assert_eq!(r["result"], "rolled-back", "{r:#}");
    let fin = w
        .result("h1", "b-2", p.seq.unwrap(), "final")
        .await
        .unwrap();
    assert_eq!(fin.outcome, ResultOutcome::RolledBack, "{fin:?}");
    let kinds: Vec<_> = w
        .orders("h1")
        .await
        .into_iter()
        .map(|o| o.action.kind())
        .collect();
    assert_eq!(kinds.len(), 1, "only the switch: {kinds:?}");
    // Paused for a while: still no order for a later wave.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = w.state("b-2").await;
    assert!(s.phase == RolloutPhase::Paused, "{s:#?}");
    for h in ["h2", "h3", "h4", "h5"] {
        assert!(w.orders(h).await.is_empty(), "{h} got an order");
        assert!(w.host(h).rollout_records("b-2").is_empty(), "{h}");
        assert_eq!(w.host(h).running().await, w.host(h).a, "{h}");
    }
    c.task.abort();
    eprintln!("{NAME}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_in_wave_2_rolls_back_exactly_the_touched_hosts() {
    const NAME: &str = "abort_in_wave_2_rolls_back_exactly_the_touched_hosts";
    let t0 = Instant::now();
    let w = world!(NAME, true);
    let c = w.coordinator("a");
    w.start_rollout(&w.spec("b-3", 15, "pause")).await;
    // The canary commits; then B turns unhealthy, so wave 2's hosts
    // stay in their health gate (in flight) when the abort comes.
    w.until("b-3", 30, "canary committed", |s| {
        s.waves[0].hosts["h1"].phase == HostPhase::Committed
    })
    .await;
    w.probe.set(false);
    let s = w
        .until("b-3", 30, "wave 2 started", |s| {
            s.wave == 1
                && s.waves[1]
                    .hosts
                    .values()
                    .all(|p| p.phase == HostPhase::Started && p.from.is_some())
        })
        .await;
    for h in ["h2", "h3"] {
        let st = w.host(h).agent.status().await.unwrap();
        assert!(st.busy, "{h} is in flight: {st:?}");
    }
    let seqs: BTreeMap<&str, u64> = [("h1", 0), ("h2", 1), ("h3", 1)]
        .into_iter()
        .map(|(h, wi)| (h, s.waves[wi].hosts[h].seq.unwrap()))
        .collect();
    coordinator::control(&w.js, "b-3", ControlCommand::Abort, "alice@ops1")
        .await
        .unwrap();
    let s = w
        .until("b-3", 30, "aborted", |s| s.phase == RolloutPhase::Aborted)
        .await;
    assert_eq!(s.aborted_by.as_deref(), Some("alice@ops1"));
    for (h, seq) in &seqs {
        let host = w.host(h);
        settles_on(&w, h, &host.a, 10).await;
        let last = w.orders(h).await.pop().unwrap();
        match &last.action {
            Action::Rollback { of, to } => {
                assert_eq!(*of, order_id("b-3", *seq), "{h}");
                assert_eq!(*to, host.a, "{h}: back to its recorded from");
            }
            a => panic!("{h}: last order {a:?}"),
        }
        // One switch each, never repeated.
        the_switch(&w, h, "b-3", *seq);
    }
    // The canary's switch committed and was rolled back by an order; wave
    // 2's were canceled in their gate.
    let r = the_switch(&w, "h1", "b-3", seqs["h1"]);
    assert_eq!(r["result"], "committed", "{r:#}");
    for h in ["h2", "h3"] {
        let r = the_switch(&w, h, "b-3", seqs[h]);
        assert_ne!(r["result"], "committed", "{h}: {r:#}");
    }
    for h in ["h4", "h5"] {
        assert!(w.orders(h).await.is_empty(), "{h} got an order");
        assert!(w.host(h).rollout_records("b-3").is_empty(), "{h}");
        assert_eq!(w.host(h).running().await, w.host(h).a, "{h}");
    }
    c.task.abort();
    eprintln!("{NAME}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_in_the_confirm_window_the_canary_reverts() {
    const NAME: &str = "coordinator_killed_in_the_confirm_window_the_canary_reverts";
    let t0 = Instant::now();
    // B is held in its gate until the coordinator is gone.
    let w = world!(NAME, false);
    let c = w.coordinator("a");
    w.start_rollout(&w.spec("b-4", 3, "pause")).await;
    let s = w
        .until("b-4", 20, "canary started", |s| {
            s.waves[0].hosts["h1"].phase == HostPhase::Started
        })
        .await;
    let seq = s.waves[0].hosts["h1"].seq.unwrap();
    // Killed: its task dropped mid-await, nothing more is written.
    c.task.abort();
    let _ = c.task.await;
    w.probe.set(true);
    // The gate passes, the switch waits for a confirm nobody sends, and
    // windlassd rolls it back at its own deadline (3 s).
    let fin = wait(Duration::from_secs(15), "the canary's final", || {
        w.result("h1", "b-4", seq, "final")
    })
    .await;
    assert_eq!(fin.outcome, ResultOutcome::RolledBack, "{fin:?}");
    settles_on(&w, "h1", &w.host("h1").a, 10).await;
    let r = the_switch(&w, "h1", "b-4", seq);
    assert_eq!(r["result"], "rolled-back", "{r:#}");
    assert!(
        phases(&r).iter().any(|p| p == "waiting-confirm"),
        "it waited for the confirm: {r:#}"
    );
    assert!(
        r["error"].as_str().unwrap_or("").contains("not confirmed"),
        "{r:#}"
    );
    assert_eq!(w.orders("h1").await.len(), 1, "only the switch");
    // The next coordinator takes over once the lease expires, finds the
    // canary reverted (its result says so) and pauses the rollout.
    let c2 = w.coordinator("b");
    let s = w
        .until("b-4", 20, "paused by the next coordinator", |s| {
            s.phase == RolloutPhase::Paused
        })
        .await;
    assert_eq!(Some(s.epoch), c2.status.get().leading, "{s:#?}");
    assert_eq!(s.waves[0].hosts["h1"].phase, HostPhase::Failed, "{s:#?}");
    assert_eq!(w.orders("h1").await.len(), 1, "no confirm, no rollback");
    for h in ["h2", "h3", "h4", "h5"] {
        assert!(w.orders(h).await.is_empty(), "{h} got an order");
    }
    c2.task.abort();
    eprintln!("{NAME}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_cut_from_nats_counts_unavailable_and_rejoins_without_replay() {
    const NAME: &str = "a_host_cut_from_nats_counts_unavailable_and_rejoins_without_replay";
    let t0 = Instant::now();
    let w = match World::start_with(NAME, true, Some("h5")).await {
        Some(w) => w,
        None => return,
    };
    let proxy = w.proxy.as_ref().unwrap();
    let c = w.coordinator("a");
    // h5 is cut off before the rollout starts (its heartbeat key stays).
    proxy.cut();
    // Soak 4 s: h5 comes back while wave 3 soaks.
    w.start_rollout(&w.spec_with("b-5", 10, "pause", 4, 1))
        .await;
    let s = w
        .until("b-5", 30, "h5 unavailable in wave 3", |s| {
            s.wave == 2 && s.waves[2].hosts["h5"].phase == HostPhase::Unavailable
        })
        .await;
    let seq = s.waves[2].hosts["h5"].seq.unwrap();
    // Its order is in its key; h5 has not seen it.
    assert_eq!(w.orders("h5").await.len(), 1);
    assert!(w.host("h5").rollout_records("b-5").is_empty());
    assert_eq!(w.host("h5").running().await, w.host("h5").a);
    proxy.heal();
    let s = w
        .until("b-5", 30, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    let p = &s.waves[2].hosts["h5"];
    assert_eq!(p.phase, HostPhase::Committed, "{p:?}");
    assert_eq!(p.seq, Some(seq));
    for h in HOSTS5 {
        settles_on(&w, h, &w.host(h).b, 10).await;
    }
    let r = the_switch(&w, "h5", "b-5", seq);
    assert_eq!(r["result"], "committed", "{r:#}");
    // Cut and healed again: it reads its order key again and carries
    // out nothing more.
    let hb: Bucket<Heartbeat> = Bucket::open(&w.js, HOSTS).await.unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = hb.get("h5").await.unwrap().unwrap().value.n;
    proxy.heal();
    wait(Duration::from_secs(10), "h5 heartbeats again", || async {
        let n = hb.get("h5").await.ok()??.value.n;
        (n > before + 2).then_some(())
    })
    .await;
    let recs = w.host("h5").rollout_records("b-5");
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let st = w.host("h5").agent.status().await.unwrap();
    assert!(!st.busy, "{st:?}");
    assert_eq!(st.running.as_ref(), Some(&w.host("h5").b));
    c.task.abort();
    eprintln!("{NAME}: {:.1} s", t0.elapsed().as_secs_f64());
}

/// A host counted unavailable when its wave went green keeps no switch
/// order: the coordinator writes a Cancel over it when the wave turns
/// green. Healed after the rollout completed, the host starts nothing
/// (before that fix it switched, waited for a confirm nobody would send,
/// and windlassd reverted it at its deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_back_after_its_rollout_ended_starts_nothing() {
    const NAME: &str = "a_host_back_after_its_rollout_ended_starts_nothing";
    let t0 = Instant::now();
    let w = match World::start_with(NAME, true, Some("h5")).await {
        Some(w) => w,
        None => return,
    };
    let proxy = w.proxy.as_ref().unwrap();
    let c = w.coordinator("a");
    proxy.cut();
    w.start_rollout(&w.spec_with("b-6", 3, "pause", 1, 1)).await;
    let s = w
        .until("b-6", 30, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert_eq!(s.waves[2].hosts["h5"].phase, HostPhase::Unavailable);
    let hb: Bucket<Heartbeat> = Bucket::open(&w.js, HOSTS).await.unwrap();
    let before = hb.get("h5").await.unwrap().unwrap().value.n;
    proxy.heal();
    wait(Duration::from_secs(10), "h5 heartbeats again", || async {
        let n = hb.get("h5").await.ok()??.value.n;
        (n > before + 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recs = w.host("h5").rollout_records("b-6");
    assert!(recs.is_empty(), "h5 started {recs:#?}");
    c.task.abort();
    eprintln!("{NAME}: {:.1} s", t0.elapsed().as_secs_f64());
}
