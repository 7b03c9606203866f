//! `windlassctl`: drives windlassd over D-Bus. Mutating commands print
//! the operation's phases live and exit with its outcome: 0 committed,
//! 3 rolled back (or canceled), 4 refused (access denied, busy, invalid
//! argument, not found), 1 any other error or failure, 2 usage.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use windlass_agent::exit;
use zbus::zvariant::{OwnedObjectPath, Value};

#[derive(Debug, Parser)]
#[command(
    name = "windlassctl",
    version,
    about = "Drive the windlass host agent (windlassd)"
)]
struct Cli {
    /// `system`, `session`, or a D-Bus address.
    #[arg(long, global = true, default_value = "system")]
    bus: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Platform, generations, apps and the operation in flight.
    Status,
    /// Every generation, with the selected and the running one.
    Generations,
    /// Import a generator output tree as a generation (native platform).
    /// The directory is opened by windlassctl and passed to the agent, so
    /// any directory the caller can read works (also under /home or /tmp).
    Stage { path: std::path::PathBuf },
    /// Switch to a generation; commit once healthy, else roll back.
    Switch {
        generation: String,
        /// `manual`: commit only on `windlassctl confirm`.
        #[arg(long, default_value = "auto")]
        confirm: String,
        /// Seconds the health gate may take (default: the generation's).
        #[arg(long)]
        deadline: Option<u64>,
        /// Take over units whose files windlass does not own (a
        /// hand-written unit or Quadlet file of an app's name): the files
        /// are set aside and put back if the switch does not commit.
        #[arg(long)]
        take_over: bool,
        /// A request id (1-128 of A-Z a-z 0-9 . _ : / -): a second call
        /// with the same one starts nothing and follows the operation
        /// started for it.
        #[arg(long = "request", value_name = "ID")]
        request: Option<String>,
        /// Print the operation path and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Roll back to the previous committed generation, or to GENERATION.
    Rollback {
        generation: Option<String>,
        /// A request id (1-128 of A-Z a-z 0-9 . _ : / -): a second call
        /// with the same one starts nothing and follows the operation
        /// started for it.
        #[arg(long = "request", value_name = "ID")]
        request: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Move a cutover target to VERSION, downloaded from URL and verified
    /// against SHA256; commit once healthy, else swap back.
    Cutover {
        target: String,
        version: String,
        url: String,
        sha256: String,
        /// Seconds the target may take to be active and healthy (default:
        /// the target's).
        #[arg(long)]
        deadline: Option<u64>,
        /// A request id (1-128 of A-Z a-z 0-9 . _ : / -): a second call
        /// with the same one starts nothing and follows the operation
        /// started for it.
        #[arg(long = "request", value_name = "ID")]
        request: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// Confirm an operation started with --confirm manual.
    Confirm { operation: String },
    /// Cancel an operation in flight (it rolls back).
    Cancel { operation: String },
    /// Move apps to their newest good release (what the sweep timer runs).
    Sweep {
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        /// Report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --app: move to exactly this release tag, not the newest.
        #[arg(long, requires = "app")]
        release: Option<String>,
        /// `manual`: its switch commits only on `windlassctl confirm` of
        /// the sweep.
        #[arg(long, default_value = "auto")]
        confirm: String,
        /// A request id (1-128 of A-Z a-z 0-9 . _ : / -): a second call
        /// with the same one starts nothing and follows the operation
        /// started for it.
        #[arg(long = "request", value_name = "ID")]
        request: Option<String>,
        /// Print the operation path and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Follow an operation until it finishes.
    Watch { operation: String },
    /// Save an operation's diagnostics bundle (a zstd-compressed tar of
    /// its record, the changed units' state and journals, the containers'
    /// inspect output with health logs, hook output, the health
    /// timeline); one is collected now for an operation that committed.
    Bundle {
        operation: String,
        /// Where to write it (`-` for standard output); default
        /// `windlass-bundle-<operation>.tar.zst` here.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Drift: what differs between the host and the running generation
    /// (hand-edited or removed files, drop-ins, masks, units not loaded,
    /// containers on another image). Without a subcommand: the last
    /// report. Exits 5 when there is drift and `--check` was given.
    Drift {
        #[command(subcommand)]
        cmd: Option<DriftCmd>,
        /// Exit 5 when drift is found.
        #[arg(long, global = true)]
        check: bool,
    },
    /// Fleet rollouts: runs `windlass-fleet ARGS…` (from beside
    /// windlassctl, else from PATH); see `windlassctl fleet --help`.
    #[command(disable_help_flag = true)]
    Fleet {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print shell completions.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page.
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
enum DriftCmd {
    /// Scan everything now (what the drift-scan timer runs) and print
    /// the report.
    Scan,
    /// Put the running generation back: rewrite changed or removed
    /// files from the generation, set aside drop-ins, masks and
    /// overrides, reload, restart the affected units, health gate (also
    /// for apps whose policy is to report only).
    Restore {
        /// Only this app's drift.
        #[arg(long)]
        app: Option<String>,
        /// Print the operation path and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

#[zbus::proxy(
    interface = "io.windlass.Agent1",
    default_service = "io.windlass.Agent1",
    default_path = "/io/windlass/Agent1"
)]
trait Agent {
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    fn status(&self) -> zbus::Result<String>;
    fn list_generations(&self) -> zbus::Result<String>;
    fn stage(&self, path: &str) -> zbus::Result<String>;
    fn stage_fd(&self, dir: zbus::zvariant::Fd<'_>) -> zbus::Result<String>;
    fn switch(
        &self,
        generation: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn rollback(
        &self,
        generation: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn sweep(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn scan_drift(&self) -> zbus::Result<String>;
    fn restore(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn cutover(
        &self,
        target: &str,
        version: &str,
        url: &str,
        sha256: &str,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn confirm(&self, operation: &zbus::zvariant::ObjectPath<'_>) -> zbus::Result<()>;
    fn cancel(&self, operation: &zbus::zvariant::ObjectPath<'_>) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "io.windlass.Operation1",
    default_service = "io.windlass.Agent1"
)]
trait Operation {
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn results(&self) -> zbus::Result<String>;
    /// The kept journal lines (authorised callers only).
    fn journal(&self) -> zbus::Result<Vec<String>>;
    /// The diagnostics bundle, as a descriptor to read (authorised
    /// callers only).
    fn bundle(&self) -> zbus::Result<zbus::zvariant::OwnedFd>;
    #[zbus(signal)]
    fn phase_changed(&self, phase: String, detail: String) -> zbus::Result<()>;
    #[zbus(signal)]
    fn finished(&self, result: String, error: String) -> zbus::Result<()>;
}

fn op_path(op: &str) -> Result<OwnedObjectPath, String> {
    let p = if op.starts_with('/') {
        op.to_string()
    } else {
        format!("{}/{op}", windlass_agent::OPERATION_PREFIX)
    };
    OwnedObjectPath::try_from(p).map_err(|e| format!("{op}: not an operation: {e}"))
}

fn refused(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::MethodError(name, _, _) => matches!(
            name.as_str(),
            "io.windlass.Error.AccessDenied"
                | "io.windlass.Error.Busy"
                | "io.windlass.Error.InvalidArgument"
                | "io.windlass.Error.NotFound"
                | "io.windlass.Error.NotSupported"
                | "io.windlass.Error.VerificationFailed"
                | "org.freedesktop.DBus.Error.AccessDenied"
        ),
        _ => false,
    }
}

fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            format!("{}: {}", name.as_str(), msg.as_deref().unwrap_or(""))
        }
        other => other.to_string(),
    }
}

async fn connect(bus: &str) -> zbus::Result<zbus::Connection> {
    match bus {
        "system" => zbus::Connection::system().await,
        "session" => zbus::Connection::session().await,
        addr => zbus::connection::Builder::address(addr)?.build().await,
    }
}

/// Follows an operation; returns its exit code.
async fn follow(
    conn: &zbus::Connection,
    signals: &mut zbus::MessageStream,
    path: OwnedObjectPath,
    json: bool,
) -> zbus::Result<u8> {
    let (result, mut error) = wait(conn, signals, path.clone(), json).await?;
    // The journal lines of the unit to blame, when the agent kept some
    // and lets this caller read them.
    if result != "committed" {
        let op = OperationProxy::builder(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .path(path.clone())?
            .build()
            .await?;
        if let Ok(lines) = op.journal().await
            && !lines.is_empty()
        {
            error.push('\n');
            error.push_str(&lines.join("\n"));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"operation": path.as_str(), "result": result, "error": error})
        );
    } else {
        println!("{result}");
        if !error.is_empty() {
            eprintln!("{error}");
        }
    }
    Ok(code_of(&result))
}

fn code_of(result: &str) -> u8 {
    match result {
        "committed" => exit::COMMITTED,
        "rolled-back" | "canceled" => exit::ROLLED_BACK,
        "skipped" => exit::COMMITTED,
        _ => exit::ERROR,
    }
}

/// Waits for an operation's end, showing its phases on stderr unless
/// `quiet`; returns (result, error).
/// Every operation's signals, subscribed to before a mutating call, so
/// that no phase an operation passes before the call returns is missed.
async fn operation_signals(conn: &zbus::Connection) -> zbus::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("io.windlass.Operation1")?
        .path_namespace(windlass_agent::OPERATION_PREFIX)?
        .build();
    zbus::MessageStream::for_match_rule(rule, conn, Some(4096)).await
}

/// Waits for an operation's end, showing its phases on stderr unless
/// `quiet`; returns (result, error).
async fn wait(
    conn: &zbus::Connection,
    signals: &mut zbus::MessageStream,
    path: OwnedObjectPath,
    quiet: bool,
) -> zbus::Result<(String, String)> {
    // Not cached: the agent announces Result and Error in two
    // PropertiesChanged signals, so a cache can hold the new Result with
    // the old (empty) Error; each read here is the record as it is.
    let op = OperationProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .path(path.clone())?
        .build()
        .await?;
    if !quiet {
        eprintln!("operation {}", path.as_str());
    }
    loop {
        tokio::select! {
            // Signals first: they tell the phases in order, then the end.
            biased;
            Some(m) = signals.next() => {
                let Ok(m) = m else { continue };
                let h = m.header();
                if h.path().map(|p| p.as_str()) != Some(path.as_str()) {
                    continue;
                }
                match h.member().map(|x| x.as_str()) {
                    Some("PhaseChanged") if !quiet => {
                        let (phase, detail): (String, String) = m.body().deserialize()?;
                        if detail.is_empty() {
                            eprintln!("  {phase}");
                        } else {
                            eprintln!("  {phase}: {detail}");
                        }
                    }
                    Some("Finished") => {
                        return m.body().deserialize::<(String, String)>();
                    }
                    _ => {}
                }
            }
            // An operation that finished before we looked (watch), or a
            // signal lost: its properties tell.
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                let r = op.result().await?;
                if !r.is_empty() {
                    // The record is finished; the agent announces the end
                    // once its revert timers are gone: wait a moment for
                    // that, so the caller finds the host settled.
                    let settle = async {
                        while let Some(Ok(m)) = signals.next().await {
                            let h = m.header();
                            if h.path().map(|p| p.as_str()) == Some(path.as_str())
                                && h.member().map(|x| x.as_str()) == Some("Finished")
                            {
                                return;
                            }
                        }
                    };
                    // (An operation that ended long ago: the agent is idle.)
                    let busy = match AgentProxy::builder(conn)
                        .cache_properties(zbus::proxy::CacheProperties::No)
                        .build()
                        .await
                    {
                        Ok(a) => a.state().await.map(|s| s == "busy").unwrap_or(false),
                        Err(_) => false,
                    };
                    if busy {
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(5), settle).await;
                    }
                    return Ok((r, op.error().await?));
                }
            }
        }
    }
}

/// Follows a sweep, then prints one line per app (`--json`: the results
/// log's JSON lines).
async fn follow_sweep(
    conn: &zbus::Connection,
    signals: &mut zbus::MessageStream,
    path: OwnedObjectPath,
    json: bool,
) -> zbus::Result<u8> {
    let (result, error) = wait(conn, signals, path.clone(), json).await?;
    let op = OperationProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .path(path)?
        .build()
        .await?;
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&op.results().await?).unwrap_or_default();
    for r in &results {
        if json {
            println!("{r}");
        } else {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            let to = match r["to"].as_str() {
                Some(t) => format!(" → {t}"),
                None => String::new(),
            };
            println!(
                "{}: {}{to}: {} ({})",
                s("app"),
                s("from"),
                s("result"),
                s("reason")
            );
        }
    }
    if !json {
        println!("{result}");
        if !error.is_empty() {
            eprintln!("{error}");
        }
    }
    Ok(code_of(&result))
}

/// Stages the tree at `path`: opened here, with the caller's access and
/// in the caller's view of the file system, and passed to the agent as a
/// descriptor (StageFd). An agent without StageFd gets the path (Stage).
async fn stage(agent: &AgentProxy<'_>, path: &std::path::Path) -> Result<String, (u8, String)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |e: zbus::Error| {
        let code = if refused(&e) {
            exit::REFUSED
        } else {
            exit::ERROR
        };
        (code, describe(&e))
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| (exit::USAGE, format!("{}: {e}", path.display())))?;
    match agent.stage_fd(zbus::zvariant::Fd::from(&dir)).await {
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" =>
        {
            let abs = std::path::absolute(path)
                .map_err(|e| (exit::USAGE, format!("{}: {e}", path.display())))?;
            agent.stage(&abs.to_string_lossy()).await.map_err(err)
        }
        r => r.map_err(err),
    }
}

/// `windlassctl bundle`: the operation's bundle, copied from the
/// descriptor the agent returns to `output` (created 0600: it holds logs).
async fn save_bundle(
    conn: &zbus::Connection,
    operation: &str,
    output: &Option<std::path::PathBuf>,
) -> Outcome {
    use std::io::Write;
    let path = op_path(operation).map_err(|e| (exit::USAGE, e))?;
    let id = path.as_str().rsplit('/').next().unwrap_or("op").to_string();
    let proxy = OperationProxy::builder(conn)
        .path(path)
        .map_err(err)?
        .build()
        .await
        .map_err(err)?;
    let fd: std::os::fd::OwnedFd = proxy.bundle().await.map_err(err)?.into();
    let mut src = std::fs::File::from(fd);
    let io = |what: &str, e: std::io::Error| (exit::ERROR, format!("{what}: {e}"));
    match output.as_deref() {
        Some(p) if p == std::path::Path::new("-") => {
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut src, &mut out).map_err(|e| io("standard output", e))?;
            out.flush().map_err(|e| io("standard output", e))?;
        }
        other => {
            use std::os::unix::fs::OpenOptionsExt;
            let dest = other
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| format!("windlass-bundle-{id}.tar.zst").into());
            let shown = dest.display().to_string();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| io(&shown, e))?;
            std::io::copy(&mut src, &mut f).map_err(|e| io(&shown, e))?;
            f.sync_all().map_err(|e| io(&shown, e))?;
            eprintln!("{shown}");
        }
    }
    Ok(exit::COMMITTED)
}

/// A failed call as windlassctl's exit code and message.
fn err(e: zbus::Error) -> (u8, String) {
    let code = if refused(&e) {
        exit::REFUSED
    } else {
        exit::ERROR
    };
    (code, describe(&e))
}

type Outcome = Result<u8, (u8, String)>;

/// `a{sv}` options, by name.
type Options<'a> = HashMap<&'static str, Value<'a>>;

/// A connection to the agent, subscribed to every operation's signals
/// before any call (so no early phase is missed).
struct Session<'a> {
    conn: zbus::Connection,
    signals: zbus::MessageStream,
    agent: AgentProxy<'a>,
    json: bool,
}

