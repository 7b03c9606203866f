//! windlass-coordinator: rolls releases across the fleet (the lease
//! holder drives the rollouts; see windlass_fleet::coordinator). Main only
//! wires arguments, logging, the connection and signals.

use std::time::Duration;

use clap::Parser;
use windlass_fleet::coordinator::{Config, Coordinator};

#[derive(Parser, Debug)]
#[command(name = "windlass-coordinator", version, about)]
struct Args {
    /// The NATS server.
    #[arg(
        long,
        env = "WINDLASS_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
    #[command(flatten)]
    auth: windlass_fleet::auth::NatsAuth,
    /// The lease TTL: the lease bucket's max_age ("10s", "1m" or seconds).
    #[arg(long, default_value = "10s", value_parser = parse_ttl)]
    lease_ttl: Duration,
    /// Who holds the lease, for operators (default: <hostname>:<pid>).
    #[arg(long)]
    holder: Option<String>,
    /// A registry (`host[:port]` as in image names) to list over plain
    /// HTTP when a sweep's release is discovered (repeatable; tests).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    windlass_fleet::spec::parse_duration(s)
        .or_else(|| s.parse().ok().map(Duration::from_secs))
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: expected a duration such as 10s, 1m or 10"))
}

fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// windlass's own events at INFO and above, other crates' warnings, to
/// stderr (the journal takes it under systemd).
fn init_logging() {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(filter_fn(|m| {
                    let l = *m.level();
                    l <= tracing::Level::WARN
                        || (l == tracing::Level::INFO && m.target().starts_with("windlass"))
                })),
        )
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    let opts = args.auth.options().await.map_err(anyhow::Error::msg)?;
    let client = opts
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(&args.nats)
        .await?;
    let js = async_nats::jetstream::new(client);
    let mut cfg = Config::new(args.holder.unwrap_or_else(holder), args.lease_ttl);
    cfg.registry.insecure_hosts = args.insecure_registries;
    let cancel = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    Coordinator::new(js, cfg).run(cancel).await
}
