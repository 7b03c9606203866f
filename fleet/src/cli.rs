//! `windlass-fleet`, the operator CLI (docs/design/fleet.md §10; also
//! reached as `windlassctl fleet …`). The binary only calls [`main`].
//!
//! Exit codes, as windlassctl's where they overlap: 0 done (a rollout
//! completed, a command succeeded), 1 any other error, 2 usage, 3 a
//! rollout rolled back or aborted, 4 refused (invalid rollout file,
//! conflict, a host busy in another rollout, buckets configured
//! otherwise, rollout not found, a followed rollout the coordinator
//! refused: a sweep with no newer release), 6 a rollout paused (it needs
//! a person).
//!
//! `--follow` (and `rollout start` without `--no-wait`) is driven by two
//! KV watches, `windlass-rollouts/<id>.state` and
//! `windlass-results/*.<id>.*.*`: every event re-reads the state and
//! re-prints it when it changed, and a result prints one line. The state
//! is also re-read every 10 s, in case a watch missed something while
//! the connection was away. It stops at completed, aborted, rolled back
//! (exit 0 or 3), paused (exit 6) or refused (exit 4).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::json;

use crate::buckets::{self, HOSTS, LEASE, LEASE_KEY, ORDERS, RESULTS, ROLLOUTS, RolloutKey};
use crate::coordinator::{self, Buckets, StartError};
use crate::kv::{Bucket, KvError};
use crate::model::{ControlCommand, GenerationRef, HostResult, check_id};
use crate::wave::{RolloutPhase, RolloutState};

pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ROLLED_BACK: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const PAUSED: u8 = 6;
}

