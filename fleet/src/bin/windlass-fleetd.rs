//! `windlass-fleetd`: the fleet's host daemon. It follows this host's
//! order key in NATS and has windlassd carry the orders out over D-Bus
//! (docs/design/fleet.md §4, §6, §7). main only wires.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use windlass_fleet::agent::DbusAgent;
use windlass_fleet::fleetd::{Config, Fleetd};

#[derive(Debug, Parser)]
#[command(
    name = "windlass-fleetd",
    version,
    about = "windlass fleet host daemon"
)]
struct Cli {
    /// This host's id in the fleet (1-63 of a-z 0-9 -); default: the
    /// host name.
    #[arg(long, env = "WINDLASS_FLEET_HOST")]
    host: Option<String>,
    /// The NATS server.
    #[arg(
        long,
        env = "WINDLASS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
    #[command(flatten)]
    auth: windlass_fleet::auth::NatsAuth,
    /// `system`, `session`, or a D-Bus address (windlassd's bus).
    #[arg(long, default_value = "system")]
    bus: String,
    /// fleetd's state directory (state.json, outbox/).
    #[arg(long, default_value = "/var/lib/windlass-fleet")]
    state: PathBuf,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30)]
    heartbeat_interval: u64,
    /// A label of this host, `key=value` (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().split('.').next()?.to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

fn labels(v: &[String]) -> Result<BTreeMap<String, String>, String> {
    v.iter()
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--label {l:?}: expected key=value"))
        })
        .collect()
}

fn main() -> ExitCode {
    // Blocking-pool threads (a D-Bus connect, a name lookup) wait a day
    // before they end instead of 10 s: an ending thread is a wakeup
    // between heartbeats.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("windlass-fleetd: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run())
}

async fn run() -> ExitCode {
    tracing_subscriber_init();
    let cli = Cli::parse();
    let Some(host) = cli.host.clone().or_else(hostname) else {
        eprintln!("windlass-fleetd: no --host given and no host name found");
        return ExitCode::from(2);
    };
    let labels = match labels(&cli.labels) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("windlass-fleetd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.heartbeat_interval == 0 {
        eprintln!("windlass-fleetd: --heartbeat-interval must be at least 1");
        return ExitCode::from(2);
    }
    let mut cfg = Config::new(host, cli.nats.clone(), cli.state.clone());
    cfg.auth = cli.auth.clone();
    cfg.heartbeat_interval = Duration::from_secs(cli.heartbeat_interval);
    cfg.labels = labels;
    if let Err(e) = windlass_fleet::model::check_id("--host", &cfg.host) {
        eprintln!("windlass-fleetd: {e}");
        return ExitCode::from(2);
    }
    // Connected on first use, and again after the bus restarts: fleetd
    // keeps running (and reporting) while windlassd is away.
    let agent = DbusAgent::new(&cli.bus);
    let fleetd = match Fleetd::start(cfg, agent).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("windlass-fleetd: {e:#}");
            return ExitCode::from(1);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("windlass-fleetd: {e}");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Everything that matters is on disk already (state, outbox).
    fleetd.stop();
    ExitCode::SUCCESS
}

/// Log lines to stderr (journald keeps them under the unit), at the
/// level `RUST_LOG` names (error, warn, info, debug; default info).
fn tracing_subscriber_init() {
    let level = match std::env::var("RUST_LOG").unwrap_or_default().as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
