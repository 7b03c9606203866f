//! Acceptance test 8 (docs/design/fleet.md §11): a host's credentials
//! reach its own heartbeat, results, order key and the lease, and nothing
//! of another host's. A real nats-server with three users: `admin` (all),
//! `h1` and `h2` with the blocks `windlass_fleet::permissions` prints.
//! The server's log must name every refusal, and none while fleetd runs
//! an order under h1: the block is what fleetd needs, no less.

mod support;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use support::fake::Fake;
use support::nats::NatsServer;
use windlass_fleet::buckets::{self, HOSTS, LEASE, LEASE_KEY, ORDERS, RESULTS, ROLLOUTS};
use windlass_fleet::fleetd::{Config, Fleetd};
use windlass_fleet::kv::Bucket;
use windlass_fleet::lease::{self, Lease};
use windlass_fleet::model::{
    Action, ConfirmMode, Epoch, Heartbeat, HostResult, NativeTarget, Order, ResultOutcome, Target,
    order_id,
};
use windlass_fleet::permissions;

const ROLLOUT: &str = "web-142";

fn server_config() -> String {
    let user = |u: &str, p: &str| {
        format!(
            "    {{user: {u}, password: {p},\n{}    }}\n",
            permissions::host_block(u).unwrap()
        )
    };
    format!(
        "authorization {{\n  users = [\n    {{user: admin, password: adminpw}}\n{}{}  ]\n}}\n",
        user("h1", "p1"),
        user("h2", "p2")
    )
}

async fn connect(url: &str, user: &str, pass: &str, inbox: Option<String>) -> jetstream::Context {
    let mut o = async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into());
    if let Some(i) = inbox {
        o = o.custom_inbox_prefix(i);
    }
    let c = o
        .request_timeout(Some(Duration::from_secs(2)))
        .connect(url)
        .await
        .unwrap();
    jetstream::new(c)
}

struct World {
    nats: NatsServer,
    admin: jetstream::Context,
    orders: Bucket<Order>,
    results: Bucket<HostResult>,
    hosts: Bucket<Heartbeat>,
    epoch: Epoch,
}

impl World {
    async fn new(name: &str) -> Option<World> {
        let nats = NatsServer::start_with(name, &server_config())?;
        let admin = connect(&nats.url(), "admin", "adminpw", None).await;
        let cfg = buckets::Config {
            lease_ttl: Duration::from_secs(3600),
            ..Default::default()
        };
        buckets::init(&admin, &cfg).await.unwrap();
        let lease_b: Bucket<Lease> = Bucket::open(&admin, LEASE).await.unwrap();
        let epoch = Epoch {
            era: lease::era(&lease_b).await.unwrap(),
            rev: 100,
        };
        let l = Lease {
            holder: "test:1".into(),
            epoch: Some(epoch),
            acquired_at: 0,
            renewed_at: 0,
            ttl_ms: 3_600_000,
            version: "test".into(),
        };
        lease_b.put(LEASE_KEY, &l).await.unwrap();
        Some(World {
            orders: Bucket::open(&admin, ORDERS).await.unwrap(),
            results: Bucket::open(&admin, RESULTS).await.unwrap(),
            hosts: Bucket::open(&admin, HOSTS).await.unwrap(),
            admin,
            epoch,
            nats,
        })
    }

    fn order(&self, host: &str, seq: u64) -> Order {
        Order {
            id: order_id(ROLLOUT, seq),
            host: host.into(),
            rollout: ROLLOUT.into(),
            wave: 0,
            seq,
            epoch: self.epoch,
            issued_at: now_ms(),
            deadline_at: now_ms() + 60_000,
            action: Action::Switch {
                target: Target::Native(NativeTarget {
                    digest: "sha256:02".into(),
                    artifact: "sha256-aa".into(),
                    artifact_sha256: "aa".into(),
                    size: 1,
                }),
                deadline_sec: 30,
                confirm: ConfirmMode::Local,
            },
        }
    }

    fn violations(&self) -> Vec<String> {
        self.nats
            .log()
            .lines()
            .filter(|l| l.contains("Violation"))
            .map(str::to_string)
            .collect()
    }