#[derive(Debug, Parser)]
#[command(
    name = "windlass-fleet",
    version,
    about = "Operate windlass fleet rollouts (buckets, hosts, rollouts) over NATS"
)]
pub struct Cli {
    /// The NATS server.
    #[arg(
        long,
        global = true,
        env = "WINDLASS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
    #[command(flatten)]
    pub auth: crate::auth::NatsAuth,
    /// Machine-readable output: one JSON object per line (per update
    /// when following).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the fleet's buckets, or check that they are configured as
    /// windlass needs (admin credentials). Refused (exit 4) when one
    /// exists with another configuration.
    Init {
        /// The coordinator lease TTL (the lease bucket's max_age).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        lease_ttl: Duration,
        /// Replicas of every bucket (1 on a single server).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// The lease holder and its epoch, and the active rollouts.
    Status,
    /// The hosts' heartbeats; a host not heard from in 3 intervals is
    /// `unavailable`.
    Hosts {
        /// Only hosts with this label (repeatable; all must match).
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// The hosts' heartbeat interval (fleetd's --heartbeat-interval).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        heartbeat_interval: Duration,
    },
    /// Rollouts: start, pause, resume, abort, show.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// Print the nats-server `permissions` block of HOST's fleetd user
    /// (its heartbeat, its results, its order key, the lease; nothing
    /// else). Needs no server.
    Permissions { host: String },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Validate a rollout file, resolve its hosts and start it; then
    /// follow it as `show --follow` does.
    Start {
        file: PathBuf,
        /// Print the first state and return.
        #[arg(long)]
        no_wait: bool,
    },
    /// Pause a rollout after the orders in flight.
    Pause { id: String },
    /// Resume a paused rollout.
    Resume { id: String },
    /// Abort a rollout: the hosts it moved roll back.
    Abort { id: String },
    /// A rollout's waves and hosts (phase, seq, operation, from, error).
    Show {
        id: String,
        /// Re-print on every change until the rollout ends or pauses.
        #[arg(long)]
        follow: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::spec::parse_duration(s)
        .or_else(|| s.parse().ok().map(Duration::from_secs))
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: expected a duration such as 10s, 1m or 10"))
}

/// An exit code and what to print to stderr (nothing when empty).
type Failure = (u8, String);
type Outcome = Result<u8, Failure>;

fn fail(code: u8, msg: impl std::fmt::Display) -> Failure {
    (code, msg.to_string())
}

fn kv_fail(e: KvError) -> Failure {
    let code = match &e {
        // A bucket is missing.
        KvError::NotFound { key, .. } if key.is_empty() => {
            return fail(exit::ERROR, format!("{e} (run `windlass-fleet init`)"));
        }
        KvError::Conflict { .. } | KvError::AlreadyExists { .. } | KvError::NotFound { .. } => {
            exit::REFUSED
        }
        KvError::InvalidKey { .. } => exit::USAGE,
        _ => exit::ERROR,
    };
    (code, e.to_string())
}

/// Parses the arguments, runs, and returns the exit code.
pub async fn main() -> u8 {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err((code, msg)) => {
            if !msg.is_empty() {
                eprintln!("windlass-fleet: {msg}");
            }
            code
        }
    }
}

async fn connect(cli: &Cli) -> Result<jetstream::Context, Failure> {
    let opts = cli.auth.options().await.map_err(|e| fail(exit::ERROR, e))?;
    let client = opts
        .name("windlass-fleet")
        .connection_timeout(Duration::from_secs(5))
        .connect(cli.nats.as_str())
        .await
        .map_err(|e| fail(exit::ERROR, format!("NATS {}: {e}", cli.nats)))?;
    Ok(jetstream::new(client))
}

pub async fn run(cli: Cli) -> Outcome {
    // Usage errors before connecting.
    match &cli.cmd {
        Cmd::Rollout(
            RolloutCmd::Pause { id }
            | RolloutCmd::Resume { id }
            | RolloutCmd::Abort { id }
            | RolloutCmd::Show { id, .. },
        ) => check_id("rollout", id).map_err(|e| fail(exit::USAGE, e))?,
        Cmd::Hosts { labels, .. } => {
            parse_labels(labels).map_err(|e| fail(exit::USAGE, e))?;
        }
        Cmd::Permissions { host } => {
            let block = crate::permissions::host_block(host).map_err(|e| fail(exit::USAGE, e))?;
            print!("{block}");
            return Ok(exit::OK);
        }
        _ => {}
    }
    let js = connect(&cli).await?;
    let json = cli.json;
    match &cli.cmd {
        Cmd::Init {
            lease_ttl,
            replicas,
        } => init(&js, *lease_ttl, *replicas, json).await,
        Cmd::Status => status(&js, json).await,
        // Printed before connecting.
        Cmd::Permissions { .. } => Ok(exit::OK),
        Cmd::Hosts {
            labels,
            heartbeat_interval,
        } => {
            let labels = parse_labels(labels).map_err(|e| fail(exit::USAGE, e))?;
            hosts(&js, &labels, *heartbeat_interval, json).await
        }
        Cmd::Rollout(RolloutCmd::Start { file, no_wait }) => start(&js, file, *no_wait, json).await,
        Cmd::Rollout(RolloutCmd::Pause { id }) => {
            control(&js, id, ControlCommand::Pause, json).await
        }
        Cmd::Rollout(RolloutCmd::Resume { id }) => {
            control(&js, id, ControlCommand::Resume, json).await
        }
        Cmd::Rollout(RolloutCmd::Abort { id }) => {
            control(&js, id, ControlCommand::Abort, json).await
        }
        Cmd::Rollout(RolloutCmd::Show { id, follow }) => {
            if *follow {
                self::follow(&js, id, json).await
            } else {
                let (state, _) = read_state(&js, id).await?;
                print_state(&state, json);
                Ok(exit::OK)
            }
        }
    }
}

fn parse_labels(v: &[String]) -> Result<BTreeMap<String, String>, String> {
    v.iter()
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--label {l:?}: expected key=value"))
        })
        .collect()
}

async fn init(
    js: &jetstream::Context,
    lease_ttl: Duration,
    replicas: usize,
    json: bool,
) -> Outcome {
    let cfg = buckets::Config {
        lease_ttl,
        replicas,
    };
    buckets::init(js, &cfg).await.map_err(|e| match e {
        buckets::InitError::Mismatch { .. } => fail(exit::REFUSED, e),
        e => fail(exit::ERROR, e),
    })?;
    let names = [LEASE, HOSTS, ROLLOUTS, ORDERS, RESULTS];
    if json {
        println!(
            "{}",
            json!({"buckets": names, "lease_ttl_ms": lease_ttl.as_millis() as u64, "replicas": replicas})
        );
    } else {
        println!(
            "buckets ready: {} (lease TTL {}, {replicas} replica{})",
            names.join(", "),
            age(lease_ttl),
            if replicas == 1 { "" } else { "s" }
        );
    }
    Ok(exit::OK)
}

async fn open(js: &jetstream::Context) -> Result<Buckets, Failure> {
    Buckets::open(js).await.map_err(kv_fail)
}

