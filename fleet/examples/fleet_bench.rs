//! Benchmark of a fleet rollout (docs/design/fleet.md §14; run through
//! `bench/fleet`, which builds the binaries and passes their paths).
//!
//! One nats-server (`-js -m PORT`, so `/varz` counts messages), N fleetd
//! in this process (default 200), each with its own NATS connection and
//! a stand-in for windlassd (bench code, not product: a switch sleeps
//! 200 ms, then waits for a confirm, which commits it), the real
//! `windlass-coordinator` binary in its own process (so its CPU time and
//! peak RSS come from /proc), one rollout in 4 waves (1/20/80/99 hosts by
//! label, soak 2 s, heartbeats every 5 s to keep the run short). Then 60
//! idle seconds for the server's message counters. Then one real
//! `windlass-fleetd` process at a time, idle, in three settings (its bus
//! missing; a private dbus-daemon without windlassd; a real windlassd on
//! it): its RSS, and its context switches between heartbeats (windows
//! between two heartbeats, learnt from a KV watch of its key), which
//! should be none. Prints Markdown tables. `--idle-only` skips the
//! rollout.
//!
//! Usage: fleet_bench NATS_SERVER COORDINATOR_BIN FLEETD_BIN WINDLASSD_BIN [HOSTS] [--idle-only]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use windlass_contract::GenerationId;
use windlass_fleet::agent::{
    AgentApi, AgentError, AgentResult, AgentStatus, Changes, Confirm, Generation, OpEnd, OpEvent,
    OpEvents,
};
use windlass_fleet::buckets::{self, HOSTS, ORDERS, ROLLOUTS};
use windlass_fleet::coordinator;
use windlass_fleet::fleetd::{Config, Fleetd};
use windlass_fleet::kv::Bucket;
use windlass_fleet::model::{Action, CurrentOperation, GenerationRef, Heartbeat, OpId, Order};
use windlass_fleet::wave::{RolloutPhase, RolloutState};

const HEARTBEAT_SEC: u64 = 5;
const IDLE_SEC: u64 = 60;
const WAVES: [(&str, usize); 4] = [("w1", 1), ("w2", 20), ("w3", 80), ("w4", 99)];
const HEX: &str = "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c";

fn digest(g: u64) -> String {
    format!("sha256:{g:064x}")
}

// ---------------------------------------------------------------------
// The stand-in for windlassd: generation 1 runs, 2 is staged.

struct Op {
    request: String,
    to: u64,
    state: watch::Sender<(String, Option<OpEnd>)>,
}

#[derive(Default)]
struct St {
    running: u64,
    ops: BTreeMap<OpId, Op>,
    by_request: HashMap<String, OpId>,
    next: u64,
}

#[derive(Clone)]
struct StandIn {
    st: Arc<Mutex<St>>,
    changes: broadcast::Sender<()>,
}

impl StandIn {
    fn new() -> StandIn {
        StandIn {
            st: Arc::new(Mutex::new(St {
                running: 1,
                ..St::default()
            })),
            changes: broadcast::channel(16).0,
        }
    }

    fn set(&self, op: &str, phase: &str, end: Option<OpEnd>) {
        let mut st = self.st.lock().unwrap();
        let o = &st.ops[op];
        let to = o.to;
        o.state.send_replace((phase.to_string(), end));
        if phase == "waiting-confirm" {
            st.running = to;
        }
        drop(st);
        let _ = self.changes.send(());
    }
}

fn gref(g: u64) -> GenerationRef {
    GenerationRef {
        generation: GenerationId(g),
        digest: digest(g),
    }
}