impl Session<'_> {
    async fn open(bus: &str, json: bool) -> Result<Self, (u8, String)> {
        let conn = connect(bus).await.map_err(err)?;
        let signals = operation_signals(&conn).await.map_err(err)?;
        let agent = AgentProxy::new(&conn).await.map_err(err)?;
        Ok(Session {
            conn,
            signals,
            agent,
            json,
        })
    }

    /// A JSON document from the agent: as it is with `--json`, else
    /// indented.
    fn print(&self, text: String) {
        if self.json {
            println!("{text}");
        } else {
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }

    /// An operation just started: its path with `--no-wait`, else
    /// followed to its end (a sweep with its results per app).
    async fn started(
        &mut self,
        path: zbus::Result<OwnedObjectPath>,
        no_wait: bool,
        sweep: bool,
    ) -> Outcome {
        let path = path.map_err(err)?;
        if no_wait {
            println!("{}", path.as_str());
            return Ok(exit::COMMITTED);
        }
        let followed = if sweep {
            follow_sweep(&self.conn, &mut self.signals, path, self.json).await
        } else {
            follow(&self.conn, &mut self.signals, path, self.json).await
        };
        followed.map_err(err)
    }

    async fn stage(&self, path: &std::path::Path) -> Outcome {
        let g = stage(&self.agent, path).await?;
        if self.json {
            println!("{}", serde_json::json!({"generation": g}));
        } else {
            println!("{g}");
        }
        Ok(exit::COMMITTED)
    }
}

