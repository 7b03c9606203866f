//! `windlassd`: the windlass host agent. Exports `io.windlass.Agent1` on
//! D-Bus and runs operations one at a time; see docs/agent.md and
//! docs/operations.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use windlass_agent::dbus::{self, Signals, access::Access, operation::op_path};
use windlass_agent::ops::runner::{Notify, Runner, Silent};
use windlass_agent::ops::{Engine, cutover, sweep};
use windlass_agent::platform::profiles::Exec;
use windlass_agent::platform::{Platform, guix::Guix, native::Native, nixos::Nixos};
use windlass_agent::record::OpId;
use windlass_agent::store::Store;
use windlass_agent::systemd::{AnySystemd, Dbus, NoSystemd};
use windlass_agent::{BUS_NAME, VERSION};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PlatformArg {
    Auto,
    Native,
    Nixos,
    Guix,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum SystemdArg {
    /// systemd over the system bus.
    Dbus,
    /// Touch no unit; every unit counts as active (tests, dry runs).
    None,
}

#[derive(Debug, Parser)]
#[command(
    name = "windlassd",
    version,
    about = "windlass host agent (D-Bus service io.windlass.Agent1)"
)]
struct Args {
    /// `system`, `session`, or a D-Bus address (tests).
    #[arg(long, default_value = "system")]
    bus: String,
    #[arg(long, default_value = "/var/lib/windlass")]
    state_dir: PathBuf,
    #[arg(long, default_value = "/run/windlass")]
    run_dir: PathBuf,
    /// Members of this group may call the mutating methods.
    #[arg(long, default_value = "windlass")]
    group: String,
    #[arg(long, value_enum, default_value = "auto")]
    platform: PlatformArg,
    #[arg(long, value_enum, default_value = "dbus")]
    systemd: SystemdArg,
    /// Resolve operation OP now (the external revert deadline fires this):
    /// ask the running agent to cancel it, or, when no agent runs, roll it
    /// back from its record.
    #[arg(long, value_name = "OP")]
    revert: Option<String>,
    /// A registry (`host[:port]`, as written in image names) that sweeps
    /// speak plain HTTP to. Only for a registry on loopback in tests;
    /// repeatable, or comma-separated in the environment.
    #[arg(
        long,
        value_name = "HOST",
        env = "WINDLASS_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    insecure_registry: Vec<String>,
    /// Tries per registry request in sweeps.
    #[arg(long, default_value = "3", hide = true)]
    registry_attempts: u32,
    /// Write a diagnostics bundle for committed operations too (by
    /// default only for those that did not commit; a committed one's is
    /// collected when asked for, without its hook output and timeline).
    #[arg(long, env = "WINDLASS_BUNDLE_COMMITTED")]
    bundle_committed: bool,
    /// The user whose Podman runs the apps' containers, and so their
    /// lifecycle hooks (default: `oci-container` on Guix System, where
    /// oci-service-type runs rootless Podman; root elsewhere).
    #[arg(long, value_name = "USER")]
    hook_user: Option<String>,
    /// Check that this binary can run here, then exit.
    #[arg(long)]
    self_test: bool,
    /// Cutover targets, one `<name>.toml` each.
    #[arg(long, default_value = "/etc/windlass/targets")]
    targets: PathBuf,
    /// Extra trusted root certificate(s) for cutover downloads (PEM);
    /// repeatable.
    #[arg(long, value_name = "PEM")]
    extra_ca: Vec<PathBuf>,
    /// Drift detection: `restore` follows each app's policy (report, or
    /// restore on its own), `report` never restores on its own, `off`
    /// watches nothing.
    #[arg(long, value_enum, default_value = "restore")]
    drift: DriftArg,
    /// The root the systemd admin directories are under, for drift
    /// (tests use a temporary root).
    #[arg(long, default_value = "/", hide = true)]
    drift_root: PathBuf,
    /// Quiet time after a file event before drift is scanned.
    #[arg(long, default_value = "250", hide = true)]
    drift_debounce_ms: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum DriftArg {
    Off,
    Report,
    Restore,
}

/// The HTTPS client for cutover downloads, trusting `--extra-ca` too.
fn http_client(args: &Args) -> anyhow::Result<windlass_net::reqwest::Client> {
    use anyhow::Context as _;
    let mut roots = Vec::new();
    for p in &args.extra_ca {
        roots.push(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
    }
    Ok(windlass_net::client(&windlass_net::ClientOptions {
        extra_roots_pem: roots,
        ..Default::default()
    })?)
}

/// What this binary needs to run: a writable state directory, its HTTPS
/// client (and certificates), readable target files.
fn self_test(args: &Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&args.state_dir)
        .and_then(|_| tempfile_in(&args.state_dir))
        .with_context(|| format!("state directory {}", args.state_dir.display()))?;
    http_client(args).context("the HTTPS client")?;
    if let Ok(entries) = std::fs::read_dir(&args.targets) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(t) = name.strip_suffix(".toml") {
                windlass_agent::targets::load(&args.targets, t)?;
            }
        }
    }
    Ok(())
}