impl AgentApi for StandIn {
    async fn status(&self) -> AgentResult<AgentStatus> {
        let st = self.st.lock().unwrap();
        let current = st
            .ops
            .iter()
            .find(|(_, o)| o.state.borrow().1.is_none())
            .map(|(id, o)| CurrentOperation {
                id: id.clone(),
                kind: "switch".into(),
                phase: o.state.borrow().0.clone(),
                request: Some(o.request.clone()),
                to: Some(gref(o.to)),
            });
        Ok(AgentStatus {
            version: "bench".into(),
            platform: "native".into(),
            selected: Some(gref(st.running)),
            running: Some(gref(st.running)),
            busy: current.is_some(),
            operation: current,
            last: None,
            releases: BTreeMap::new(),
            apps: BTreeMap::new(),
            drift: Default::default(),
        })
    }

    async fn generations(&self) -> AgentResult<Vec<Generation>> {
        let running = self.st.lock().unwrap().running;
        Ok((1..=2)
            .map(|g| Generation {
                id: GenerationId(g),
                selected: g == running,
                running: g == running,
                digest: digest(g),
            })
            .collect())
    }

    async fn stage(&self, _dir: &Path) -> AgentResult<GenerationId> {
        Err(AgentError::Unsupported("stand-in".into()))
    }

    async fn switch(
        &self,
        generation: GenerationId,
        confirm: Confirm,
        _deadline_sec: Option<u64>,
        request: &str,
    ) -> AgentResult<OpId> {
        let mut st = self.st.lock().unwrap();
        if let Some(op) = st.by_request.get(request) {
            return Ok(op.clone());
        }
        st.next += 1;
        let id = format!("op{}", st.next);
        st.ops.insert(
            id.clone(),
            Op {
                request: request.into(),
                to: generation.0,
                state: watch::channel(("activating".to_string(), None)).0,
            },
        );
        st.by_request.insert(request.into(), id.clone());
        drop(st);
        let _ = self.changes.send(());
        let me = self.clone();
        let op = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if confirm == Confirm::Manual {
                me.set(&op, "waiting-confirm", None);
            } else {
                me.set(&op, "finished", Some(committed()));
            }
        });
        Ok(id)
    }

    async fn confirm(&self, op: &OpId) -> AgentResult<()> {
        let waiting = self
            .st
            .lock()
            .unwrap()
            .ops
            .get(op)
            .is_some_and(|o| o.state.borrow().0 == "waiting-confirm");
        if !waiting {
            return Err(AgentError::Refused(format!("{op} is not waiting")));
        }
        self.set(op, "finished", Some(committed()));
        Ok(())
    }

    async fn cancel(&self, op: &OpId) -> AgentResult<()> {
        Err(AgentError::Refused(format!(
            "{op}: no cancel in the stand-in"
        )))
    }

    async fn rollback(&self, _to: GenerationId, _request: &str) -> AgentResult<OpId> {
        Err(AgentError::Unsupported("stand-in".into()))
    }

    async fn sweep(
        &self,
        _app: &str,
        _release: &str,
        _confirm: Confirm,
        _deadline_sec: Option<u64>,
        _request: &str,
    ) -> AgentResult<OpId> {
        Err(AgentError::Unsupported("stand-in".into()))
    }

    async fn cutover(
        &self,
        _target: &str,
        _version: &str,
        _url: &str,
        _sha256: &str,
        _deadline_sec: Option<u64>,
        _request: &str,
    ) -> AgentResult<OpId> {
        Err(AgentError::Unsupported("stand-in".into()))
    }

    async fn operation_by_request(&self, request: &str) -> AgentResult<Option<OpId>> {
        Ok(self.st.lock().unwrap().by_request.get(request).cloned())
    }

    async fn follow(&self, op: &OpId) -> AgentResult<OpEvents> {
        let rx = self
            .st
            .lock()
            .unwrap()
            .ops
            .get(op)
            .ok_or_else(|| AgentError::NotFound(op.clone()))?
            .state
            .subscribe();
        let s =
            futures_util::stream::unfold((rx, false, false), |(mut rx, first, done)| async move {
                if done || (first && rx.changed().await.is_err()) {
                    return None;
                }
                let (phase, end) = rx.borrow_and_update().clone();
                match end {
                    Some(e) => Some((OpEvent::Finished(e), (rx, true, true))),
                    None => Some((
                        OpEvent::Phase {
                            phase,
                            detail: String::new(),
                        },
                        (rx, true, false),
                    )),
                }
            });
        Ok(Box::pin(s))
    }

    async fn journal(&self, _op: &OpId, _max: usize) -> Vec<String> {
        Vec::new()
    }

    async fn changes(&self) -> AgentResult<Changes> {
        let rx = self.changes.subscribe();
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            loop {
                match rx.recv().await {
                    Ok(()) => return Some(((), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })))
    }
}

