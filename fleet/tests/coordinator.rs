//! The coordinator against a real nats-server with simulated hosts
//! (tests/support/simhost.rs: what a well-behaved fleetd writes). Lease
//! TTL 2 s, host heartbeats every 300 ms (the spec's interval is 1 s, so
//! a host is unavailable after 3 s), soak 1 s.

#[path = "../../net/tests/common/mod.rs"]
mod net;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use support::nats::NatsServer;
use support::simhost::{self, Health, Opts, SimHost};
use windlass_fleet::buckets::{self, ORDERS, ROLLOUTS};
use windlass_fleet::coordinator::{
    self, Canonical, Config, Coordinator, Faults, RegistryConfig, StatusHandle,
};
use windlass_fleet::kv::Bucket;
use windlass_fleet::model::{Action, ActionKind, AppReport, ControlCommand, Epoch, Order};
use windlass_fleet::wave::{RolloutPhase, RolloutState, WavePhase};

const TTL: Duration = Duration::from_secs(2);
const HEX: &str = "9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f";

macro_rules! server {
    ($name:expr) => {
        match NatsServer::start($name) {
            Some(s) => s,
            None => return,
        }
    };
}

fn waves_toml(waves: &[&[&str]]) -> String {
    let mut s = String::new();
    for (i, hosts) in waves.iter().enumerate() {
        let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        s += &format!("[[wave]]\nname = \"w{i}\"\nhosts = [{}]\n", list.join(", "));
    }
    s
}

fn policy(on_fail: &str) -> String {
    format!(
        "[policy]\nsoak = \"1s\"\nheartbeat_interval = \"1s\"\nwave_deadline = \"30s\"\n\
         health_deadline = \"10s\"\non_fail = \"{on_fail}\"\n"
    )
}

fn generation_spec(id: &str, waves: &[&[&str]], on_fail: &str) -> String {
    format!(
        "id = \"{id}\"\n[target.generation]\nnative = {{ digest = \"sha256:{HEX}\", \
         artifact = \"sha256-{HEX}\", artifact_sha256 = \"{HEX}\", size = 1 }}\n{}{}",
        waves_toml(waves),
        policy(on_fail)
    )
}

fn sweep_spec(id: &str, waves: &[&[&str]]) -> String {
    format!(
        "id = \"{id}\"\n[target.sweep]\napp = \"web\"\nrelease = \"1.4.2\"\n{}{}",
        waves_toml(waves),
        policy("pause")
    )
}

struct Fleet {
    nats: NatsServer,
    js: jetstream::Context,
    hosts: BTreeMap<String, SimHost>,
}

impl Fleet {
    async fn start(nats: NatsServer, hosts: &[(&str, Opts)]) -> Fleet {
        let (_c, js) = nats.connect().await;
        let cfg = buckets::Config {
            lease_ttl: TTL,
            ..Default::default()
        };
        buckets::init(&js, &cfg).await.unwrap();
        let hosts: BTreeMap<String, SimHost> = hosts
            .iter()
            .map(|(h, o)| (h.to_string(), SimHost::spawn(&js, h, o.clone())))
            .collect();
        let f = Fleet { nats, js, hosts };
        let want: BTreeSet<String> = f.hosts.keys().cloned().collect();
        let hb: Bucket<windlass_fleet::model::Heartbeat> =
            Bucket::open(&f.js, buckets::HOSTS).await.unwrap();
        wait(
            Duration::from_secs(10),
            "heartbeats of every host",
            || async {
                let have: BTreeSet<String> = hb.keys().await.unwrap().into_iter().collect();
                (have == want).then_some(())
            },
        )
        .await;
        f
    }

    fn coordinator(&self, holder: &str) -> Running {
        self.coordinator_with(Config::new(holder, TTL))
    }

    fn coordinator_with(&self, cfg: Config) -> Running {
        let faults = cfg.faults.clone();
        let c = Coordinator::new(self.js.clone(), cfg);
        let status = c.status();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(c.run(async move {
            let _ = rx.await;
        }));
        Running {
            status,
            faults,
            _stop: tx,
            task,
        }
    }