async fn status(js: &jetstream::Context, json: bool) -> Outcome {
    let b = open(js).await?;
    let lease = b.lease.get(LEASE_KEY).await.map_err(kv_fail)?;
    let mut active = Vec::new();
    for k in b.states.keys().await.map_err(kv_fail)? {
        if !matches!(RolloutKey::parse(&k), Ok(RolloutKey::State(_))) {
            continue;
        }
        match b.states.get(&k).await {
            Ok(Some(e)) if coordinator::is_active(e.value.phase) => active.push(e.value),
            Ok(_) => {}
            Err(e @ KvError::Decode { .. }) => eprintln!("windlass-fleet: ignored: {e}"),
            Err(e) => return Err(kv_fail(e)),
        }
    }
    let now = now_ms();
    if json {
        let rollouts: Vec<_> = active
            .iter()
            .map(|s| {
                json!({"id": s.id, "phase": s.phase, "wave": s.wave,
                       "waves": s.waves.len(), "reason": s.reason, "updated_at": s.updated_at})
            })
            .collect();
        let lease = lease.map(|e| e.value);
        println!("{}", json!({"lease": lease, "rollouts": rollouts}));
        return Ok(exit::OK);
    }
    match lease {
        Some(e) => {
            let l = e.value;
            let epoch = l.epoch.map_or("-".to_string(), |e| e.to_string());
            println!(
                "coordinator: {} epoch {epoch} (renewed {} ago, TTL {}, version {})",
                l.holder,
                age_ms(now.saturating_sub(l.renewed_at)),
                age_ms(l.ttl_ms),
                l.version
            );
        }
        None => println!("coordinator: none holds the lease"),
    }
    if active.is_empty() {
        println!("no active rollouts");
    } else {
        let mut t = Table::new(&["ROLLOUT", "PHASE", "WAVE", "UPDATED", "REASON"]);
        for s in &active {
            t.row(vec![
                s.id.clone(),
                s.phase.to_string(),
                wave_label(s),
                format!("{} ago", age_ms(now.saturating_sub(s.updated_at))),
                s.reason.clone(),
            ]);
        }
        t.print();
    }
    Ok(exit::OK)
}

fn wave_label(s: &RolloutState) -> String {
    match s.waves.get(s.wave) {
        Some(w) => format!("{}/{} {}", s.wave + 1, s.waves.len(), w.name),
        None => format!("{}/{}", s.wave + 1, s.waves.len()),
    }
}

async fn hosts(
    js: &jetstream::Context,
    labels: &BTreeMap<String, String>,
    interval: Duration,
    json: bool,
) -> Outcome {
    let b = open(js).await?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for k in b.hosts.keys().await.map_err(kv_fail)? {
        let e = match b.hosts.get(&k).await {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e @ KvError::Decode { .. }) => {
                eprintln!("windlass-fleet: ignored: {e}");
                continue;
            }
            Err(e) => return Err(kv_fail(e)),
        };
        if !labels.iter().all(|(k, v)| e.value.labels.get(k) == Some(v)) {
            continue;
        }
        // The server's time of the put, against our clock: not the
        // host's clock.
        let age = now.duration_since(e.created).unwrap_or_default();
        rows.push((e.value, age));
    }
    let available = |age: Duration| age <= interval * 3;
    if json {
        let hosts: Vec<_> = rows
            .iter()
            .map(|(h, age)| {
                json!({"host": h.host, "available": available(*age),
                       "age_ms": age.as_millis() as u64, "heartbeat": h})
            })
            .collect();
        println!("{}", json!({"hosts": hosts}));
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no hosts");
        return Ok(exit::OK);
    }
    let mut t = Table::new(&[
        "HOST",
        "PLATFORM",
        "RUNNING",
        "STATE",
        "OPERATION",
        "LAST",
        "AGE",
    ]);
    for (h, a) in &rows {
        let state = if available(*a) {
            h.state.to_string()
        } else {
            "unavailable".to_string()
        };
        t.row(vec![
            h.host.clone(),
            h.platform.clone(),
            h.running.as_ref().map_or("-".into(), short_ref),
            state,
            h.operation
                .as_ref()
                .map_or("-".into(), |o| format!("{} {}", o.kind, o.phase)),
            h.last
                .as_ref()
                .map_or("-".into(), |l| format!("{} {}", l.kind, l.result)),
            age(*a),
        ]);
    }
    t.print();
    Ok(exit::OK)
}

/// `7 sha256:9f9f9f9f9f9f` (a digest cut to 12 characters after its
/// algorithm).
fn short_ref(r: &GenerationRef) -> String {
    let d = &r.digest;
    let short = match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => d.chars().take(24).collect(),
    };
    format!("{} {short}", r.generation)
}