fn deadline_option(o: &mut Options<'_>, deadline: Option<u64>) {
    if let Some(d) = deadline {
        o.insert("deadline", Value::from(d));
    }
}

fn request_option<'a>(o: &mut Options<'a>, request: &'a Option<String>) {
    if let Some(r) = request {
        o.insert("request", Value::from(r.as_str()));
    }
}

fn sweep_options<'a>(
    app: &'a Option<String>,
    dry_run: bool,
    release: &'a Option<String>,
    confirm: &'a str,
) -> Options<'a> {
    let mut o = Options::new();
    if let Some(a) = app {
        o.insert("app", Value::from(a.as_str()));
    }
    if dry_run {
        o.insert("dry_run", Value::from(true));
    }
    if let Some(r) = release {
        o.insert("release", Value::from(r.as_str()));
    }
    if confirm != "auto" {
        o.insert("confirm", Value::from(confirm));
    }
    o
}

async fn run(cli: Cli) -> Outcome {
    let mut s = Session::open(&cli.bus, cli.json).await?;
    let op = |o: &str| op_path(o).map_err(|e| (exit::USAGE, e));
    match &cli.cmd {
        Cmd::Status => s.print(s.agent.status().await.map_err(err)?),
        Cmd::Generations => s.print(s.agent.list_generations().await.map_err(err)?),
        Cmd::Stage { path } => return s.stage(path).await,
        Cmd::Switch {
            generation,
            confirm,
            deadline,
            take_over,
            request,
            no_wait,
        } => {
            let mut o = Options::new();
            o.insert("confirm", Value::from(confirm.as_str()));
            deadline_option(&mut o, *deadline);
            request_option(&mut o, request);
            if *take_over {
                o.insert("take_over", Value::from(true));
            }
            let path = s.agent.switch(generation, o).await;
            return s.started(path, *no_wait, false).await;
        }
        Cmd::Rollback {
            generation,
            request,
            no_wait,
        } => {
            let to = generation.as_deref().unwrap_or("");
            let mut o = Options::new();
            request_option(&mut o, request);
            let path = s.agent.rollback(to, o).await;
            return s.started(path, *no_wait, false).await;
        }
        Cmd::Cutover {
            target,
            version,
            url,
            sha256,
            deadline,
            request,
            no_wait,
        } => {
            let mut o = Options::new();
            deadline_option(&mut o, *deadline);
            request_option(&mut o, request);
            let path = s.agent.cutover(target, version, url, sha256, o).await;
            return s.started(path, *no_wait, false).await;
        }
        Cmd::Confirm { operation } => s
            .agent
            .confirm(&op(operation)?.as_ref())
            .await
            .map_err(err)?,
        Cmd::Cancel { operation } => s
            .agent
            .cancel(&op(operation)?.as_ref())
            .await
            .map_err(err)?,
        Cmd::Sweep {
            app,
            dry_run,
            release,
            confirm,
            request,
            no_wait,
        } => {
            let mut o = sweep_options(app, *dry_run, release, confirm);
            request_option(&mut o, request);
            let path = s.agent.sweep(o).await;
            return s.started(path, *no_wait, true).await;
        }
        Cmd::Drift { cmd, check } => {
            let report = match cmd {
                None => {
                    let st: serde_json::Value =
                        serde_json::from_str(&s.agent.status().await.map_err(err)?)
                            .map_err(|e| (exit::ERROR, e.to_string()))?;
                    st["drift"].to_string()
                }
                Some(DriftCmd::Scan) => s.agent.scan_drift().await.map_err(err)?,
                Some(DriftCmd::Restore { app, no_wait }) => {
                    let mut o = Options::new();
                    if let Some(a) = app {
                        o.insert("app", Value::from(a.as_str()));
                    }
                    let path = s.agent.restore(o).await;
                    return s.started(path, *no_wait, false).await;
                }
            };
            let found = serde_json::from_str::<serde_json::Value>(&report)
                .ok()
                .and_then(|v| v["findings"].as_array().map(|a| !a.is_empty()))
                .unwrap_or(false);
            s.print(report);
            if *check && found {
                return Ok(exit::DRIFT);
            }
        }
        Cmd::Watch { operation } => return s.started(Ok(op(operation)?), false, false).await,
        Cmd::Bundle { operation, output } => return save_bundle(&s.conn, operation, output).await,
        Cmd::Completions { .. } | Cmd::Man | Cmd::Fleet { .. } => {
            unreachable!("handled before connecting")
        }
    }
    Ok(exit::COMMITTED)
}

