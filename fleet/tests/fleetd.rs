//! fleetd against a real nats-server with a fake agent (an in-memory
//! [`AgentApi`] that records calls and plays an operation's phases):
//! orders run once with their steps in order, replays and restarts run
//! nothing again, the epoch fence ignores and parks, the outbox survives
//! NATS being down and is published once, heartbeats say what they
//! should. Heartbeat interval 1 s.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::fake::Fake;
use support::nats::NatsServer;
use windlass_contract::GenerationId;
use windlass_fleet::agent::{AgentApi, Confirm, DbusAgent, OpEnd, OpEvent};
use windlass_fleet::buckets::{self, HOSTS, LEASE, LEASE_KEY, ORDERS, RESULTS};
use windlass_fleet::fleetd::{Config, Fleetd};
use windlass_fleet::kv::Bucket;
use windlass_fleet::lease::{self, Lease};
use windlass_fleet::model::{
    Action, ConfirmMode, Epoch, GenerationRef, Heartbeat, HostActivity, HostResult, NativeTarget,
    OpId, Order, ResultOutcome, Target, order_id,
};

const HOST: &str = "kiosk-01";
const ROLLOUT: &str = "web-142";
/// Generation 1 runs at start; 2 is good, 3 fails its gate, 4 is slow.
const D1: &str = "sha256:01";
const D2: &str = "sha256:02";
const D3: &str = "sha256:03";
const D4: &str = "sha256:04";

// ---------------------------------------------------------------------
// The world: a server with the buckets and a live lease

macro_rules! world {
    ($name:expr) => {
        match World::new($name).await {
            Some(w) => w,
            None => return,
        }
    };
}

struct World {
    nats: NatsServer,
    orders: Bucket<Order>,
    lease: Bucket<Lease>,
    results: Bucket<HostResult>,
    hosts: Bucket<Heartbeat>,
    /// The live lease's epoch.
    epoch: Epoch,
    state: tempfile::TempDir,
}

impl World {
    async fn new(name: &str) -> Option<World> {
        let nats = NatsServer::start(name)?;
        let (_c, js) = nats.connect().await;
        let cfg = buckets::Config {
            // The test's lease does not expire.
            lease_ttl: Duration::from_secs(3600),
            ..Default::default()
        };
        buckets::init(&js, &cfg).await.unwrap();
        let lease_b: Bucket<Lease> = Bucket::open(&js, LEASE).await.unwrap();
        let era = lease::era(&lease_b).await.unwrap();
        let w = World {
            orders: Bucket::open(&js, ORDERS).await.unwrap(),
            results: Bucket::open(&js, RESULTS).await.unwrap(),
            hosts: Bucket::open(&js, HOSTS).await.unwrap(),
            lease: lease_b,
            epoch: Epoch { era, rev: 100 },
            nats,
            state: tempfile::tempdir().unwrap(),
        };
        w.set_lease(Some(w.epoch)).await;
        Some(w)
    }

    async fn set_lease(&self, epoch: Option<Epoch>) {
        let l = Lease {
            holder: "test:1".into(),
            epoch,
            acquired_at: 0,
            renewed_at: 0,
            ttl_ms: 3_600_000,
            version: "test".into(),
        };
        self.lease.put(LEASE_KEY, &l).await.unwrap();
    }

    fn config(&self) -> Config {
        let mut c = Config::new(HOST, self.nats.url(), self.state.path().to_path_buf());
        c.heartbeat_interval = Duration::from_secs(1);
        c.labels = BTreeMap::from([("site".into(), "north".into())]);
        c
    }

    async fn fleetd(&self, agent: &Fake) -> Fleetd<Fake> {
        Fleetd::start(self.config(), agent.clone()).await.unwrap()
    }