fn start_fail(e: StartError) -> Failure {
    match e {
        // One file:line:col line per problem.
        StartError::Spec(errs) => fail(exit::REFUSED, errs),
        StartError::Select(e) => fail(exit::REFUSED, e),
        StartError::Refused(m) => fail(exit::REFUSED, m),
        e @ StartError::Exists(_) => fail(exit::REFUSED, e),
        StartError::Kv(e) => kv_fail(e),
        e @ StartError::Read { .. } => fail(exit::ERROR, e),
    }
}

async fn start(
    js: &jetstream::Context,
    file: &std::path::Path,
    no_wait: bool,
    json: bool,
) -> Outcome {
    let state = coordinator::start_rollout(js, file)
        .await
        .map_err(start_fail)?;
    if no_wait {
        print_state(&state, json);
        return Ok(exit::OK);
    }
    follow(js, &state.id, json).await
}

fn by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

async fn control(
    js: &jetstream::Context,
    id: &str,
    command: ControlCommand,
    json: bool,
) -> Outcome {
    let by = by();
    let revision = coordinator::control(js, id, command, &by)
        .await
        .map_err(|e| {
            if matches!(&e, KvError::NotFound { key, .. } if !key.is_empty()) {
                fail(
                    exit::REFUSED,
                    format!("rollout {id:?}: no such rollout ({e})"),
                )
            } else {
                kv_fail(e)
            }
        })?;
    if json {
        println!(
            "{}",
            json!({"rollout": id, "command": command, "by": by, "revision": revision})
        );
    } else {
        println!("{command} of {id} requested by {by}; the coordinator carries it out");
    }
    Ok(exit::OK)
}

async fn read_state(js: &jetstream::Context, id: &str) -> Result<(RolloutState, u64), Failure> {
    let b: Bucket<RolloutState> = Bucket::open(js, ROLLOUTS).await.map_err(kv_fail)?;
    let key = RolloutKey::State(id.to_string())
        .build()
        .map_err(|e| fail(exit::USAGE, e))?;
    match b.get(&key).await.map_err(kv_fail)? {
        Some(e) => Ok((e.value, e.revision)),
        None => Err(fail(
            exit::REFUSED,
            format!("rollout {id:?}: no such rollout"),
        )),
    }
}

/// The exit code of a rollout that ended or needs a person.
fn phase_exit(p: RolloutPhase) -> Option<u8> {
    match p {
        RolloutPhase::Completed => Some(exit::OK),
        RolloutPhase::Aborted | RolloutPhase::RolledBack => Some(exit::ROLLED_BACK),
        RolloutPhase::Paused => Some(exit::PAUSED),
        RolloutPhase::Refused => Some(exit::REFUSED),
        RolloutPhase::Running | RolloutPhase::RollingBack => None,
    }
}

enum Wake {
    State,
    Result(Box<HostResult>),
    Tick,
    Ended(String),
}

async fn follow(js: &jetstream::Context, id: &str, json: bool) -> Outcome {
    let states: Bucket<RolloutState> = Bucket::open(js, ROLLOUTS).await.map_err(kv_fail)?;
    let results: Bucket<HostResult> = Bucket::open(js, RESULTS).await.map_err(kv_fail)?;
    let key = RolloutKey::State(id.to_string())
        .build()
        .map_err(|e| fail(exit::USAGE, e))?;
    // Watch first, then read: nothing between the two is missed.
    let mut sw = states.watch(&key).await.map_err(kv_fail)?;
    let mut rw = results
        .watch(&format!("*.{id}.*.*"))
        .await
        .map_err(kv_fail)?;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<u64> = None;
    let mut wake = Wake::State;
    loop {
        match wake {
            Wake::State | Wake::Tick => {
                let (s, rev) = read_state(js, id).await?;
                if last != Some(rev) {
                    last = Some(rev);
                    print_state(&s, json);
                }
                if let Some(code) = phase_exit(s.phase) {
                    return Ok(code);
                }
            }
            Wake::Result(r) => print_result(&r, json),
            Wake::Ended(why) => return Err(fail(exit::ERROR, why)),
        }
        wake = tokio::select! {
            c = sw.next() => match c {
                Some(Ok(_)) => Wake::State,
                // A state this version cannot read: re-reading says so.
                Some(Err(e @ KvError::Decode { .. })) => Wake::Ended(e.to_string()),
                Some(Err(e)) => Wake::Ended(format!("watch of {key}: {e}")),
                None => Wake::Ended(format!("watch of {key} ended")),
            },
            c = rw.next() => match c {
                Some(Ok(crate::kv::Change::Put(e))) => Wake::Result(Box::new(e.value)),
                Some(Ok(_)) | Some(Err(KvError::Decode { .. })) => Wake::Tick,
                Some(Err(e)) => Wake::Ended(format!("watch of {RESULTS}: {e}")),
                None => Wake::Ended(format!("watch of {RESULTS} ended")),
            },
            _ = tick.tick() => Wake::Tick,
        };
    }
}