/// `windlass-fleet`: beside our own executable first (the packages
/// install both in one directory), else the first one in PATH.
fn fleet_binary() -> Option<std::path::PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("windlass-fleet")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    beside
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join("windlass-fleet")))
        .find(|p| p.is_file())
}

/// Replaces this process with `windlass-fleet ARGS…`; returns only when
/// that fails, with the exit code and message.
fn exec_fleet(args: &[String]) -> (u8, String) {
    use std::os::unix::process::CommandExt;
    let Some(bin) = fleet_binary() else {
        return (
            exit::ERROR,
            "`fleet` needs windlass-fleet, which is neither beside windlassctl nor in PATH \
             (install the windlass-fleet package)"
                .into(),
        );
    };
    let e = std::process::Command::new(&bin).args(args).exec();
    (exit::ERROR, format!("{}: {e}", bin.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "windlassctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Cmd::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("windlassctl: {e}");
                    ExitCode::from(exit::ERROR)
                }
            };
        }
        Cmd::Fleet { args } => {
            let mut args = args.clone();
            if cli.json {
                args.insert(0, "--json".into());
            }
            let (code, msg) = exec_fleet(&args);
            eprintln!("windlassctl: {msg}");
            return ExitCode::from(code);
        }
        _ => {}
    }
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err((code, msg)) => {
            eprintln!("windlassctl: {msg}");
            ExitCode::from(code)
        }
    }
}
