//! The operator CLI, the built `windlass-fleet` binary, against a real
//! nats-server: what it prints and how it exits (0 ok, 3 rolled back or
//! aborted, 4 refused, 6 paused). Heartbeats and states are written into
//! the buckets by the test (and by simulated hosts and an in-process
//! coordinator for the end-to-end cases).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use support::nats::NatsServer;
use support::simhost::{self, Health, Opts, SimHost};
use windlass_contract::GenerationId;
use windlass_fleet::buckets::{self, HOSTS, ROLLOUTS};
use windlass_fleet::coordinator::{self, Config, Coordinator};
use windlass_fleet::kv::Bucket;
use windlass_fleet::model::{
    Control, ControlCommand, GenerationRef, Heartbeat, HostActivity, LastOperation,
};
use windlass_fleet::wave::{RolloutPhase, RolloutState};

const HEX: &str = "9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f";

macro_rules! server {
    ($name:expr) => {
        match NatsServer::start($name) {
            Some(s) => s,
            None => return,
        }
    };
}

/// Runs the CLI with `--nats` pointing at `nats`.
async fn cli(nats: &NatsServer, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_windlass-fleet"))
        .arg("--nats")
        .arg(nats.url())
        .args(args)
        .env_remove("WINDLASS_NATS_URL")
        .env_remove("WINDLASS_NATS_CREDS")
        .env("USER", "alice")
        .output()
        .await
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, want: i32) {
    assert_eq!(code(o), want, "stdout:\n{}\nstderr:\n{}", out(o), err(o));
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    out(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

async fn init(nats: &NatsServer) -> jetstream::Context {
    let o = cli(nats, &["init", "--lease-ttl", "2s"]).await;
    assert_exit(&o, 0);
    nats.connect().await.1
}

fn heartbeat(host: &str, labels: &[(&str, &str)]) -> Heartbeat {
    let r = GenerationRef {
        generation: GenerationId(7),
        digest: format!("sha256:{HEX}"),
    };
    Heartbeat {
        host: host.into(),
        n: 1,
        sent_at: 0,
        fleetd: "0.0.0-test".into(),
        agent: "0.0.0-test".into(),
        platform: "native".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        selected: Some(r.clone()),
        running: Some(r),
        state: HostActivity::Idle,
        operation: None,
        last: Some(LastOperation {
            id: "001x000".into(),
            kind: "sweep".into(),
            result: "skipped".into(),
            request: None,
            finished_at: 0,
        }),
        releases: BTreeMap::new(),
        apps: BTreeMap::new(),
        drift: Default::default(),
        orders: Default::default(),
        outbox: 0,
    }
}

async fn put_heartbeat(js: &jetstream::Context, hb: &Heartbeat) {
    let b: Bucket<Heartbeat> = Bucket::open(js, HOSTS).await.unwrap();
    b.put(&hb.host, hb).await.unwrap();
}

fn spec(id: &str, hosts: &[&str], on_fail: &str) -> String {
    let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "id = \"{id}\"\n[target.generation]\nnative = {{ digest = \"sha256:{HEX}\", \
         artifact = \"sha256-{HEX}\", artifact_sha256 = \"{HEX}\", size = 1 }}\n\
         [[wave]]\nname = \"canary\"\nhosts = [{}]\n\
         [policy]\nsoak = \"1s\"\nheartbeat_interval = \"1s\"\nwave_deadline = \"30s\"\n\
         health_deadline = \"10s\"\non_fail = \"{on_fail}\"\n",
        list.join(", ")
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

async fn state(js: &jetstream::Context, id: &str) -> (RolloutState, u64) {
    let b: Bucket<RolloutState> = Bucket::open(js, ROLLOUTS).await.unwrap();
    let e = b.require(&format!("{id}.state")).await.unwrap();
    (e.value, e.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_twice_is_fine_and_a_mismatching_bucket_is_refused() {
    let nats = server!("init_twice_is_fine_and_a_mismatching_bucket_is_refused");
    let o = cli(&nats, &["init", "--lease-ttl", "2s"]).await;
    assert_exit(&o, 0);
    assert!(out(&o).contains("windlass-lease"), "{}", out(&o));
    let o = cli(&nats, &["--json", "init", "--lease-ttl", "2s"]).await;
    assert_exit(&o, 0);
    let v = &json_lines(&o)[0];
    assert_eq!(v["lease_ttl_ms"], 2000);
    assert_eq!(v["buckets"].as_array().unwrap().len(), 5);
    // Another TTL: the lease bucket's max_age differs.
    let o = cli(&nats, &["init", "--lease-ttl", "10s"]).await;
    assert_exit(&o, 4);
    assert!(err(&o).contains("windlass-lease"), "{}", err(&o));
    assert!(err(&o).contains("max_age"), "{}", err(&o));
    // The buckets still verify with the first configuration.
    let (_c, js) = nats.connect().await;
    let cfg = buckets::Config {
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    };
    buckets::verify(&js, &cfg).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_a_missing_server_exits_1() {
    let nats = server!("usage_errors_exit_2_and_a_missing_server_exits_1");
    assert_exit(&cli(&nats, &["frobnicate"]).await, 2);
    assert_exit(&cli(&nats, &["rollout", "show", "Not.An.Id"]).await, 2);
    assert_exit(&cli(&nats, &["hosts", "--label", "nokey"]).await, 2);
    assert_exit(&cli(&nats, &["--help"]).await, 0);
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_windlass-fleet"))
        .args(["--nats", "nats://127.0.0.1:1", "status"])
        .output()
        .await
        .unwrap();
    assert_exit(&o, 1);
    // Buckets missing: an error that says what to do.
    for args in [
        &["status"][..],
        &["hosts"],
        &["rollout", "pause", "web-1"],
        &["rollout", "show", "web-1"],
    ] {
        let o = cli(&nats, args).await;
        assert_exit(&o, 1);
        assert!(
            err(&o).contains("windlass-fleet init"),
            "{args:?}: {}",
            err(&o)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rollout_file_prints_positions_and_is_refused() {
    let nats = server!("a_bad_rollout_file_prints_positions_and_is_refused");
    let _js = init(&nats).await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.toml",
        "id = \"web-1\"\n[policy]\nmax_faild = 2\n",
    );
    let o = cli(&nats, &["rollout", "start", &f, "--no-wait"]).await;
    assert_exit(&o, 4);
    let e = err(&o);
    assert!(e.contains(&format!("{f}:3:1:")), "{e}");
    assert!(e.contains("max_faild"), "{e}");
    // A host nobody has heard of: refused as well.
    let f = write(
        dir.path(),
        "ghost.toml",
        &spec("web-2", &["ghost"], "pause"),
    );
    let o = cli(&nats, &["rollout", "start", &f, "--no-wait"]).await;
    assert_exit(&o, 4);
    assert!(err(&o).contains("ghost"), "{}", err(&o));
    // No such file: an error, not a refusal.
    let o = cli(&nats, &["rollout", "start", "/nonexistent.toml"]).await;
    assert_exit(&o, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_lists_heartbeats_and_an_old_one_as_unavailable() {
    let nats = server!("hosts_lists_heartbeats_and_an_old_one_as_unavailable");
    let js = init(&nats).await;
    put_heartbeat(&js, &heartbeat("old-01", &[("site", "south")])).await;
    // 3 intervals of 1 s pass for old-01 only.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let mut busy = heartbeat("kiosk-01", &[("site", "north")]);
    busy.state = HostActivity::Busy;
    busy.operation = Some(windlass_fleet::model::CurrentOperation {
        id: "002x000".into(),
        kind: "switch".into(),
        phase: "waiting-confirm".into(),
        request: Some("web-1/3".into()),
        to: None,
    });
    put_heartbeat(&js, &busy).await;

    let o = cli(&nats, &["hosts", "--heartbeat-interval", "1s"]).await;
    assert_exit(&o, 0);
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("HOST"), "{text}");
    let kiosk = lines.iter().find(|l| l.starts_with("kiosk-01")).unwrap();
    assert!(kiosk.contains("7 sha256:9f9f9f9f9f9f "), "{kiosk}");
    assert!(kiosk.contains("busy"), "{kiosk}");
    assert!(kiosk.contains("switch waiting-confirm"), "{kiosk}");
    assert!(kiosk.contains("sweep skipped"), "{kiosk}");
    let old = lines.iter().find(|l| l.starts_with("old-01")).unwrap();
    assert!(old.contains("unavailable"), "{old}");
    assert!(old.trim_end().ends_with('s'), "an age: {old}");

    let o = cli(&nats, &["hosts", "--label", "site=north"]).await;
    assert_exit(&o, 0);
    assert!(out(&o).contains("kiosk-01") && !out(&o).contains("old-01"));

    let o = cli(&nats, &["--json", "hosts", "--heartbeat-interval", "1s"]).await;
    assert_exit(&o, 0);
    let v = &json_lines(&o)[0];
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let by: BTreeMap<&str, &serde_json::Value> = hosts
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h))
        .collect();
    assert_eq!(by["old-01"]["available"], false);
    assert!(by["old-01"]["age_ms"].as_u64().unwrap() >= 3000);
    assert_eq!(by["kiosk-01"]["available"], true);
    assert_eq!(by["kiosk-01"]["heartbeat"]["state"], "busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_show_status_and_controls() {
    let nats = server!("start_show_status_and_controls");
    let js = init(&nats).await;
    put_heartbeat(&js, &heartbeat("kiosk-01", &[])).await;
    put_heartbeat(&js, &heartbeat("kiosk-02", &[])).await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "web.toml",
        &spec("web-1", &["kiosk-01", "kiosk-02"], "pause"),
    );
    let o = cli(&nats, &["rollout", "start", &f, "--no-wait"]).await;
    assert_exit(&o, 0);
    assert!(out(&o).contains("rollout web-1: running"), "{}", out(&o));
    let (s, _) = state(&js, "web-1").await;
    assert_eq!(s.phase, RolloutPhase::Running);

    // The same id again: refused; a host in an active rollout: refused.
    let o = cli(&nats, &["rollout", "start", &f, "--no-wait"]).await;
    assert_exit(&o, 4);
    let g = write(
        dir.path(),
        "web2.toml",
        &spec("web-2", &["kiosk-02"], "pause"),
    );
    let o = cli(&nats, &["rollout", "start", &g, "--no-wait"]).await;
    assert_exit(&o, 4);
    assert!(err(&o).contains("kiosk-02"), "{}", err(&o));

    let o = cli(&nats, &["rollout", "show", "web-1"]).await;
    assert_exit(&o, 0);
    let text = out(&o);
    assert!(text.contains("wave 1 canary: pending"), "{text}");
    assert!(text.contains("  kiosk-01  pending"), "{text}");
    assert!(text.contains("  kiosk-02  pending"), "{text}");

    let o = cli(&nats, &["--json", "rollout", "show", "web-1"]).await;
    assert_exit(&o, 0);
    let v = &json_lines(&o)[0];
    let back: RolloutState = serde_json::from_value(v["rollout"].clone()).unwrap();
    assert_eq!(back, s);

    let o = cli(&nats, &["status"]).await;
    assert_exit(&o, 0);
    assert!(out(&o).contains("none holds the lease"), "{}", out(&o));
    assert!(out(&o).contains("web-1"), "{}", out(&o));
    let o = cli(&nats, &["--json", "status"]).await;
    assert_exit(&o, 0);
    let v = &json_lines(&o)[0];
    assert!(v["lease"].is_null());
    assert_eq!(v["rollouts"][0]["id"], "web-1");
    assert_eq!(v["rollouts"][0]["phase"], "running");

    let controls: Bucket<Control> = Bucket::open(&js, ROLLOUTS).await.unwrap();
    for (cmd, want) in [
        ("pause", ControlCommand::Pause),
        ("resume", ControlCommand::Resume),
        ("abort", ControlCommand::Abort),
    ] {
        let o = cli(&nats, &["rollout", cmd, "web-1"]).await;
        assert_exit(&o, 0);
        let c = controls.require("web-1.control").await.unwrap().value;
        assert_eq!(c.command, want);
        assert!(c.by.starts_with("alice@"), "{}", c.by);
    }
    let o = cli(&nats, &["--json", "rollout", "pause", "web-1"]).await;
    assert_exit(&o, 0);
    assert_eq!(json_lines(&o)[0]["command"], "pause");
    // No such rollout: refused.
    let o = cli(&nats, &["rollout", "pause", "web-9"]).await;
    assert_exit(&o, 4);
    let o = cli(&nats, &["rollout", "show", "web-9"]).await;
    assert_exit(&o, 4);
}

/// `show --follow` re-prints on each state change and exits by the final
/// phase: 6 paused, 3 aborted, 0 completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_follow_exits_by_the_phase_it_reaches() {
    let nats = server!("show_follow_exits_by_the_phase_it_reaches");
    let js = init(&nats).await;
    put_heartbeat(&js, &heartbeat("kiosk-01", &[])).await;
    coordinator::start_rollout_text(&js, "t.toml", &spec("web-1", &["kiosk-01"], "pause"))
        .await
        .unwrap();
    let states: Bucket<RolloutState> = Bucket::open(&js, ROLLOUTS).await.unwrap();
    for (phase, want) in [
        (RolloutPhase::Paused, 6),
        (RolloutPhase::Aborted, 3),
        (RolloutPhase::Completed, 0),
    ] {
        // Back to running, then follow and change the phase under it.
        let (mut s, rev) = state(&js, "web-1").await;
        s.phase = RolloutPhase::Running;
        let rev = states.update("web-1.state", &s, rev).await.unwrap();
        let url = nats.url();
        let follower = tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_windlass-fleet"))
                .args([
                    "--nats", &url, "--json", "rollout", "show", "web-1", "--follow",
                ])
                .output()
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!follower.is_finished(), "follow ended while running");
        s.phase = phase;
        s.reason = format!("test: {phase}");
        states.update("web-1.state", &s, rev).await.unwrap();
        let o = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follow did not end after the change")
            .unwrap();
        assert_exit(&o, want);
        let lines = json_lines(&o);
        assert_eq!(lines.len(), 2, "{}", out(&o));
        assert_eq!(lines[0]["rollout"]["phase"], "running");
        assert_eq!(lines[1]["rollout"]["phase"], phase.as_str());
    }
}

/// End to end: simulated hosts and a coordinator; `rollout start`
/// follows to completed (exit 0), and a red wave with on_fail = pause
/// ends the follow with 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_start_follows_a_real_coordinator_to_the_end() {
    let nats = server!("rollout_start_follows_a_real_coordinator_to_the_end");
    let js = init(&nats).await;
    let _good = SimHost::spawn(&js, "good-01", Opts::default());
    let _bad = SimHost::spawn(
        &js,
        "bad-01",
        Opts {
            health: Health::Unhealthy,
            ..Opts::default()
        },
    );
    let hb: Bucket<Heartbeat> = Bucket::open(&js, HOSTS).await.unwrap();
    for _ in 0..100 {
        if hb.keys().await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let c = Coordinator::new(js.clone(), Config::new("test:1", Duration::from_secs(2)));
    let task = tokio::spawn(c.run(async move {
        let _ = stop_rx.await;
    }));

    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "good.toml",
        &spec("good-1", &["good-01"], "pause"),
    );
    let o = tokio::time::timeout(
        Duration::from_secs(30),
        cli(&nats, &["rollout", "start", &f]),
    )
    .await
    .expect("rollout start did not end");
    assert_exit(&o, 0);
    let text = out(&o);
    assert!(text.contains("rollout good-1: completed"), "{text}");
    assert!(text.contains("result: good-01"), "{text}");
    assert_eq!(_good.running().digest, format!("sha256:{HEX}"));

    let f = write(dir.path(), "bad.toml", &spec("bad-1", &["bad-01"], "pause"));
    let o = tokio::time::timeout(
        Duration::from_secs(30),
        cli(&nats, &["rollout", "start", &f]),
    )
    .await
    .expect("rollout start did not end");
    assert_exit(&o, 6);
    assert!(out(&o).contains("rollout bad-1: paused"), "{}", out(&o));
    assert_eq!(_bad.running(), simhost::original("bad-01"));

    let o = cli(&nats, &["status"]).await;
    assert_exit(&o, 0);
    assert!(out(&o).contains("coordinator: test:1 epoch"), "{}", out(&o));
    let _ = stop_tx.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_prints_a_hosts_block_without_a_server() {
    let run = |host: &'static str| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_windlass-fleet"))
            .args(["--nats", "nats://127.0.0.1:1", "permissions", host])
            .output()
            .await
            .unwrap()
    };
    let o = run("kiosk-01").await;
    assert_exit(&o, 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        windlass_fleet::permissions::host_block("kiosk-01").unwrap()
    );
    assert_exit(&run("a.b").await, 2);
}