fn print_result(r: &HostResult, json: bool) {
    if json {
        println!("{}", json!({"result": r}));
        return;
    }
    let mut line = format!("  result: {} seq {} {}", r.host, r.seq, r.outcome);
    if let Some(k) = &r.kind {
        line += &format!(" ({k})");
    }
    if !r.error.is_empty() {
        line += &format!(": {}", r.error);
    }
    println!("{line}");
}

fn print_state(s: &RolloutState, json: bool) {
    if json {
        println!("{}", json!({"rollout": s}));
        return;
    }
    let now = now_ms();
    println!(
        "rollout {}: {}, wave {}, epoch {}, started {} ago, updated {} ago",
        s.id,
        s.phase,
        wave_label(s),
        s.epoch,
        age_ms(now.saturating_sub(s.started_at)),
        age_ms(now.saturating_sub(s.updated_at)),
    );
    if !s.reason.is_empty() {
        println!("reason: {}", s.reason);
    }
    if let Some(r) = &s.release {
        println!("release: {r}");
    }
    if let Some(c) = &s.last_control {
        println!("last control: {} by {}", c.command, c.by);
    }
    if s.canonical_recorded {
        println!("canonical release recorded");
    }
    for (i, w) in s.waves.iter().enumerate() {
        let mut head = format!("wave {} {}: {}", i + 1, w.name, w.phase);
        if !w.reason.is_empty() {
            head += &format!(" ({})", w.reason);
        }
        println!("{head}");
        let mut t = Table::new(&["  HOST", "PHASE", "SEQ", "OP", "FROM", "ERROR"]);
        for (h, p) in &w.hosts {
            t.row(vec![
                format!("  {h}"),
                p.phase.to_string(),
                p.seq.map_or("-".into(), |s| s.to_string()),
                p.op.clone().unwrap_or_else(|| "-".into()),
                p.from.as_ref().map_or("-".into(), short_ref),
                p.error.clone(),
            ]);
        }
        t.print();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn age_ms(ms: u64) -> String {
    age(Duration::from_millis(ms))
}

/// `850ms`, `12s`, `5m3s`, `2h10m`, `3d4h`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// Left-aligned columns, two spaces apart; no trailing blanks.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            rows: vec![head.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    fn print(&self) {
        let n = self.rows[0].len();
        let w: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                line += c;
                if i + 1 < n {
                    line += &" ".repeat(w[i] - c.chars().count() + 2);
                }
            }
            println!("{}", line.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(Duration::from_millis(850)), "850ms");
        assert_eq!(age(Duration::from_secs(12)), "12s");
        assert_eq!(age(Duration::from_secs(303)), "5m3s");
        assert_eq!(age(Duration::from_secs(7800)), "2h10m");
        assert_eq!(age(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d4h");
    }

    #[test]
    fn refs_are_cut_short() {
        let r = GenerationRef {
            generation: windlass_contract::GenerationId(7),
            digest: format!("sha256:{}", "9f".repeat(32)),
        };
        assert_eq!(short_ref(&r), "7 sha256:9f9f9f9f9f9f");
    }

    #[test]
    fn phases_map_to_exit_codes() {
        assert_eq!(phase_exit(RolloutPhase::Completed), Some(0));
        assert_eq!(phase_exit(RolloutPhase::Aborted), Some(3));
        assert_eq!(phase_exit(RolloutPhase::RolledBack), Some(3));
        assert_eq!(phase_exit(RolloutPhase::Paused), Some(6));
        assert_eq!(phase_exit(RolloutPhase::Refused), Some(4));
        assert_eq!(phase_exit(RolloutPhase::Running), None);
        assert_eq!(phase_exit(RolloutPhase::RollingBack), None);
    }

    #[test]
    fn labels_need_a_key() {
        assert!(parse_labels(&["site=north".into()]).is_ok());
        assert!(parse_labels(&["=north".into()]).is_err());
        assert!(parse_labels(&["north".into()]).is_err());
    }
}