    async fn start_rollout(&self, text: &str) -> RolloutState {
        coordinator::start_rollout_text(&self.js, "test.toml", text)
            .await
            .unwrap()
    }

    async fn start_rollout_err(&self, text: &str) -> coordinator::StartError {
        coordinator::start_rollout_text(&self.js, "test.toml", text)
            .await
            .unwrap_err()
    }

    async fn state(&self, id: &str) -> RolloutState {
        let b: Bucket<RolloutState> = Bucket::open(&self.js, ROLLOUTS).await.unwrap();
        b.require(&format!("{id}.state")).await.unwrap().value
    }

    async fn state_history(&self, id: &str) -> Vec<RolloutState> {
        let b: Bucket<RolloutState> = Bucket::open(&self.js, ROLLOUTS).await.unwrap();
        b.history(&format!("{id}.state"))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.value)
            .collect()
    }

    /// Waits until the rollout's state satisfies `pred`.
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

    /// The orders a host's key kept (history 8), oldest first.
    async fn orders(&self, host: &str) -> Vec<Order> {
        let b: Bucket<Order> = Bucket::open(&self.js, ORDERS).await.unwrap();
        b.history(host)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.value)
            .collect()
    }

    fn host(&self, h: &str) -> &SimHost {
        &self.hosts[h]
    }

    fn kinds(&self, h: &str) -> Vec<ActionKind> {
        self.host(h)
            .executed()
            .iter()
            .map(|o| o.action.kind())
            .collect()
    }
}

