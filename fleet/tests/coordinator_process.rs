//! Two windlass-coordinator processes (built with the `fault-injection`
//! feature): the lease holder runs with
//! `WINDLASS_FLEET_FAULT=stop-before-order-write` and SIGSTOPs itself
//! right after the guard check of its first order write. The other takes
//! over with a larger epoch and fences (it writes h1's order, which the
//! state allocated but the stopped one never wrote). Continued, the
//! stopped one finds its guard expired and ends its term; whatever it
//! still sends is refused (the key holds the new order, so its create
//! fails): no order of its epoch ever reaches a host's key.
//! Simulated hosts (tests/support/simhost.rs).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use support::nats::NatsServer;
use support::simhost::{Opts, SimHost};
use windlass_fleet::buckets::{self, LEASE, LEASE_KEY, ORDERS, ROLLOUTS};
use windlass_fleet::coordinator;
use windlass_fleet::kv::Bucket;
use windlass_fleet::lease::Lease;
use windlass_fleet::model::{ActionKind, Epoch, Order};
use windlass_fleet::wave::{RolloutPhase, RolloutState};

const TTL: Duration = Duration::from_secs(2);
const HEX: &str = "9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coordinator(url: &str, holder: &str, log: &Path, fault: bool) -> Proc {
    let mut c = Command::new(env!("CARGO_BIN_EXE_windlass-coordinator"));
    c.args(["--nats", url, "--lease-ttl", "2s", "--holder", holder])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if fault {
        c.env("WINDLASS_FLEET_FAULT", "stop-before-order-write");
    }
    Proc(c.spawn().unwrap())
}

/// The process state letter of /proc/PID/stat (`T`: stopped).
fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit(')')
        .next()
        .and_then(|r| r.trim().chars().next())
        .unwrap_or('?')
}

async fn wait<T, Fut: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holder(js: &jetstream::Context) -> Option<(String, Epoch)> {
    let b: Bucket<Lease> = Bucket::open(js, LEASE).await.unwrap();
    let l = b.get(LEASE_KEY).await.unwrap()?.value;
    Some((l.holder, l.epoch?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigstopped_coordinator_is_fenced_and_its_late_write_lands_nowhere() {
    let Some(nats) =
        NatsServer::start("a_sigstopped_coordinator_is_fenced_and_its_late_write_lands_nowhere")
    else {
        return;
    };
    let (_c, js) = nats.connect().await;
    let cfg = buckets::Config {
        lease_ttl: TTL,
        ..Default::default()
    };
    buckets::init(&js, &cfg).await.unwrap();
    let hosts: Vec<SimHost> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| SimHost::spawn(&js, h, Opts::default()))
        .collect();
    let hb: Bucket<windlass_fleet::model::Heartbeat> =
        Bucket::open(&js, buckets::HOSTS).await.unwrap();
    wait(10, "heartbeats", || async {
        (hb.keys().await.unwrap().len() == 3).then_some(())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let a_log = dir.path().join("a.log");
    let a = coordinator(&nats.url(), "a", &a_log, true);
    let ea = wait(10, "a leads", || async {
        holder(&js).await.filter(|(h, _)| h == "a").map(|(_, e)| e)
    })
    .await;
    let b = coordinator(&nats.url(), "b", &dir.path().join("b.log"), false);
    let spec = format!(
        "id = \"gen-11\"\n[target.generation]\nnative = {{ digest = \"sha256:{HEX}\", \
         artifact = \"sha256-{HEX}\", artifact_sha256 = \"{HEX}\", size = 1 }}\n\
         [[wave]]\nname = \"canary\"\nhosts = [\"h1\"]\n[[wave]]\nname = \"rest\"\nrest = true\n\
         [policy]\nsoak = \"1s\"\nheartbeat_interval = \"1s\"\nwave_deadline = \"30s\"\nhealth_deadline = \"10s\"\n"
    );
    coordinator::start_rollout_text(&js, "gen-11.toml", &spec)
        .await
        .unwrap();
    wait(10, "a stopped itself", || async {
        (proc_state(a.0.id()) == 'T').then_some(())
    })
    .await;
    let eb = wait(15, "b leads", || async {
        holder(&js).await.filter(|(h, _)| h == "b").map(|(_, e)| e)
    })
    .await;
    assert!(eb > ea, "{eb} after {ea}");
    let states: Bucket<RolloutState> = Bucket::open(&js, ROLLOUTS).await.unwrap();
    let orders: Bucket<Order> = Bucket::open(&js, ORDERS).await.unwrap();
    wait(10, "b fenced the rollout and wrote h1's order", || async {
        let s = states.require("gen-11.state").await.unwrap().value;
        let o = orders.get("h1").await.unwrap()?.value;
        (s.epoch == eb && o.epoch == eb).then_some(())
    })
    .await;
    // a goes on: its write was sent after its guard check.
    let st = Command::new("kill")
        .args(["-CONT", &a.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let s = wait(60, "completed", || async {
        let s = states.require("gen-11.state").await.unwrap().value;
        (s.phase == RolloutPhase::Completed).then_some(s)
    })
    .await;
    assert_eq!(s.epoch, eb);
    for (h, sim) in ["h1", "h2", "h3"].iter().zip(&hosts) {
        for e in orders.history(h).await.unwrap() {
            assert_eq!(e.value.epoch, eb, "{h}: {:?}", e.value);
        }
        let kinds: Vec<ActionKind> = sim.executed().iter().map(|o| o.action.kind()).collect();
        assert_eq!(kinds, [ActionKind::Switch, ActionKind::Confirm], "{h}");
    }
    assert_eq!(holder(&js).await.map(|(h, _)| h).as_deref(), Some("b"));
    let log = std::fs::read_to_string(&a_log).unwrap();
    eprintln!("a's log:\n{log}");
    assert!(
        log.contains("fault injected: stop-before-order-write"),
        "{log}"
    );
    assert!(log.contains(&format!("term {ea} ended")), "{log}");
    drop(b);
}