/// windlass's own events at INFO and above (not its libraries' debug
/// chatter), to the journal when started by systemd, else to stderr.
fn init_logging() {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    let ours = || {
        filter_fn(|m| {
            let l = *m.level();
            l == tracing::Level::ERROR
                || l == tracing::Level::WARN
                || (l == tracing::Level::INFO && m.target().starts_with("windlass"))
        })
    };
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| {
            tracing_journald::layer()
                .ok()
                .map(|l| l.with_field_prefix(None))
        })
        .flatten();
    match journald {
        Some(j) => tracing_subscriber::registry()
            .with(j.with_filter(ours()))
            .init(),
        None => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_filter(ours()),
            )
            .init(),
    }
}

async fn connect(bus: &str) -> zbus::Result<zbus::connection::Builder<'static>> {
    Ok(match bus {
        "system" => zbus::connection::Builder::system()?,
        "session" => zbus::connection::Builder::session()?,
        addr => zbus::connection::Builder::address(addr)?,
    })
}

/// Holds the state directory for this process (one agent per host).
fn lock_state(dir: &std::path::Path, wait: bool) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir)?;
    let f = std::fs::File::create(dir.join("agent.lock"))?;
    let flags = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), flags) } == 0 {
        Ok(Some(f))
    } else {
        Ok(None)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // `windlassd --run-as USER -- COMMAND…` (how a hook runs as the user
    // owning the containers): nothing else of the agent runs.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("--run-as") {
        let (user, rest) = match (raw.get(2), raw.get(3).map(String::as_str)) {
            (Some(u), Some("--")) => (u.clone(), raw[4..].to_vec()),
            _ => {
                eprintln!("usage: windlassd --run-as USER -- COMMAND [ARG…]");
                return ExitCode::from(2);
            }
        };
        eprintln!(
            "windlassd: {}",
            windlass_agent::runas::exec_as(&user, &rest)
        );
        return ExitCode::from(126);
    }
    let args = Args::parse();
    init_logging();
    if args.self_test {
        return match self_test(&args) {
            Ok(()) => {
                println!("windlassd {VERSION}: self-test ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("windlassd: self-test failed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("windlassd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(format!(".self-test-{}", std::process::id()));
    std::fs::write(&p, b"ok")?;
    std::fs::remove_file(&p)
}

fn detect(arg: PlatformArg) -> PlatformArg {
    match arg {
        PlatformArg::Auto if std::path::Path::new("/etc/NIXOS").exists() => PlatformArg::Nixos,
        PlatformArg::Auto if std::path::Path::new("/var/guix/profiles/system").exists() => {
            PlatformArg::Guix
        }
        PlatformArg::Auto => PlatformArg::Native,
        other => other,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    match detect(args.platform) {
        PlatformArg::Nixos => serve(args, Nixos::new(Box::new(Exec { transient: true }))).await,
        PlatformArg::Guix => serve(args, Guix::new(Box::new(Exec { transient: false }))).await,
        _ => {
            let mut p = Native::new(&args.state_dir, &args.run_dir);
            // Units and Quadlet files of others are looked for on a real
            // host only (with `--systemd none` nothing is installed).
            if args.systemd == SystemdArg::Dbus {
                p.foreign_root = Some("/".into());
            }
            serve(args, p).await
        }
    }
}

/// The operations of this agent: the runner on `platform`, the settings
/// of cutovers and sweeps from the command line.
fn engine<P: Platform>(
    args: &Args,
    platform: P,
    systemd: AnySystemd,
    notify: Arc<dyn Notify>,
) -> anyhow::Result<Engine<P, AnySystemd>> {
    let mut runner = Runner::new(
        Store::new(&args.state_dir),
        platform,
        systemd,
        http_client(args)?,
        notify,
    );
    if args.systemd == SystemdArg::Dbus {
        runner.revert_argv = Some(revert_argv(args)?);
    }
    runner.revert_helper = args.revert.is_some();
    runner.bundles.always = args.bundle_committed;
    runner.hook_user = match (&args.hook_user, detect(args.platform)) {
        (Some(u), _) if u != "root" => Some(u.clone()),
        (Some(_), _) => None,
        (None, PlatformArg::Guix) => Some("oci-container".into()),
        (None, _) => None,
    };
    runner.self_exe = std::env::current_exe()
        .ok()
        .map(|p| p.to_string_lossy().to_string());
    let mut cut = cutover::Settings::new(&args.state_dir, &args.targets);
    cut.revert_helper = args.revert.is_some();
    let sweeps = sweep::SweepConfig {
        insecure_registries: args.insecure_registry.clone(),
        registry_attempts: args.registry_attempts,
    };
    Ok(Engine::new(runner, cut, sweeps))
}

/// What the external revert runs: this binary, `--revert OP` (the id is
/// appended when armed).
fn revert_argv(args: &Args) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe()?.to_string_lossy().to_string();
    Ok(vec![
        exe,
        "--bus".into(),
        args.bus.clone(),
        "--state-dir".into(),
        args.state_dir.to_string_lossy().to_string(),
        "--run-dir".into(),
        args.run_dir.to_string_lossy().to_string(),
        "--platform".into(),
        format!("{:?}", detect(args.platform)).to_lowercase(),
        "--targets".into(),
        args.targets.to_string_lossy().to_string(),
        "--revert".into(),
    ])
}

async fn serve<P: Platform>(args: Args, platform: P) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let systemd = match args.systemd {
        SystemdArg::Dbus => {
            AnySystemd::Dbus(Dbus::system().await.context("connecting to systemd")?)
        }
        SystemdArg::None => AnySystemd::None(NoSystemd::default()),
    };
    if let Some(op) = &args.revert {
        let op: OpId = op.parse()?;
        return revert(&args, &op, platform, systemd).await;
    }

    // A little patience: after a self-upgrade is reverted, the revert
    // process may still hold the lock for a moment.
    let mut lock = lock_state(&args.state_dir, false)?;
    for _ in 0..50 {
        if lock.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        lock = lock_state(&args.state_dir, false)?;
    }
    let _lock =
        lock.with_context(|| format!("another windlassd holds {}", args.state_dir.display()))?;
    let (signals, rx) = Signals::channel();
    let engine = Arc::new(engine(&args, platform, systemd, Arc::new(signals))?);
    let conn = connect(&args.bus)
        .await?
        .build()
        .await
        .context("connecting to the bus")?;
    // Before the agent can be called: a request id already recorded is
    // answered with its operation from the first call on.
    engine.runner.index_requests();
    dbus::export(&conn, engine.clone(), Access::for_group(&args.group)).await?;
    tokio::spawn(dbus::run_signals(conn.clone(), engine.clone(), rx));
    // On the bus first, then recovery: windlassd is a Type=dbus service,
    // and a recovery may re-run a long hook or wait a health gate, longer
    // than systemd waits for a start (it would kill the agent, and the
    // hook with it, again and again). Until recovery ends, new operations
    // are refused as busy; reading methods and Cancel are served.
    engine.runner.set_recovering(true);
    // Waits for the recovery to end before its first scan.
    if args.drift != DriftArg::Off {
        windlass_agent::ops::drift_task::spawn(
            engine.clone(),
            windlass_agent::ops::drift_task::Config {
                root: args.drift_root.clone(),
                quiet: std::time::Duration::from_millis(args.drift_debounce_ms),
                restore: args.drift == DriftArg::Restore,
                ..Default::default()
            },
            None,
        );
    }
    conn.request_name(BUS_NAME)
        .await
        .with_context(|| format!("cannot own {BUS_NAME}"))?;
    for r in engine.recover().await {
        tracing::warn!(
            WINDLASS_OPERATION = r.id.as_str(),
            "resolved after restart: {}",
            r.result.map(|o| o.as_str()).unwrap_or("?")
        );
    }
    // A self-upgrade into this binary commits now that it is on the bus.
    engine.confirm_self_upgrade().await;
    tracing::info!(
        version = VERSION,
        platform = engine.runner.platform.name(),
        "windlassd ready"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("windlassd stopping");
    Ok(())
}

async fn revert<P: Platform>(
    args: &Args,
    op: &OpId,
    platform: P,
    systemd: AnySystemd,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    match lock_state(&args.state_dir, false)? {
        Some(_lock) => {
            // No agent runs: resolve the record ourselves.
            let engine = engine(args, platform, systemd, Arc::new(Silent))?;
            let rec = engine
                .runner
                .store
                .load(op)
                .with_context(|| format!("no operation {op}"))?;
            if rec.finished() {
                println!("operation {op} already finished: {:?}", rec.result);
                return Ok(());
            }
            engine.recover().await;
            let rec = engine.runner.store.load(op)?;
            println!(
                "operation {op}: {}",
                rec.result.map(|o| o.as_str()).unwrap_or("?")
            );
            Ok(())
        }
        None => {
            // The agent runs: ask it to cancel (it rolls back).
            let conn = connect(&args.bus).await?.build().await?;
            let path = op_path(op);
            conn.call_method(
                Some(BUS_NAME),
                windlass_agent::OBJECT_PATH,
                Some("io.windlass.Agent1"),
                "Cancel",
                &(path.as_ref(),),
            )
            .await
            .with_context(|| format!("asking windlassd to cancel {op}"))?;
            println!("asked windlassd to cancel operation {op}");
            Ok(())
        }
    }
}