fn committed() -> OpEnd {
    OpEnd {
        result: "committed".into(),
        error: String::new(),
    }
}

// ---------------------------------------------------------------------
// Processes

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `/varz`'s (in_msgs, out_msgs).
fn varz(mport: u16) -> (u64, u64) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).unwrap();
    s.write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    (
        v["in_msgs"].as_u64().unwrap(),
        v["out_msgs"].as_u64().unwrap(),
    )
}

/// A `/proc/PID/status` field's number (kB for memory).
fn status_field(pid: u32, task: Option<&str>, field: &str) -> u64 {
    let p = match task {
        Some(t) => format!("/proc/{pid}/task/{t}/status"),
        None => format!("/proc/{pid}/status"),
    };
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Context switches (voluntary, involuntary) summed over every thread.
fn ctxt_switches(pid: u32) -> (u64, u64) {
    let mut v = (0, 0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let t = t.file_name().to_string_lossy().to_string();
        v.0 += status_field(pid, Some(&t), "voluntary_ctxt_switches");
        v.1 += status_field(pid, Some(&t), "nonvoluntary_ctxt_switches");
    }
    v
}

/// utime + stime of a process, seconds.
fn cpu_sec(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[((q * v.len() as f64) as usize).min(v.len() - 1)]
}

// ---------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().collect();
    let idle_only = args.iter().any(|a| a == "--idle-only");
    args.retain(|a| a != "--idle-only");
    // `--idle INTERVAL_SEC WINDOWS`: the real fleetd's heartbeat
    // interval and windows (default 5 s, 4).
    let mut idle = Idle {
        interval_sec: HEARTBEAT_SEC,
        windows: 4,
    };
    if let Some(i) = args.iter().position(|a| a == "--idle") {
        anyhow::ensure!(args.len() > i + 2, "--idle INTERVAL_SEC WINDOWS");
        idle.interval_sec = args[i + 1].parse()?;
        idle.windows = args[i + 2].parse()?;
        anyhow::ensure!(
            idle.interval_sec >= 2 && idle.windows >= 1,
            "--idle: at least 2 s, 1 window"
        );
        args.drain(i..i + 3);
    }
    if args.len() < 5 {
        anyhow::bail!(
            "usage: fleet_bench NATS_SERVER COORDINATOR_BIN FLEETD_BIN WINDLASSD_BIN [HOSTS] [--idle-only] [--idle INTERVAL_SEC WINDOWS]"
        );
    }
    let (nats_bin, coord_bin, fleetd_bin) = (&args[1], &args[2], &args[3]);
    let bins = Bins {
        coordinator: coord_bin.clone(),
        fleetd: fleetd_bin.clone(),
        windlassd: args[4].clone(),
    };
    let n: usize = args.get(5).map_or(Ok(200), |s| s.parse())?;
    let total: usize = WAVES.iter().map(|w| w.1).sum();
    anyhow::ensure!(
        n == total,
        "the waves are 1/20/80/99: HOSTS must be {total}"
    );
    let work = tempfile::tempdir()?;
    let (port, mport) = (free_port(), free_port());
    let _nats = Killed(
        Command::new(nats_bin)
            .args(["-js", "-a", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-m", &mport.to_string()])
            .arg("--store_dir")
            .arg(work.path().join("store"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let url = format!("nats://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(work.path(), &url, mport, &bins, n, idle_only, idle))
}

struct Bins {
    coordinator: String,
    fleetd: String,
    windlassd: String,
}

async fn run(
    work: &Path,
    url: &str,
    mport: u16,
    bins: &Bins,
    n: usize,
    idle_only: bool,
    idle: Idle,
) -> anyhow::Result<()> {
    let client = {
        let t = Instant::now();
        loop {
            match async_nats::connect(url).await {
                Ok(c) => break c,
                Err(e) if t.elapsed() > Duration::from_secs(10) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    let js = async_nats::jetstream::new(client);
    let bcfg = buckets::Config {
        lease_ttl: Duration::from_secs(10),
        ..Default::default()
    };
    buckets::init(&js, &bcfg).await?;
    if !idle_only {
        rollout(work, url, mport, &js, &bins.coordinator, n).await?;
    }
    idle_fleetd(work, url, &js, bins, idle).await
}

/// One rollout over `n` in-process fleetd, then the idle server traffic.
async fn rollout(
    work: &Path,
    url: &str,
    mport: u16,
    js: &async_nats::jetstream::Context,
    coord_bin: &str,
    n: usize,
) -> anyhow::Result<()> {
    let js = js.clone();
    // The hosts.
    let mut fleet = Vec::new();
    let mut i = 0;
    for (wave, count) in WAVES {
        for _ in 0..count {
            i += 1;
            let host = format!("h{i:03}");
            let mut c = Config::new(host.clone(), url, work.join("hosts").join(&host));
            c.heartbeat_interval = Duration::from_secs(HEARTBEAT_SEC);
            c.labels = BTreeMap::from([("wave".into(), wave.into())]);
            fleet.push(Fleetd::start(c, StandIn::new()).await?);
        }
    }
    let hosts: Bucket<Heartbeat> = Bucket::open(&js, HOSTS).await?;
    let t = Instant::now();
    while hosts.keys().await?.len() < n {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "no {n} heartbeats");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The coordinator, its own process.
    let coord = Killed(
        Command::new(coord_bin)
            .args(["--nats", url, "--lease-ttl", "10s", "--holder", "bench:1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("coordinator.log"))?)
            .spawn()?,
    );
    let cpid = coord.0.id();

    // Watch heartbeats and orders for the latency.
    let waiting: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let confirms: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let hosts_kv = js.get_key_value(HOSTS).await?;
    let orders_kv = js.get_key_value(ORDERS).await?;
    let mut hw = hosts_kv.watch(">").await?;
    let mut ow = orders_kv.watch(">").await?;
    let w = waiting.clone();
    let watch_hosts = tokio::spawn(async move {
        while let Some(Ok(e)) = hw.next().await {
            let Ok(hb) = serde_json::from_slice::<Heartbeat>(&e.value) else {
                continue;
            };
            if hb
                .operation
                .as_ref()
                .is_some_and(|o| o.phase == "waiting-confirm")
            {
                w.lock().unwrap().entry(hb.host).or_insert(hb.sent_at);
            }
        }
    });
    let c = confirms.clone();
    let watch_orders = tokio::spawn(async move {
        while let Some(Ok(e)) = ow.next().await {
            let Ok(o) = serde_json::from_slice::<Order>(&e.value) else {
                continue;
            };
            if matches!(o.action, Action::Confirm { .. }) {
                c.lock().unwrap().entry(o.host).or_insert(o.issued_at);
            }
        }
    });

    let mut spec = format!(
        "id = \"bench-1\"\n[target.generation]\nnative = {{ digest = \"{}\", \
         artifact = \"sha256-{HEX}\", artifact_sha256 = \"{HEX}\", size = 1 }}\n",
        digest(2)
    );
    for (wave, _) in WAVES {
        spec += &format!("[[wave]]\nname = \"{wave}\"\nlabels = {{ wave = \"{wave}\" }}\n");
    }
    spec += &format!(
        "[policy]\nsoak = \"2s\"\nheartbeat_interval = \"{HEARTBEAT_SEC}s\"\n\
         wave_deadline = \"120s\"\nhealth_deadline = \"60s\"\non_fail = \"pause\"\n"
    );
    let started = Instant::now();
    coordinator::start_rollout_text(&js, "bench.toml", &spec).await?;
    let states: Bucket<RolloutState> = Bucket::open(&js, ROLLOUTS).await?;
    let phase = loop {
        let s = states.require("bench-1.state").await?.value;
        if !coordinator::is_active(s.phase) {
            break s.phase;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the rollout did not end within 300 s: {:?}",
            s.phase
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rollout_sec = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        phase == RolloutPhase::Completed,
        "the rollout ended {phase:?}"
    );
    let cpu_rollout = cpu_sec(cpid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch_hosts.abort();
    watch_orders.abort();
    drop((hosts_kv, orders_kv));
    let (w, c) = (
        waiting.lock().unwrap().clone(),
        confirms.lock().unwrap().clone(),
    );
    let mut lat: Vec<f64> = c
        .iter()
        .filter_map(|(h, at)| Some(*at as f64 - *w.get(h)? as f64))
        .collect();
    lat.sort_by(f64::total_cmp);
    anyhow::ensure!(!lat.is_empty(), "no confirm seen");

    // Idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (in0, out0) = varz(mport);
    let cpu0 = cpu_sec(cpid);
    tokio::time::sleep(Duration::from_secs(IDLE_SEC)).await;
    let (in1, out1) = varz(mport);
    let cpu_idle = cpu_sec(cpid) - cpu0;
    let per_min = |d: u64| d as f64 / n as f64 * 60.0 / IDLE_SEC as f64;
    let coord_hwm = status_field(cpid, None, "VmHWM");
    let coord_rss = status_field(cpid, None, "VmRSS");
    drop(fleet);
    drop(coord);

    println!(
        "fleet rollout, {n} hosts in fleetd (in process, stand-in agent), waves 1/20/80/99, \
         soak 2 s, heartbeats every {HEARTBEAT_SEC} s\n"
    );
    println!("| measure | value | goal |\n|---|---:|---|");
    println!("| rollout time, start to completed (s) | {rollout_sec:.1} | — |");
    println!(
        "| green heartbeat (`sent_at`) → Confirm order (`issued_at`), p50 / p99 / max (ms), {} hosts | {:.0} / {:.0} / {:.0} | p99 ≤ 1000 |",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
    println!("| coordinator CPU during the rollout, incl. start (s) | {cpu_rollout:.2} | — |");
    println!("| coordinator CPU over {IDLE_SEC} idle s (s) | {cpu_idle:.2} | — |");
    println!(
        "| coordinator peak RSS (VmHWM) / RSS after idle (MB) | {:.1} / {:.1} | — |",
        coord_hwm as f64 / 1024.0,
        coord_rss as f64 / 1024.0
    );
    println!(
        "| NATS messages into the server per host per minute, idle (`/varz` in_msgs, {IDLE_SEC} s, all clients incl. the coordinator) | {:.2} | heartbeat only |",
        per_min(in1 - in0)
    );
    println!(
        "| … the same, scaled to the default 30 s heartbeat | {:.2} | ≤ 2 |",
        per_min(in1 - in0) * HEARTBEAT_SEC as f64 / 30.0
    );
    println!(
        "| NATS messages out of the server per host per minute, idle (`/varz` out_msgs) | {:.2} | — |",
        per_min(out1 - out0)
    );
    Ok(())
}

// ---------------------------------------------------------------------
// One real fleetd, idle

/// Heartbeats skipped before measuring (start-up: the NATS connection's
/// resolver thread lingers 10 s, a missing bus is retried with backoff).
const WARMUP_INTERVALS: u32 = 3;
/// The real fleetd's heartbeat interval and how many intervals are
/// measured per setting.
#[derive(Clone, Copy)]
struct Idle {
    interval_sec: u64,
    windows: u32,
}
/// A window starts this long after a heartbeat reached the server and
/// ends this long before the next one is due.
const MARGIN: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, PartialEq)]
enum Setting {
    /// `--bus` names a socket nothing listens on.
    NoBus,
    /// A private dbus-daemon, windlassd not on it.
    BusOnly,
    /// A real windlassd (`--systemd none --platform native`) on it.
    Windlassd,
}

impl Setting {
    fn host(self) -> &'static str {
        match self {
            Setting::NoBus => "idle-no-bus",
            Setting::BusOnly => "idle-bus-only",
            Setting::Windlassd => "idle-windlassd",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Setting::NoBus => "no bus (socket missing)",
            Setting::BusOnly => "private dbus-daemon, no windlassd",
            Setting::Windlassd => "private dbus-daemon, real windlassd",
        }
    }
}

/// A private system-type dbus-daemon in `dir`; its address.
fn start_bus(dir: &Path) -> anyhow::Result<(Killed, String)> {
    std::fs::create_dir_all(dir)?;
    let sock = dir.join("bus");
    let conf = dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"#,
            sock.display()
        ),
    )?;
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("dbus-daemon: {e}"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )?;
    anyhow::ensure!(line.contains("unix:path="), "dbus-daemon printed {line:?}");
    Ok((Killed(child), line.trim().to_string()))
}

/// windlassd on `address`, its state under `dir`, once it owns its name.
fn start_windlassd(bin: &str, address: &str, dir: &Path) -> anyhow::Result<Killed> {
    let child = Command::new(bin)
        .args([
            "--bus",
            address,
            "--systemd",
            "none",
            "--platform",
            "native",
        ])
        .args(["--group", "nogroup-x"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("windlassd.log"))?)
        .spawn()?;
    let mut wd = Killed(child);
    let t = Instant::now();
    loop {
        let out = Command::new("busctl")
            .args(["--address", address, "status", "io.windlass.Agent1"])
            .output()?;
        if out.status.success() {
            return Ok(wd);
        }
        if let Some(st) = wd.0.try_wait()? {
            anyhow::bail!("windlassd exited: {st}");
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(20),
            "windlassd took no name"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct IdleFigures {
    rss_kb: u64,
    threads: u64,
    /// Context switches over whole intervals (heartbeat to heartbeat).
    per_interval: f64,
    /// Context switches inside the windows between heartbeats.
    between: Vec<u64>,
    /// 50 ms samples with new switches inside the windows (wakeups).
    bursts: Vec<u32>,
    agent: String,
    heartbeats: u64,
}

/// Runs one real fleetd in `setting` and measures it between heartbeats:
/// the bench learns each heartbeat from a KV watch of the fleetd's key
/// (the bench's own reads of /proc wake nobody), then counts the context
/// switches of every fleetd thread from MARGIN after it to MARGIN before
/// the next one is due, also sampled every 50 ms (a sample with new
/// switches is a wakeup).
async fn measure_idle(
    work: &Path,
    url: &str,
    js: &async_nats::jetstream::Context,
    bins: &Bins,
    setting: Setting,
    idle: Idle,
) -> anyhow::Result<IdleFigures> {
    let host = setting.host();
    let dir = work.join(host);
    std::fs::create_dir_all(&dir)?;
    let (bus, address) = match setting {
        Setting::NoBus => (None, format!("unix:path={}", dir.join("no-bus").display())),
        _ => {
            let (b, a) = start_bus(&dir.join("bus"))?;
            (Some(b), a)
        }
    };
    let wd = match setting {
        Setting::Windlassd => Some(start_windlassd(&bins.windlassd, &address, &dir)?),
        _ => None,
    };
    let hosts_kv = js.get_key_value(HOSTS).await?;
    let mut beats = hosts_kv.watch(host).await?;
    let interval = Duration::from_secs(idle.interval_sec);
    let f = Killed(
        Command::new(&bins.fleetd)
            .args(["--host", host, "--nats", url, "--bus", &address])
            .arg("--state")
            .arg(dir.join("fleetd-state"))
            .args(["--heartbeat-interval", &idle.interval_sec.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("fleetd.log"))?)
            .spawn()?,
    );
    let pid = f.0.id();
    let started = Instant::now();
    let mut next_beat = async || -> anyhow::Result<Instant> {
        match tokio::time::timeout(3 * interval, beats.next()).await {
            Ok(Some(Ok(_))) => Ok(Instant::now()),
            Ok(other) => anyhow::bail!("{host}: the heartbeat watch ended: {other:?}"),
            Err(_) => anyhow::bail!("{host}: no heartbeat within 3 intervals"),
        }
    };
    let total = |pid| {
        let c = ctxt_switches(pid);
        c.0 + c.1
    };
    let mut beat = next_beat().await?;
    while started.elapsed() < WARMUP_INTERVALS * interval {
        beat = next_beat().await?;
    }
    let first = total(pid);
    let (mut between, mut bursts) = (Vec::new(), Vec::new());
    for _ in 0..idle.windows {
        tokio::time::sleep_until((beat + MARGIN).into()).await;
        let c0 = total(pid);
        let (mut last, mut b) = (c0, 0u32);
        while beat.elapsed() < interval - MARGIN {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let c = total(pid);
            if c != last {
                b += 1;
                last = c;
            }
        }
        between.push(total(pid).saturating_sub(c0));
        bursts.push(b);
        beat = next_beat().await?;
    }
    let per_interval = total(pid).saturating_sub(first) as f64 / idle.windows as f64;
    let hb = hosts_kv
        .get(host)
        .await?
        .and_then(|b| serde_json::from_slice::<Heartbeat>(&b).ok());
    let figures = IdleFigures {
        rss_kb: status_field(pid, None, "VmRSS"),
        threads: status_field(pid, None, "Threads"),
        per_interval,
        between,
        bursts,
        agent: hb.as_ref().map(|h| h.agent.clone()).unwrap_or_default(),
        heartbeats: hb.map_or(0, |h| h.n + 1),
    };
    drop(f);
    drop(wd);
    drop(bus);
    Ok(figures)
}

/// One real `windlass-fleetd` process, idle, in three settings.
async fn idle_fleetd(
    work: &Path,
    url: &str,
    js: &async_nats::jetstream::Context,
    bins: &Bins,
    idle: Idle,
) -> anyhow::Result<()> {
    let (interval_sec, windows) = (idle.interval_sec, idle.windows);
    println!(
        "\none real `windlass-fleetd`, idle, heartbeat every {interval_sec} s; {windows} windows \
         each from {} ms after a heartbeat reached the server to {} ms before the next was due \
         ({WARMUP_INTERVALS} intervals of warm-up)\n",
        MARGIN.as_millis(),
        MARGIN.as_millis()
    );
    println!(
        "| windlassd's bus | RSS (MB) | threads | context switches per interval | … of them between heartbeats, per window | wakeups between heartbeats, per window | agent in the heartbeat |"
    );
    println!("|---|---:|---:|---:|---|---|---|");
    for setting in [Setting::NoBus, Setting::BusOnly, Setting::Windlassd] {
        let i = measure_idle(work, url, js, bins, setting, idle).await?;
        let list = |v: &[String]| v.join(" / ");
        println!(
            "| {} | {:.1} | {} | {:.1} | {} | {} | {} |",
            setting.describe(),
            i.rss_kb as f64 / 1024.0,
            i.threads,
            i.per_interval,
            list(&i.between.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
            list(&i.bursts.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
            if i.agent.is_empty() {
                "—".to_string()
            } else {
                format!("`{}`", i.agent)
            },
        );
        eprintln!("{}: {} heartbeats sent", setting.host(), i.heartbeats);
        if setting == Setting::Windlassd {
            anyhow::ensure!(!i.agent.is_empty(), "fleetd did not see windlassd");
        }
    }
    Ok(())
}