struct Running {
    status: StatusHandle,
    faults: Faults,
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn leading(&self, secs: u64) -> Epoch {
        wait(Duration::from_secs(secs), "leadership", || async {
            self.status.get().leading
        })
        .await
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

fn healthy() -> Opts {
    Opts::default()
}

fn five(opts: impl Fn(&str) -> Opts) -> Vec<(&'static str, Opts)> {
    ["h1", "h2", "h3", "h4", "h5"]
        .into_iter()
        .map(|h| (h, opts(h)))
        .collect()
}

const WAVES_1_2_2: &[&[&str]] = &[&["h1"], &["h2", "h3"], &["h4", "h5"]];
const HOSTS5: [&str; 5] = ["h1", "h2", "h3", "h4", "h5"];

/// No host executed an order id twice.
fn assert_no_duplicates(f: &Fleet) {
    for (h, sim) in &f.hosts {
        let ids: Vec<String> = sim.executed().into_iter().map(|o| o.id).collect();
        let set: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(set.len(), ids.len(), "{h} executed {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waves_1_2_2_commit_and_canonical_is_recorded_once() {
    let nats = server!("waves_1_2_2_commit_and_canonical_is_recorded_once");
    let f = Fleet::start(nats, &five(|_| healthy())).await;
    let c = f.coordinator("a");
    let epoch = c.leading(10).await;
    f.start_rollout(&sweep_spec("web-142", WAVES_1_2_2)).await;
    let s = f
        .until("web-142", 60, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert_eq!(s.epoch, epoch);
    assert!(s.canonical_recorded);
    assert!(
        s.waves.iter().all(|w| w.phase == WavePhase::Green),
        "{s:#?}"
    );
    for h in f.hosts.keys() {
        assert_eq!(
            f.kinds(h),
            [ActionKind::Sweep, ActionKind::Confirm],
            "{h}: {:?}",
            f.host(h).executed()
        );
        assert!(f.host(h).executed().iter().all(|o| o.epoch == epoch));
    }
    // Wave k was ordered only after wave k-1's soak ended.
    for k in 1..s.waves.len() {
        let soak_end = s.waves[k - 1].soak_from.unwrap() + 1000;
        for h in s.waves[k].hosts.keys() {
            let first = &f.host(h).executed()[0];
            assert!(
                first.issued_at >= soak_end,
                "{h} ordered at {} before wave {} soaked ({soak_end})",
                first.issued_at,
                k - 1
            );
        }
    }
    // Recorded once, and nothing more happens afterwards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let canon: Bucket<Canonical> = Bucket::open(&f.js, ROLLOUTS).await.unwrap();
    let h = canon.history("canonical.web").await.unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].value.release, "1.4.2");
    assert_eq!(h[0].value.rollout, "web-142");
    assert_eq!(h[0].value.epoch, epoch);
    for h in f.hosts.keys() {
        assert_eq!(f.host(h).executed().len(), 2, "{h}");
    }
    assert_no_duplicates(&f);
    assert_eq!(c.status.get().rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn red_canary_rolls_back_and_pauses_with_no_wave_2_order() {
    let nats = server!("red_canary_rolls_back_and_pauses_with_no_wave_2_order");
    let f = Fleet::start(
        nats,
        &five(|h| Opts {
            health: if h == "h1" {
                Health::Unhealthy
            } else {
                Health::Healthy
            },
            ..healthy()
        }),
    )
    .await;
    // A state that is not ours is left alone; the others are driven.
    let raw: Bucket<RolloutState> = Bucket::open(&f.js, ROLLOUTS).await.unwrap();
    raw.store()
        .put("junk.state", "{not json".into())
        .await
        .unwrap();
    let _c = f.coordinator("a");
    f.start_rollout(&generation_spec("gen-7", WAVES_1_2_2, "pause"))
        .await;
    let s = f
        .until("gen-7", 30, "paused", |s| s.phase == RolloutPhase::Paused)
        .await;
    assert_eq!(s.wave, 0);
    assert_eq!(s.waves[0].phase, WavePhase::Red, "{s:#?}");
    assert!(s.reason.contains("red"), "{}", s.reason);
    // The canary went back on its own; nothing was confirmed.
    assert_eq!(f.kinds("h1"), [ActionKind::Switch]);
    assert_eq!(f.host("h1").running(), simhost::original("h1"));
    // Paused stays paused: no order for a later wave, ever.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(f.state("gen-7").await.phase, RolloutPhase::Paused);
    for h in ["h2", "h3", "h4", "h5"] {
        assert!(f.orders(h).await.is_empty(), "{h} got an order");
        assert!(f.host(h).executed().is_empty(), "{h}");
        assert_eq!(f.host(h).running(), simhost::original(h));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_in_wave_2_rolls_back_exactly_touched_hosts_to_from() {
    let nats = server!("abort_in_wave_2_rolls_back_exactly_touched_hosts_to_from");
    // Wave 2's hosts take 1.5 s to switch: the abort finds them in flight.
    let f = Fleet::start(
        nats,
        &five(|h| Opts {
            switch_delay: if h == "h2" || h == "h3" {
                Duration::from_millis(1500)
            } else {
                Duration::from_millis(100)
            },
            ..healthy()
        }),
    )
    .await;
    let _c = f.coordinator("a");
    f.start_rollout(&generation_spec("gen-8", WAVES_1_2_2, "pause"))
        .await;
    f.until("gen-8", 30, "wave 2 ordered", |s| {
        s.wave == 1 && s.waves[1].phase != WavePhase::Pending
    })
    .await;
    // Both wave-2 hosts have started (their result carries `from`).
    wait(Duration::from_secs(5), "wave 2 started", || async {
        (f.host("h2").executed().len() == 1 && f.host("h3").executed().len() == 1).then_some(())
    })
    .await;
    coordinator::control(&f.js, "gen-8", ControlCommand::Abort, "alice@ops1")
        .await
        .unwrap();
    let s = f
        .until("gen-8", 30, "aborted", |s| s.phase == RolloutPhase::Aborted)
        .await;
    assert_eq!(s.aborted_by.as_deref(), Some("alice@ops1"));
    for h in ["h1", "h2", "h3"] {
        let ex = f.host(h).executed();
        let last = ex.last().unwrap();
        match &last.action {
            Action::Rollback { to, of } => {
                assert_eq!(*to, simhost::original(h), "{h}");
                assert_eq!(*of, ex[0].id, "{h}");
            }
            a => panic!("{h}: last order {a:?}"),
        }
        assert_eq!(f.host(h).running(), simhost::original(h), "{h}");
    }
    assert_eq!(
        f.kinds("h1"),
        [
            ActionKind::Switch,
            ActionKind::Confirm,
            ActionKind::Rollback
        ]
    );
    for h in ["h4", "h5"] {
        assert!(f.orders(h).await.is_empty(), "{h} got an order");
        assert!(f.host(h).executed().is_empty(), "{h}");
    }
    assert_no_duplicates(&f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_coordinators_only_the_lease_holder_acts() {
    let nats = server!("racing_coordinators_only_the_lease_holder_acts");
    let f = Fleet::start(nats, &five(|_| healthy())).await;
    let a = f.coordinator("a");
    let ea = a.leading(10).await;
    let b = f.coordinator("b");
    tokio::time::sleep(TTL).await;
    assert_eq!(b.status.get().leading, None);
    // a stops right after the guard check of its first order write, as
    // a SIGSTOPped process would: no renewals, the write still pending.
    a.faults.freeze_before_next_order_write();
    f.start_rollout(&generation_spec("gen-9", WAVES_1_2_2, "pause"))
        .await;
    wait(Duration::from_secs(10), "a frozen", || async {
        a.faults.is_frozen().then_some(())
    })
    .await;
    let bs = b.status.get();
    assert_eq!(
        (bs.writes, bs.rejected, bs.leading),
        (0, 0, None),
        "b acted"
    );
    assert_eq!(f.state("gen-9").await.epoch, ea);
    // b takes over with a larger epoch and fences the rollout.
    let eb = b.leading(10).await;
    assert!(eb > ea, "{eb} after {ea}");
    f.until("gen-9", 10, "fenced", |s| s.epoch == eb).await;
    wait(Duration::from_secs(10), "h1's order rewritten", || async {
        f.orders("h1")
            .await
            .last()
            .filter(|o| o.epoch == eb)
            .cloned()
    })
    .await;
    // a wakes up: its pending write is refused, its term is over.
    a.faults.thaw();
    wait(Duration::from_secs(10), "a stopped leading", || async {
        (a.status.get().leading.is_none()).then_some(())
    })
    .await;
    f.until("gen-9", 60, "completed", |s| {
        s.phase == RolloutPhase::Completed
    })
    .await;
    // Nothing of a's epoch reached a host's key; the state never went
    // back to a's epoch after b's fence.
    for h in f.hosts.keys() {
        for o in f.orders(h).await {
            assert_eq!(o.epoch, eb, "{h}: {o:?}");
        }
        assert!(f.host(h).executed().iter().all(|o| o.epoch == eb), "{h}");
        assert_eq!(f.kinds(h), [ActionKind::Switch, ActionKind::Confirm], "{h}");
    }
    let hist = f.state_history("gen-9").await;
    let first_b = hist.iter().position(|s| s.epoch == eb).unwrap();
    assert!(hist[first_b..].iter().all(|s| s.epoch == eb));
    assert_no_duplicates(&f);
    let st = a.status.get();
    eprintln!("a: {st:?}");
    assert_eq!((st.terms, st.leading), (1, None), "a led again");
    assert_eq!(b.status.get().leading, Some(eb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_coordinator_resumes_a_rollout_from_stored_state() {
    let nats = server!("a_new_coordinator_resumes_a_rollout_from_stored_state");
    let f = Fleet::start(
        nats,
        &five(|h| Opts {
            switch_delay: if h == "h2" || h == "h3" {
                Duration::from_millis(1500)
            } else {
                Duration::from_millis(100)
            },
            ..healthy()
        }),
    )
    .await;
    let a = f.coordinator("a");
    let ea = a.leading(10).await;
    let b = f.coordinator("b");
    f.start_rollout(&generation_spec("gen-10", WAVES_1_2_2, "pause"))
        .await;
    f.until("gen-10", 30, "wave 2 ordered", |s| {
        s.wave == 1 && s.waves[1].phase != WavePhase::Pending
    })
    .await;
    // The leader dies mid-wave (no resign: the lease runs out).
    a.task.abort();
    let _ = a.task.await;
    let eb = b.leading(15).await;
    assert!(eb > ea);
    let s = f
        .until("gen-10", 60, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert_eq!(s.epoch, eb);
    assert!(
        s.waves.iter().all(|w| w.phase == WavePhase::Green),
        "{s:#?}"
    );
    for h in f.hosts.keys() {
        assert_eq!(
            f.kinds(h),
            [ActionKind::Switch, ActionKind::Confirm],
            "{h}: {:?}",
            f.host(h).executed()
        );
    }
    // Wave 1 was ordered by a, wave 3 by b.
    assert_eq!(f.host("h1").executed()[0].epoch, ea);
    assert_eq!(f.host("h4").executed()[0].epoch, eb);
    assert_no_duplicates(&f);
    assert_eq!(b.status.get().terms, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_rollout_allocates_seqs_above_what_hosts_saw_and_refuses_a_busy_host() {
    let nats = server!("start_rollout_allocates_seqs_above_what_hosts_saw_and_refuses_a_busy_host");
    let f = Fleet::start(nats, &five(|_| healthy())).await;
    // h2's key holds an order it has not reported yet.
    let orders: Bucket<Order> = Bucket::open(&f.js, ORDERS).await.unwrap();
    let old = Order {
        id: "old-1/41".into(),
        host: "h2".into(),
        rollout: "old-1".into(),
        wave: 0,
        seq: 41,
        epoch: Epoch { era: 1, rev: 1 },
        issued_at: 0,
        deadline_at: 0,
        action: Action::Cancel {
            of: "old-1/40".into(),
        },
    };
    orders.create("h2", &old).await.unwrap();
    let s = f
        .start_rollout(&generation_spec("gen-12", &[&["h1"], &["h2"]], "pause"))
        .await;
    assert_eq!(s.next_seq, 42);
    assert_eq!(
        s.epoch,
        Epoch { era: 0, rev: 0 },
        "adopted by a coordinator"
    );
    assert_eq!(s.phase, RolloutPhase::Running);
    let e = coordinator::start_rollout_text(
        &f.js,
        "t.toml",
        &generation_spec("gen-13", &[&["h3"], &["h2"]], "pause"),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("host \"h2\" is in rollout \"gen-12\""),
        "{e}"
    );
    let e = f
        .start_rollout_err(&generation_spec("gen-12", &[&["h4"]], "pause"))
        .await;
    assert!(matches!(e, coordinator::StartError::Exists(_)), "{e}");
    let e = f
        .start_rollout_err(&generation_spec("gen-14", &[&["nope"]], "pause"))
        .await;
    assert!(e.to_string().contains("unknown"), "{e}");
    // Control needs the rollout.
    let e = coordinator::control(&f.js, "gen-99", ControlCommand::Pause, "bob")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    coordinator::control(&f.js, "gen-12", ControlCommand::Pause, "bob")
        .await
        .unwrap();
    coordinator::control(&f.js, "gen-12", ControlCommand::Resume, "bob")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_mid_rollout_is_ridden_out() {
    let nats = server!("a_nats_restart_mid_rollout_is_ridden_out");
    let mut f = Fleet::start(
        nats,
        &five(|h| Opts {
            switch_delay: if h == "h2" || h == "h3" {
                Duration::from_millis(1500)
            } else {
                Duration::from_millis(100)
            },
            ..healthy()
        }),
    )
    .await;
    let c = f.coordinator("a");
    c.leading(10).await;
    f.start_rollout(&generation_spec("gen-15", WAVES_1_2_2, "pause"))
        .await;
    f.until("gen-15", 30, "wave 2 ordered", |s| {
        s.wave == 1 && s.waves[1].phase != WavePhase::Pending
    })
    .await;
    f.nats.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    f.nats.restart();
    let s = f
        .until("gen-15", 60, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert!(
        s.waves.iter().all(|w| w.phase == WavePhase::Green),
        "{s:#?}"
    );
    for h in f.hosts.keys() {
        assert_eq!(
            f.kinds(h),
            [ActionKind::Switch, ActionKind::Confirm],
            "{h}: {:?}",
            f.host(h).executed()
        );
    }
    assert_no_duplicates(&f);
    eprintln!("coordinator: {:?}", c.status.get());
}

// ---------------------------------------------------------------------
// Fleet sweeps whose release the coordinator discovers when the rollout
// starts (`[target.sweep]` without `release`), against a real OCI
// registry on loopback (Debian's docker-registry, tags pushed through its
// HTTP API; the test fails when it is missing).

fn discover_spec(id: &str, waves: &[&[&str]]) -> String {
    format!(
        "id = \"{id}\"\n[target.sweep]\napp = \"web\"\n{}{}",
        waves_toml(waves),
        policy("pause")
    )
}

/// A host running `image` for web, its canonical release `release`.
fn runs_web(image: &str, release: Option<&str>) -> Opts {
    Opts {
        apps: BTreeMap::from([(
            "web".to_string(),
            AppReport {
                image: image.to_string(),
                track: "semver".into(),
                allow_prerelease: false,
                constraint: None,
            },
        )]),
        releases: release
            .map(|r| BTreeMap::from([("web".to_string(), r.to_string())]))
            .unwrap_or_default(),
        ..healthy()
    }
}

fn with_registry(holder: &str, registry: &str) -> Config {
    let mut c = Config::new(holder, TTL);
    c.registry = RegistryConfig {
        insecure_hosts: vec![registry.to_string()],
        attempts: 1,
    };
    c
}

fn sweeps_of(f: &Fleet, h: &str) -> Vec<String> {
    f.host(h)
        .executed()
        .into_iter()
        .filter_map(|o| match o.action {
            Action::Sweep { release, .. } => Some(release),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_without_a_release_moves_every_wave_to_the_release_found_at_start() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(
        reg.port,
        "fleet/web",
        &["1.3.0", "1.4.0", "1.4.2", "1.5.0-rc.1", "latest"],
    )
    .await;
    let nats = server!("a_sweep_without_a_release_moves_every_wave_to_the_release_found_at_start");
    // Hosts that never promoted a release run the tag of their image.
    let image = format!("{r0}/fleet/web:1.3.0");
    let f = Fleet::start(
        nats,
        &five(|h| runs_web(&image, (h == "h5").then_some("1.4.0"))),
    )
    .await;
    let c = f.coordinator_with(with_registry("a", &r0));
    let epoch = c.leading(10).await;
    let started = f.start_rollout(&discover_spec("web-d1", WAVES_1_2_2)).await;
    assert_eq!(started.release, None, "the coordinator discovers it");
    let s = f
        .until("web-d1", 30, "the canary ordered", |s| {
            s.waves[0].phase != WavePhase::Pending
        })
        .await;
    // The newest release the hosts' policy admits (no prerelease), once.
    assert_eq!(s.release.as_deref(), Some("1.4.2"), "{s:#?}");
    // A release pushed mid-rollout changes nothing: every wave orders
    // the release chosen at the start.
    net::push_tags(reg.port, "fleet/web", &["1.4.3"]).await;
    let s = f
        .until("web-d1", 60, "completed", |s| {
            s.phase == RolloutPhase::Completed
        })
        .await;
    assert_eq!(s.epoch, epoch);
    assert!(s.canonical_recorded);
    for h in f.hosts.keys() {
        assert_eq!(sweeps_of(&f, h), ["1.4.2"], "{h}");
        assert_eq!(
            f.kinds(h),
            [ActionKind::Sweep, ActionKind::Confirm],
            "{h}: {:?}",
            f.host(h).executed()
        );
    }
    let canon: Bucket<Canonical> = Bucket::open(&f.js, ROLLOUTS).await.unwrap();
    let c1 = canon.require("canonical.web").await.unwrap();
    assert_eq!(c1.value.release, "1.4.2");
    assert_eq!(c1.value.rollout, "web-d1");

    // The next sweep finds what was pushed since.
    f.start_rollout(&discover_spec("web-d2", &[&["h1", "h2", "h3", "h4", "h5"]]))
        .await;
    let s = f
        .until("web-d2", 60, "completed", |s| {
            !coordinator::is_active(s.phase)
        })
        .await;
    assert_eq!(s.phase, RolloutPhase::Completed, "{s:#?}");
    assert_eq!(s.release.as_deref(), Some("1.4.3"));
    assert_eq!(
        canon.require("canonical.web").await.unwrap().value.release,
        "1.4.3"
    );

    // Nothing newer than the fleet's canonical release: refused, saying
    // so, and no host gets an order.
    let before: Vec<usize> = HOSTS5.iter().map(|h| f.host(h).executed().len()).collect();
    f.start_rollout(&discover_spec(
        "web-d3",
        &[&["h1"], &["h2", "h3", "h4", "h5"]],
    ))
    .await;
    let s = f
        .until("web-d3", 30, "refused", |s| {
            !coordinator::is_active(s.phase)
        })
        .await;
    assert_eq!(s.phase, RolloutPhase::Refused, "{s:#?}");
    assert!(
        s.reason.contains("no release of") && s.reason.contains("newer than 1.4.3"),
        "{}",
        s.reason
    );
    assert_eq!(s.release, None);
    assert!(s.waves.iter().all(|w| w.phase == WavePhase::Pending));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<usize> = HOSTS5.iter().map(|h| f.host(h).executed().len()).collect();
    assert_eq!(before, after, "no order for a refused rollout");
    assert_no_duplicates(&f);
    assert_eq!(c.status.get().rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_is_refused_when_the_hosts_disagree_on_the_image_or_the_registry_is_away() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0", "1.1.0"]).await;
    net::push_tags(reg.port, "other/web", &["2.0.0"]).await;
    let nats =
        server!("a_sweep_is_refused_when_the_hosts_disagree_on_the_image_or_the_registry_is_away");
    let f = Fleet::start(
        nats,
        &five(|h| {
            let repo = if h == "h4" { "other/web" } else { "fleet/web" };
            runs_web(&format!("{r0}/{repo}:1.0.0"), None)
        }),
    )
    .await;
    let c = f.coordinator_with(with_registry("a", &r0));
    c.leading(10).await;
    f.start_rollout(&discover_spec("web-x1", &[&["h1"], &["h3", "h4"]]))
        .await;
    let s = f
        .until("web-x1", 30, "refused", |s| {
            !coordinator::is_active(s.phase)
        })
        .await;
    assert_eq!(s.phase, RolloutPhase::Refused, "{s:#?}");
    assert!(
        s.reason.contains("fleet/web") && s.reason.contains("other/web"),
        "{}",
        s.reason
    );
    // The hosts that agree: the registry's newest.
    f.start_rollout(&discover_spec("web-x2", &[&["h1"], &["h2", "h3"]]))
        .await;
    let s = f
        .until("web-x2", 60, "completed", |s| {
            !coordinator::is_active(s.phase)
        })
        .await;
    assert_eq!(s.phase, RolloutPhase::Completed, "{s:#?}");
    assert_eq!(s.release.as_deref(), Some("1.1.0"));
    // The registry away: refused with its error, no order.
    drop(reg);
    f.start_rollout(&discover_spec("web-x3", &[&["h5"]])).await;
    let s = f
        .until("web-x3", 30, "refused", |s| {
            !coordinator::is_active(s.phase)
        })
        .await;
    assert_eq!(s.phase, RolloutPhase::Refused, "{s:#?}");
    assert!(s.reason.contains("registry"), "{}", s.reason);
    assert!(f.host("h5").executed().is_empty());
}