    /// Waits until the server's log names a violation containing `what`.
    async fn wait_violation(&self, what: &str) {
        let t = Instant::now();
        while !self.violations().iter().any(|l| l.contains(what)) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no violation naming {what:?} in the server log; violations: {:#?}",
                self.violations()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

macro_rules! world {
    ($name:expr) => {
        match World::new($name).await {
            Some(w) => w,
            None => return,
        }
    };
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_credentials_reach_its_own_keys_and_nothing_of_another_host() {
    let w = world!("a_hosts_credentials_reach_its_own_keys_and_nothing_of_another_host");
    w.orders.put("h1", &w.order("h1", 1)).await.unwrap();
    w.orders.put("h2", &w.order("h2", 1)).await.unwrap();
    let h1 = connect(
        &w.nats.url(),
        "h1",
        "p1",
        Some(permissions::inbox_prefix("h1")),
    )
    .await;

    // What fleetd does, allowed.
    let orders: Bucket<Order> = Bucket::open(&h1, ORDERS).await.unwrap();
    let lease_b: Bucket<Lease> = Bucket::open(&h1, LEASE).await.unwrap();
    let hosts: Bucket<serde_json::Value> = Bucket::open(&h1, HOSTS).await.unwrap();
    let results: Bucket<HostResult> = Bucket::open(&h1, RESULTS).await.unwrap();
    assert_eq!(orders.require("h1").await.unwrap().value.host, "h1");
    assert_eq!(
        lease::live_epoch(&lease_b).await.unwrap(),
        Some(w.epoch),
        "the lease"
    );
    assert_eq!(lease::era(&lease_b).await.unwrap(), w.epoch.era);
    let hb = serde_json::json!({"host": "h1"});
    hosts.put("h1", &hb).await.unwrap();
    let r = result("h1");
    results.create("h1.web-142.1.final", &r).await.unwrap();
    // A second create of the same key is AlreadyExists, not a refusal.
    assert!(matches!(
        results.create("h1.web-142.1.final", &r).await,
        Err(windlass_fleet::kv::KvError::AlreadyExists { .. })
    ));
    assert!(w.violations().is_empty(), "{:#?}", w.violations());

    // Another host's keys, refused.
    assert!(orders.get("h2").await.is_err(), "read h2's order");
    w.wait_violation("$JS.API.DIRECT.GET.KV_windlass-orders.$KV.windlass-orders.h2")
        .await;
    assert!(hosts.put("h2", &hb).await.is_err(), "put h2's heartbeat");
    w.wait_violation("$KV.windlass-hosts.h2").await;
    assert!(
        results.create("h2.web-142.1.final", &r).await.is_err(),
        "create a result of h2"
    );
    w.wait_violation("$KV.windlass-results.h2.web-142.1.final")
        .await;
    // Writing an order, even its own.
    assert!(
        orders.put("h1", &w.order("h1", 2)).await.is_err(),
        "write an order"
    );
    w.wait_violation("$KV.windlass-orders.h1").await;
    // The rollouts bucket and the raw message API.
    assert!(
        Bucket::<serde_json::Value>::open(&h1, ROLLOUTS)
            .await
            .is_err()
    );
    w.wait_violation("$JS.API.STREAM.INFO.KV_windlass-rollouts")
        .await;
    // Another host's order subject: the server refuses the subscription
    // and h1 sees none of h2's orders.
    let mut sub = h1
        .client()
        .subscribe("$KV.windlass-orders.h2")
        .await
        .unwrap();
    w.wait_violation("Subscription Violation").await;
    w.orders.put("h2", &w.order("h2", 2)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(!matches!(got, Ok(Some(_))), "h1 received h2's order");
    // Another host's inbox.
    let mut sub = h1.client().subscribe("_INBOX_h2.>").await.unwrap();
    w.wait_violation("_INBOX_h2.>").await;
    let got = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
    assert!(!matches!(got, Ok(Some(_))));
    let _ = &w.admin;
}

fn result(host: &str) -> HostResult {
    serde_json::from_value(serde_json::json!({
        "order": "web-142/1", "host": host, "rollout": "web-142", "seq": 1,
        "epoch": {"era": 1, "rev": 1}, "kind": "switch", "outcome": "committed",
        "error": "", "journal": [], "at": 1
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleetd_runs_an_order_under_its_restricted_user() {
    let w = world!("fleetd_runs_an_order_under_its_restricted_user");
    let state = tempfile::tempdir().unwrap();
    let pw = state.path().join("password");
    std::fs::write(&pw, "p1\n").unwrap();
    let mut cfg = Config::new("h1", w.nats.url(), state.path().join("state"));
    cfg.auth.user = Some("h1".into());
    cfg.auth.password_file = Some(pw);
    cfg.heartbeat_interval = Duration::from_secs(1);
    let agent = Fake::new();
    let _f = Fleetd::start(cfg, agent.clone()).await.unwrap();
    w.orders.put("h1", &w.order("h1", 1)).await.unwrap();
    let key = format!("h1.{ROLLOUT}.1.final");
    let t = Instant::now();
    let fin = loop {
        if let Some(e) = w.results.get(&key).await.unwrap() {
            break e.value;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no final result; violations: {:#?}",
            w.violations()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(fin.outcome, ResultOutcome::Committed, "{fin:?}");
    let t = Instant::now();
    while w.hosts.get("h1").await.unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "no heartbeat");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing fleetd did was refused.
    assert!(w.violations().is_empty(), "{:#?}", w.violations());
}