    async fn heartbeat(&self, f: impl Fn(&Heartbeat) -> bool) -> Heartbeat {
        let t = Instant::now();
        loop {
            let hb = self.hosts.get(HOST).await.unwrap().map(|e| e.value);
            if let Some(hb) = hb {
                if f(&hb) {
                    return hb;
                }
                assert!(t.elapsed() < Duration::from_secs(20), "{hb:?}");
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no heartbeat");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn order(&self, seq: u64, epoch: Epoch, action: Action) -> Order {
        let o = Order {
            id: order_id(ROLLOUT, seq),
            host: HOST.into(),
            rollout: ROLLOUT.into(),
            wave: 0,
            seq,
            epoch,
            issued_at: now_ms(),
            deadline_at: now_ms() + 60_000,
            action,
        };
        self.orders.put(HOST, &o).await.unwrap();
        o
    }

    async fn result(&self, seq: u64, step: &str) -> Option<HostResult> {
        let key = format!("{HOST}.{ROLLOUT}.{seq}.{step}");
        self.results.get(&key).await.unwrap().map(|e| e.value)
    }

    async fn wait_result(&self, seq: u64, step: &str) -> HostResult {
        let t = Instant::now();
        loop {
            if let Some(r) = self.result(seq, step).await {
                return r;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no result {seq}.{step} within 20 s; results: {:?}",
                self.results.keys().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every write the results stream took (each key is written once, so
    /// this is the number of keys if nothing was written twice).
    async fn result_writes(&self) -> u64 {
        let mut s = self.results.store().stream.clone();
        s.info().await.unwrap().state.last_sequence
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn switch(digest: &str, confirm: ConfirmMode) -> Action {
    Action::Switch {
        target: Target::Native(NativeTarget {
            digest: digest.into(),
            artifact: "sha256-aa".into(),
            artifact_sha256: "aa".into(),
            size: 1,
        }),
        deadline_sec: 30,
        confirm,
    }
}

fn starts(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| !c.starts_with("by-request"))
        .cloned()
        .collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_runs_once_and_its_steps_appear_in_order() {
    let w = world!("an_order_runs_once_and_its_steps_appear_in_order");
    let agent = Fake::new();
    let _f = w.fleetd(&agent).await;
    w.order(1, w.epoch, switch(D2, ConfirmMode::Observed)).await;
    let started = w.wait_result(1, "started").await;
    let awaiting = w.wait_result(1, "awaiting").await;
    assert_eq!(started.outcome, ResultOutcome::Started);
    assert_eq!(awaiting.outcome, ResultOutcome::AwaitingConfirm);
    assert_eq!(started.operation, awaiting.operation);
    let op = started.operation.clone().unwrap();
    assert_eq!(started.kind.as_deref(), Some("switch"));
    assert_eq!(started.epoch, w.epoch);
    assert_eq!(
        started.from,
        Some(GenerationRef {
            generation: GenerationId(1),
            digest: D1.into()
        })
    );
    assert_eq!(
        started.to,
        Some(GenerationRef {
            generation: GenerationId(2),
            digest: D2.into()
        })
    );
    assert!(
        w.result(1, "final").await.is_none(),
        "final before the confirm"
    );
    // The coordinator confirms with the next order.
    w.order(
        2,
        w.epoch,
        Action::Confirm {
            of: order_id(ROLLOUT, 1),
        },
    )
    .await;
    let fin = w.wait_result(1, "final").await;
    let conf = w.wait_result(2, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed, "{fin:?}");
    assert_eq!(conf.outcome, ResultOutcome::Committed, "{conf:?}");
    assert_eq!(conf.operation.as_deref(), Some(op.as_str()));
    assert!(started.at <= awaiting.at && awaiting.at <= fin.at);
    // The steps were written in order, each once.
    let rev = |k: &str| {
        let r = w.results.clone();
        let k = format!("{HOST}.{ROLLOUT}.{k}");
        async move { r.get(&k).await.unwrap().unwrap().revision }
    };
    assert!(rev("1.started").await < rev("1.awaiting").await);
    assert!(rev("1.awaiting").await < rev("1.final").await);
    assert_eq!(w.result_writes().await, 4);
    assert_eq!(
        starts(&agent.calls()),
        vec![
            format!("switch 2 manual {ROLLOUT}/1"),
            format!("confirm {op}")
        ]
    );
    assert!(agent.calls().contains(&format!("by-request {ROLLOUT}/1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gate_is_reported_rolled_back_with_the_journal() {
    let w = world!("a_failed_gate_is_reported_rolled_back_with_the_journal");
    let agent = Fake::new();
    let _f = w.fleetd(&agent).await;
    w.order(1, w.epoch, switch(D3, ConfirmMode::Observed)).await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::RolledBack);
    assert!(fin.error.contains("health gate"), "{fin:?}");
    assert_eq!(
        fin.journal,
        vec![
            "web.service: exited 1".to_string(),
            "fetching https://***@h/x?***".to_string()
        ],
        "redacted"
    );
    assert!(w.result(1, "awaiting").await.is_none());
    // A digest the host does not have: refused, nothing started.
    w.order(2, w.epoch, switch("sha256:ff", ConfirmMode::Observed))
        .await;
    let r = w.wait_result(2, "final").await;
    assert_eq!(r.outcome, ResultOutcome::Refused);
    assert!(r.error.contains("sha256:ff"), "{r:?}");
    assert_eq!(starts(&agent.calls()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_order_and_a_restart_after_it_run_nothing_again() {
    let w = world!("a_replayed_order_and_a_restart_after_it_run_nothing_again");
    let agent = Fake::new();
    let f = w.fleetd(&agent).await;
    let o = w.order(1, w.epoch, switch(D2, ConfirmMode::Local)).await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed);
    assert!(w.result(1, "awaiting").await.is_none(), "local confirm");
    wait_until("the order is done", || f.state().open.is_empty()).await;
    // The same order again on the subject.
    w.orders.put(HOST, &o).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // fleetd restarted with the same state: it reads the key again.
    f.stop();
    let f = w.fleetd(&agent).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        starts(&agent.calls()),
        vec![format!("switch 2 auto {ROLLOUT}/1")]
    );
    assert_eq!(f.state().host.last_seq, 1);
    assert_eq!(w.result_writes().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_operation_follows_it_instead_of_starting_again() {
    let w = world!("a_restart_mid_operation_follows_it_instead_of_starting_again");
    let agent = Fake::new();
    let f = w.fleetd(&agent).await;
    w.order(1, w.epoch, switch(D2, ConfirmMode::Observed)).await;
    let awaiting = w.wait_result(1, "awaiting").await;
    f.stop();
    let f = w.fleetd(&agent).await;
    w.order(
        2,
        w.epoch,
        Action::Confirm {
            of: order_id(ROLLOUT, 1),
        },
    )
    .await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed);
    assert_eq!(fin.operation, awaiting.operation);
    assert_eq!(
        w.wait_result(2, "final").await.outcome,
        ResultOutcome::Committed
    );
    let calls = starts(&agent.calls());
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("switch")).count(),
        1,
        "{calls:?}"
    );
    wait_until("both orders done", || f.state().open.is_empty()).await;
    assert_eq!(w.result_writes().await, 4);

    // A crash between the agent's answer and the state write: the
    // request id finds the operation, nothing starts twice.
    f.stop();
    let mut st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.state.path().join("state.json")).unwrap()).unwrap();
    let o3 = w.order(3, w.epoch, switch(D1, ConfirmMode::Local)).await;
    // As if fleetd had accepted order 3 and called the agent, then died.
    let op3 = agent
        .switch(GenerationId(1), Confirm::Auto, Some(30), &o3.id)
        .await
        .unwrap();
    st["last_seq"] = 3.into();
    st["in_progress"] = serde_json::to_value(&o3).unwrap();
    st["open"][&o3.id] = serde_json::json!({"order": o3});
    std::fs::write(
        w.state.path().join("state.json"),
        serde_json::to_vec(&st).unwrap(),
    )
    .unwrap();
    let _f = w.fleetd(&agent).await;
    let fin3 = w.wait_result(3, "final").await;
    assert_eq!(fin3.outcome, ResultOutcome::Committed);
    assert_eq!(fin3.operation.as_deref(), Some(op3.as_str()));
    let calls = starts(&agent.calls());
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("switch")).count(),
        2,
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_older_than_the_obeyed_epoch_is_ignored() {
    let w = world!("an_order_older_than_the_obeyed_epoch_is_ignored");
    let agent = Fake::new();
    let f = w.fleetd(&agent).await;
    let old = Epoch {
        era: w.epoch.era,
        rev: w.epoch.rev - 10,
    };
    w.order(1, w.epoch, switch(D2, ConfirmMode::Local)).await;
    w.wait_result(1, "final").await;
    // A stale coordinator's order, even while its lease would be live.
    w.set_lease(Some(old)).await;
    w.order(7, old, switch(D1, ConfirmMode::Local)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(starts(&agent.calls()).len(), 1, "{:?}", agent.calls());
    assert!(w.result(7, "started").await.is_none());
    assert!(w.result(7, "final").await.is_none());
    assert_eq!(f.state().host.max_epoch, Some(w.epoch));
    assert_eq!(f.state().host.last_seq, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_of_a_dead_epoch_is_parked_until_rewritten_with_the_live_one() {
    let w = world!("an_order_of_a_dead_epoch_is_parked_until_rewritten_with_the_live_one");
    let agent = Fake::new();
    let f = w.fleetd(&agent).await;
    let dead = Epoch {
        era: w.epoch.era,
        rev: w.epoch.rev - 1,
    };
    // A dead coordinator's order, with a seq above the live one's next.
    w.order(9, dead, switch(D2, ConfirmMode::Local)).await;
    // Several heartbeat ticks judge it again: still parked.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(starts(&agent.calls()).is_empty(), "{:?}", agent.calls());
    assert_eq!(f.state().host.last_seq, 0);
    // The live coordinator's order (a smaller seq) while no lease can be
    // read: parked too, in place of the dead one.
    w.lease.delete(LEASE_KEY).await.unwrap();
    w.order(1, w.epoch, switch(D2, ConfirmMode::Local)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(starts(&agent.calls()).is_empty(), "{:?}", agent.calls());
    // The lease is readable again: the parked order is judged again on
    // the next tick and runs; the dead one never does.
    w.set_lease(Some(w.epoch)).await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed);
    assert_eq!(fin.epoch, w.epoch);
    assert_eq!(
        starts(&agent.calls()),
        vec![format!("switch 2 auto {ROLLOUT}/1")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_results_wait_in_the_outbox_and_are_published_once() {
    let mut w = world!("with_nats_down_results_wait_in_the_outbox_and_are_published_once");
    let agent = Fake::new();
    let f = w.fleetd(&agent).await;
    // Generation 4 takes 1.5 s: it ends while NATS is down.
    w.order(1, w.epoch, switch(D4, ConfirmMode::Local)).await;
    w.wait_result(1, "started").await;
    w.nats.stop();
    let op = agent.st().by_request[&order_id(ROLLOUT, 1)].clone();
    wait_until("the switch ends on the host", || {
        agent.phase(&op).1.is_some()
    })
    .await;
    wait_until("the final result waits in the outbox", || {
        f.outbox_len() == 1
    })
    .await;
    assert_eq!(agent.st().running, 4, "the host went on without NATS");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(f.outbox_len(), 1);
    w.nats.restart();
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed);
    wait_until("the outbox is empty", || f.outbox_len() == 0).await;
    // A heartbeat after the reconnect, then nothing more was published.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.result_writes().await, 2, "each result key written once");
    assert_eq!(starts(&agent.calls()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_published_before_a_crash_counts_as_delivered() {
    let w = world!("a_result_published_before_a_crash_counts_as_delivered");
    let r = HostResult {
        order: order_id(ROLLOUT, 1),
        host: HOST.into(),
        rollout: ROLLOUT.into(),
        seq: 1,
        epoch: w.epoch,
        operation: Some("1x0".into()),
        kind: Some("switch".into()),
        outcome: ResultOutcome::Started,
        from: None,
        to: None,
        error: String::new(),
        journal: vec![],
        at: 1,
    };
    let key = format!("{HOST}.{ROLLOUT}.1.started");
    w.results.create(&key, &r).await.unwrap();
    let ob = windlass_fleet::fleetd::outbox::Outbox::open(w.state.path()).unwrap();
    ob.push(key.clone(), r.clone()).unwrap();
    let mut r2 = r.clone();
    r2.outcome = ResultOutcome::Committed;
    ob.push(format!("{HOST}.{ROLLOUT}.1.final"), r2).unwrap();
    assert_eq!(ob.len(), 2);
    assert_eq!(ob.flush(&w.results).await.unwrap(), 2);
    assert!(ob.is_empty());
    assert_eq!(w.result_writes().await, 2);
    assert_eq!(
        w.result(1, "final").await.unwrap().outcome,
        ResultOutcome::Committed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_the_host_and_its_operation() {
    let w = world!("heartbeats_show_the_host_and_its_operation");
    let agent = Fake::new();
    let _f = w.fleetd(&agent).await;
    let hb = loop {
        if let Some(e) = w.hosts.get(HOST).await.unwrap() {
            break e.value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hb.host, HOST);
    assert_eq!(hb.agent, "0.2.0");
    assert_eq!(hb.platform, "native");
    assert_eq!(hb.labels["site"], "north");
    assert_eq!(hb.releases["web"], "1.4.2");
    assert_eq!(hb.apps["web"].image, "reg.example/web:1.4.2");
    assert_eq!(hb.apps["web"].track, "semver");
    assert_eq!(hb.state, HostActivity::Idle);
    assert_eq!(hb.running.as_ref().unwrap().digest, D1);
    assert_eq!(hb.orders.last_seq, 0);
    assert_eq!(hb.outbox, 0);
    // Sent every interval: n counts up.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = w.hosts.get(HOST).await.unwrap().unwrap().value;
    assert!(later.n >= hb.n + 2, "{} then {}", hb.n, later.n);
    // With a heartbeat interval of a minute, what follows is sent on
    // changes only: a waiting switch shows at once.
    drop(_f);
    let mut cfg = w.config();
    cfg.heartbeat_interval = Duration::from_secs(60);
    let restarted = now_ms();
    let _f = Fleetd::start(cfg, agent.clone()).await.unwrap();
    let first = w.heartbeat(|h| h.sent_at >= restarted).await;
    w.order(1, w.epoch, switch(D2, ConfirmMode::Observed)).await;
    let awaiting = w.wait_result(1, "awaiting").await;
    let hb = w
        .heartbeat(|hb| {
            hb.operation
                .as_ref()
                .is_some_and(|o| o.phase == "waiting-confirm")
        })
        .await;
    assert!(
        hb.n > first.n && hb.n <= first.n + 8,
        "{} {}",
        first.n,
        hb.n
    );
    assert!(
        hb.sent_at.abs_diff(awaiting.at) < 2000,
        "sent on the change: {} vs {}",
        hb.sent_at,
        awaiting.at
    );
    let op = hb.operation.unwrap();
    assert_eq!(op.request.as_deref(), Some("web-142/1"));
    assert_eq!(op.kind, "switch");
    assert_eq!(hb.state, HostActivity::Busy);
    assert_eq!(hb.running.unwrap().digest, D2);
    assert_eq!(hb.orders.last_seq, 1);
    assert_eq!(hb.orders.max_epoch, Some(w.epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_cancels_a_waiting_switch_and_a_cancel_of_nothing_is_skipped() {
    let w = world!("a_rollback_cancels_a_waiting_switch_and_a_cancel_of_nothing_is_skipped");
    let agent = Fake::new();
    let _f = w.fleetd(&agent).await;
    w.order(1, w.epoch, switch(D2, ConfirmMode::Observed)).await;
    let started = w.wait_result(1, "started").await;
    w.wait_result(1, "awaiting").await;
    let from = started.from.clone().unwrap();
    w.order(
        2,
        w.epoch,
        Action::Rollback {
            of: order_id(ROLLOUT, 1),
            to: from.clone(),
        },
    )
    .await;
    let main = w.wait_result(1, "final").await;
    assert_eq!(main.outcome, ResultOutcome::Canceled, "{main:?}");
    let back = w.wait_result(2, "final").await;
    // The cancel put the host back: no Rollback call was needed.
    assert_eq!(back.outcome, ResultOutcome::Skipped, "{back:?}");
    assert_eq!(back.to, Some(from));
    let op = started.operation.unwrap();
    assert_eq!(
        starts(&agent.calls()),
        vec![
            format!("switch 2 manual {ROLLOUT}/1"),
            format!("cancel {op}")
        ]
    );
    assert_eq!(agent.st().running, 1);
    // A cancel of an order that never ran here.
    w.order(
        3,
        w.epoch,
        Action::Cancel {
            of: order_id(ROLLOUT, 9),
        },
    )
    .await;
    let c = w.wait_result(3, "final").await;
    assert_eq!(c.outcome, ResultOutcome::Skipped, "{c:?}");
    // A rollback of a committed switch calls Rollback with the request.
    w.order(4, w.epoch, switch(D2, ConfirmMode::Local)).await;
    assert_eq!(
        w.wait_result(4, "final").await.outcome,
        ResultOutcome::Committed
    );
    w.order(
        5,
        w.epoch,
        Action::Rollback {
            of: order_id(ROLLOUT, 4),
            to: GenerationRef {
                generation: GenerationId(1),
                digest: D1.into(),
            },
        },
    )
    .await;
    let r = w.wait_result(5, "final").await;
    assert_eq!(r.outcome, ResultOutcome::Committed, "{r:?}");
    assert!(w.result(5, "started").await.is_some());
    assert!(agent.calls().contains(&format!("rollback 1 {ROLLOUT}/5")));
    assert_eq!(agent.st().running, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleetd_starts_without_nats_and_reads_its_order_key_once_connected() {
    let mut w = world!("fleetd_starts_without_nats_and_reads_its_order_key_once_connected");
    let agent = Fake::new();
    // The order waits in the key while NATS is down and fleetd starts.
    w.order(1, w.epoch, switch(D2, ConfirmMode::Local)).await;
    w.nats.stop();
    let t = Instant::now();
    let f = tokio::time::timeout(Duration::from_secs(5), w.fleetd(&agent))
        .await
        .expect("fleetd starts without waiting for NATS");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(agent.calls().is_empty(), "{:?}", agent.calls());
    w.nats.restart();
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed);
    w.heartbeat(|hb| hb.orders.last_seq == 1).await;
    assert_eq!(starts(&agent.calls()).len(), 1);
    drop(f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_agent_is_asked_again_until_the_deadline_or_a_cancel() {
    let w = world!("a_busy_agent_is_asked_again_until_the_deadline_or_a_cancel");
    let agent = Fake::new();
    agent.st().busy = 2;
    let _f = w.fleetd(&agent).await;
    w.order(1, w.epoch, switch(D2, ConfirmMode::Local)).await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed, "{fin:?}");
    let calls = starts(&agent.calls());
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(agent.st().ops.len(), 1);
    // Busy past the deadline: refused, nothing started.
    agent.st().busy = 1000;
    let o = Order {
        id: order_id(ROLLOUT, 2),
        host: HOST.into(),
        rollout: ROLLOUT.into(),
        wave: 0,
        seq: 2,
        epoch: w.epoch,
        issued_at: now_ms(),
        deadline_at: now_ms() + 1500,
        action: switch(D1, ConfirmMode::Local),
    };
    w.orders.put(HOST, &o).await.unwrap();
    let r = w.wait_result(2, "final").await;
    assert_eq!(r.outcome, ResultOutcome::Refused, "{r:?}");
    assert!(r.error.contains("busy"), "{r:?}");
    assert!(r.operation.is_none(), "{r:?}");
    assert!(
        r.at >= o.deadline_at && r.at <= o.deadline_at + 1500,
        "{} vs {}",
        r.at,
        o.deadline_at
    );
    assert_eq!(agent.st().ops.len(), 1);
    // An order still waiting for a busy agent is canceled by the next
    // order: it never starts, even once the agent is free.
    w.order(3, w.epoch, switch(D1, ConfirmMode::Local)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.order(
        4,
        w.epoch,
        Action::Cancel {
            of: order_id(ROLLOUT, 3),
        },
    )
    .await;
    let r3 = w.wait_result(3, "final").await;
    assert_eq!(r3.outcome, ResultOutcome::Canceled, "{r3:?}");
    assert!(r3.operation.is_none(), "{r3:?}");
    assert_eq!(
        w.wait_result(4, "final").await.outcome,
        ResultOutcome::Skipped
    );
    agent.st().busy = 0;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.st().ops.len(), 1);
    assert!(w.result(3, "started").await.is_none());
}

// ---------------------------------------------------------------------
// The real windlassd

/// What the real agent says of `request`'s operation, and how it ended.
async fn agent_op(agent: &DbusAgent, request: &str) -> (OpId, OpEnd) {
    let op = agent.operation_by_request(request).await.unwrap().unwrap();
    let mut ev = agent.follow(&op).await.unwrap();
    let t = Instant::now();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), ev.next())
            .await
            .expect("the operation ended within 20 s");
        match e {
            Some(OpEvent::Finished(end)) => return (op, end),
            Some(_) => {}
            None => panic!("the stream ended without the end"),
        }
        assert!(t.elapsed() < Duration::from_secs(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_windlassd_switches_on_an_order_commits_on_the_confirm_and_rolls_back() {
    const NAME: &str =
        "a_real_windlassd_switches_on_an_order_commits_on_the_confirm_and_rolls_back";
    let Some(bin) = support::agent::windlassd(NAME) else {
        return;
    };
    let Some(bus) = support::agent::bus(NAME) else {
        return;
    };
    let w = world!(NAME);
    let tmp = tempfile::tempdir().unwrap();
    let _wd = support::agent::start(&bin, &bus, tmp.path());
    let agent = DbusAgent::connect(&bus.address).await.unwrap();
    // Generation 1 runs; generation 2 is staged.
    support::agent::empty_tree(&tmp.path().join("a"), "a");
    support::agent::empty_tree(&tmp.path().join("b"), "b");
    let g1 = agent.stage(&tmp.path().join("a")).await.unwrap();
    agent
        .switch(g1, Confirm::Auto, None, "setup-1")
        .await
        .unwrap();
    let (_, end) = agent_op(&agent, "setup-1").await;
    assert_eq!(end.result, "committed", "{end:?}");
    let g2 = agent.stage(&tmp.path().join("b")).await.unwrap();
    let gens = agent.generations().await.unwrap();
    let digest = |g: GenerationId| gens.iter().find(|x| x.id == g).unwrap().digest.clone();
    let (d1, d2) = (digest(g1), digest(g2));
    assert!(d2.starts_with("sha256:") && d1 != d2, "{gens:?}");

    let f = Fleetd::start(w.config(), agent.clone()).await.unwrap();
    w.order(1, w.epoch, switch(&d2, ConfirmMode::Observed))
        .await;
    let started = w.wait_result(1, "started").await;
    let awaiting = w.wait_result(1, "awaiting").await;
    assert_eq!(started.from.as_ref().unwrap().digest, d1);
    assert_eq!(started.to.as_ref().unwrap().generation, g2);
    // The heartbeat the coordinator confirms on.
    let hb = w
        .heartbeat(|hb| {
            hb.operation
                .as_ref()
                .is_some_and(|o| o.phase == "waiting-confirm")
        })
        .await;
    let op = hb.operation.as_ref().unwrap();
    assert_eq!(op.request.as_deref(), Some("web-142/1"));
    assert_eq!(Some(&op.id), awaiting.operation.as_ref());
    assert_eq!(hb.running.as_ref().unwrap().digest, d2);
    assert_eq!(hb.platform, "native");
    w.order(
        2,
        w.epoch,
        Action::Confirm {
            of: order_id(ROLLOUT, 1),
        },
    )
    .await;
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.outcome, ResultOutcome::Committed, "{fin:?}");
    assert_eq!(
        w.wait_result(2, "final").await.outcome,
        ResultOutcome::Committed
    );
    let hb = w
        .heartbeat(|hb| {
            hb.state == HostActivity::Idle
                && hb
                    .last
                    .as_ref()
                    .is_some_and(|l| l.request.as_deref() == Some("web-142/1"))
        })
        .await;
    assert_eq!(hb.running.as_ref().unwrap().digest, d2);
    assert_eq!(
        hb.last.as_ref().unwrap().request.as_deref(),
        Some("web-142/1")
    );

    // A restarted fleetd starts nothing: the agent still has one
    // operation for the order.
    f.stop();
    let f = Fleetd::start(w.config(), agent.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = agent.status().await.unwrap();
    assert!(!st.busy, "{st:?}");
    assert_eq!(st.last.unwrap().id, fin.operation.clone().unwrap());

    // The coordinator rolls the host back to its `from`.
    w.order(
        3,
        w.epoch,
        Action::Rollback {
            of: order_id(ROLLOUT, 1),
            to: started.from.clone().unwrap(),
        },
    )
    .await;
    let back = w.wait_result(3, "final").await;
    assert_eq!(back.outcome, ResultOutcome::Committed, "{back:?}");
    assert_eq!(back.kind.as_deref(), Some("rollback"));
    let st = agent.status().await.unwrap();
    assert_eq!(st.running.unwrap().generation, g1);
    let (op3, _) = agent_op(&agent, "web-142/3").await;
    assert_eq!(back.operation, Some(op3));
    drop(f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windlassd_restart_while_waiting_for_the_confirm_is_reported_rolled_back() {
    const NAME: &str = "a_windlassd_restart_while_waiting_for_the_confirm_is_reported_rolled_back";
    let Some(bin) = support::agent::windlassd(NAME) else {
        return;
    };
    let Some(bus) = support::agent::bus(NAME) else {
        return;
    };
    let w = world!(NAME);
    let tmp = tempfile::tempdir().unwrap();
    let wd = support::agent::start(&bin, &bus, tmp.path());
    let agent = DbusAgent::connect(&bus.address).await.unwrap();
    support::agent::empty_tree(&tmp.path().join("a"), "a");
    support::agent::empty_tree(&tmp.path().join("b"), "b");
    let g1 = agent.stage(&tmp.path().join("a")).await.unwrap();
    agent
        .switch(g1, Confirm::Auto, None, "setup-1")
        .await
        .unwrap();
    agent_op(&agent, "setup-1").await;
    let g2 = agent.stage(&tmp.path().join("b")).await.unwrap();
    let d2 = agent
        .generations()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.id == g2)
        .unwrap()
        .digest;
    let _f = Fleetd::start(w.config(), agent.clone()).await.unwrap();
    w.order(1, w.epoch, switch(&d2, ConfirmMode::Observed))
        .await;
    let awaiting = w.wait_result(1, "awaiting").await;
    // windlassd dies and comes back: its recovery rolls the switch back.
    drop(wd);
    let _wd = support::agent::start(&bin, &bus, tmp.path());
    let fin = w.wait_result(1, "final").await;
    assert_eq!(fin.operation, awaiting.operation);
    assert!(
        matches!(
            fin.outcome,
            ResultOutcome::RolledBack | ResultOutcome::Failed
        ),
        "{fin:?}"
    );
    let st = agent.status().await.unwrap();
    assert_eq!(st.running.unwrap().generation, g1, "back on generation 1");
    // The coordinator's confirm now finds nothing waiting: its result
    // says what became of the switch.
    w.order(
        2,
        w.epoch,
        Action::Confirm {
            of: order_id(ROLLOUT, 1),
        },
    )
    .await;
    let c = w.wait_result(2, "final").await;
    assert_eq!(c.outcome, fin.outcome, "{c:?}");
    assert!(c.error.contains("confirm refused"), "{c:?}");
}

// ---------------------------------------------------------------------
// No polling of an absent windlassd (issue 19: 0 wakeups between
// heartbeats). The heartbeat interval is 30 s here, so a heartbeat that
// shows the agent within seconds can only come from an event: windlassd
// taking its bus name, or fleetd's backed-off retry of a bus that was not
// there. (The retry every 5 s fleetd used to have, which subscribed
// without sending a heartbeat, fails both bounds.)

fn slow_heartbeat(w: &World) -> Config {
    let mut c = w.config();
    c.heartbeat_interval = Duration::from_secs(30);
    c
}

/// The heartbeat once fleetd has settled: its start sends one or two
/// (buckets opened, NATS connected); then nothing until the tick at 30 s.
async fn settled(w: &World) -> Heartbeat {
    w.heartbeat(|_| true).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hb = w.heartbeat(|_| true).await;
    assert_eq!(hb.agent, "", "no windlassd yet: {hb:?}");
    hb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleetd_reports_windlassd_as_soon_as_it_takes_its_bus_name_and_when_it_leaves() {
    const NAME: &str =
        "fleetd_reports_windlassd_as_soon_as_it_takes_its_bus_name_and_when_it_leaves";
    let Some(bin) = support::agent::windlassd(NAME) else {
        return;
    };
    let Some(bus) = support::agent::bus(NAME) else {
        return;
    };
    let w = world!(NAME);
    let tmp = tempfile::tempdir().unwrap();
    let _f = Fleetd::start(slow_heartbeat(&w), DbusAgent::new(&bus.address))
        .await
        .unwrap();
    // The bus is there, windlassd is not.
    let first = settled(&w).await;

    let wd = support::agent::start(&bin, &bus, tmp.path());
    let t = Instant::now();
    let hb = w.heartbeat(|hb| !hb.agent.is_empty()).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "windlassd took its name {took:?} before a heartbeat showed it (interval 30 s)"
    );
    assert_eq!(hb.platform, "native", "{hb:?}");
    assert!(hb.n > first.n);

    // windlassd goes away: the next heartbeat says so, at once too.
    drop(wd);
    let t = Instant::now();
    let hb = w.heartbeat(|hb| hb.agent.is_empty()).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "windlassd left its bus {took:?} before a heartbeat showed it (interval 30 s)"
    );
    assert_eq!(hb.running, None, "{hb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleetd_started_before_the_bus_and_windlassd_reports_windlassd_within_seconds() {
    const NAME: &str =
        "fleetd_started_before_the_bus_and_windlassd_reports_windlassd_within_seconds";
    let Some(bin) = support::agent::windlassd(NAME) else {
        return;
    };
    let w = world!(NAME);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Pointed at a bus socket that does not exist yet.
    let address = support::agent::bus_address_in(dir.path());
    let _f = Fleetd::start(slow_heartbeat(&w), DbusAgent::new(&address))
        .await
        .unwrap();
    let first = settled(&w).await;

    let Some(bus) = support::agent::bus_in(NAME, dir.path()) else {
        return;
    };
    let _wd = support::agent::start(&bin, &bus, tmp.path());
    let t = Instant::now();
    let hb = w.heartbeat(|hb| !hb.agent.is_empty()).await;
    let took = t.elapsed();
    // The bus came up about a second after fleetd's start, which tries
    // again 250 ms, 500 ms, 1 s, 2 s, … after its first failure: the next
    // try is at most a couple of seconds away.
    assert!(
        took < Duration::from_secs(4),
        "windlassd took its name {took:?} before a heartbeat showed it (interval 30 s)"
    );
    assert_eq!(hb.platform, "native", "{hb:?}");
    assert!(hb.n > first.n);
}
