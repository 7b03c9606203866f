//! systemd, as the agent needs it: reload, start/stop/restart a unit and
//! wait for the job, read a unit's state, read its last journal lines, and
//! start transient units (activation and the revert timer run outside the
//! agent's cgroup). [`Dbus`] talks to `org.freedesktop.systemd1`;
//! [`NoSystemd`] touches nothing (`--systemd none`); tests bring their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use zbus::zvariant::{OwnedObjectPath, Value};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    /// A start/stop/restart job for the unit is queued or running.
    pub job_pending: bool,
}

/// What systemd says of a unit (`org.freedesktop.systemd1.Unit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitProps {
    pub load_state: String,
    pub fragment_path: String,
    pub drop_in_paths: Vec<String>,
    pub need_daemon_reload: bool,
    pub unit_file_state: String,
}

/// What a job does to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
        }
    }
}

/// What systemd tells the drift watcher ([`Systemd::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysEvent {
    /// A daemon-reload finished (`Manager.Reloading(false)`): any unit's
    /// definition may have changed.
    Reloaded,
    /// Unit files were enabled, disabled, masked, … (`UnitFilesChanged`).
    UnitFilesChanged,
    /// A job of this unit ended (`JobRemoved`): a restart may have
    /// brought another image.
    JobDone(String),
}

/// What a container runs (`podman container inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// `.ImageName`: the reference the container was created from.
    pub name: String,
    /// `.Image`: the id of the image it runs.
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SystemdError(pub String);

type R<T> = Result<T, SystemdError>;

pub trait Systemd: Send + Sync {
    fn reload(&self) -> impl Future<Output = R<()>> + Send;
    /// Queues a job and waits until it is done; returns its result (`done`, `failed`, `timeout`, …).
    fn job(&self, verb: Verb, unit: &str) -> impl Future<Output = R<String>> + Send;
    /// Queues a job and returns without waiting for
    /// it (a unit with Notify=healthy finishes starting only once healthy;
    /// the health gate does the waiting, against its deadline).
    fn enqueue(&self, verb: Verb, unit: &str) -> impl Future<Output = R<()>> + Send;
    fn state(&self, unit: &str) -> impl Future<Output = R<UnitState>> + Send;
    /// The unit's last `n` journal lines.
    fn journal(&self, unit: &str, n: usize) -> impl Future<Output = R<Vec<String>>> + Send;
    /// Runs `argv` in a transient service, optionally fired by a transient
    /// timer `delay_sec` from now (a revert deadline).
    fn transient(
        &self,
        name: &str,
        argv: &[String],
        delay_sec: Option<u64>,
    ) -> impl Future<Output = R<()>> + Send;
    /// Stops (and so removes) a transient unit.
    fn stop_transient(&self, name: &str) -> impl Future<Output = R<()>> + Send;
    /// Sends SIGKILL to every process of the unit.
    fn kill(&self, unit: &str) -> impl Future<Output = R<()>> + Send;
    /// Runs `argv` to completion, at most `timeout` (a self-test). The
    /// default runs it as a child process in its own process group (the
    /// stand-in); [`Dbus`] runs it in a sandboxed transient unit where
    /// only `writable` may be written.
    fn run_checked(
        &self,
        name: &str,
        argv: &[String],
        timeout: std::time::Duration,
        writable: &[String],
    ) -> impl Future<Output = R<Checked>> + Send {
        let _ = (name, writable);
        let argv = argv.to_vec();
        async move { run_child(&argv, timeout).await }
    }
    /// Runs a lifecycle hook: `argv` (its first word an absolute path) in
    /// the transient service `name`, which an agent restart does not kill,
    /// to its end, at most `timeout`. A unit of that name left by an
    /// earlier agent is stopped first (the hook runs again). The default
    /// runs it as a child process (the stand-in and `--systemd none`).
    fn run_hook(
        &self,
        name: &str,
        argv: &[String],
        timeout: std::time::Duration,
    ) -> impl Future<Output = R<Exit>> + Send {
        let _ = name;
        let argv = argv.to_vec();
        async move { run_child_exit(&argv, timeout).await }
    }
    /// Properties of a unit for a diagnostics bundle (`ActiveState`,
    /// `SubState`, `Result`, `NRestarts`, `ExecMainStatus`,
    /// `FragmentPath`, `DropInPaths`), as `systemctl show` writes them.
    /// The default gives those [`state`](Self::state) knows.
    fn show(&self, unit: &str) -> impl Future<Output = R<Vec<(String, String)>>> + Send {
        async move {
            let s = self.state(unit).await?;
            Ok(vec![
                ("ActiveState".into(), s.active_state),
                ("SubState".into(), s.sub_state),
                ("Result".into(), s.result),
            ])
        }
    }
    /// The agent's own journal lines of operation `id`
    /// (`WINDLASS_OPERATION=<id>`), the last `n`; none by default.
    fn operation_journal(&self, id: &str, n: usize) -> impl Future<Output = R<Vec<String>>> + Send {
        let _ = (id, n);
        async { Ok(Vec::new()) }
    }
    /// Removes the Podman volume `name`, never forced (a volume some
    /// container uses is refused by Podman, and stays); a volume that is
    /// not there counts as removed.
    fn remove_volume(&self, name: &str) -> impl Future<Output = R<()>> + Send;
    /// `podman container inspect NAME` as JSON, for a diagnostics
    /// bundle; `None` when there is no such container (or no podman).
    fn container_inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = Option<serde_json::Value>> + Send {
        let _ = name;
        async { None }
    }
    /// The image the container `name` runs (`podman container inspect`),
    /// or `None` when it cannot be told (no such container, no podman).
    fn container_image(&self, name: &str) -> impl Future<Output = Option<String>> + Send;
    /// Forgets a failed unit's state (`ResetFailedUnit`): a unit whose
    /// file is gone stays loaded while it is failed.
    fn reset_failed(&self, unit: &str) -> impl Future<Output = R<()>> + Send;
    /// Removes the Podman network `name` (`podman network rm`, never
    /// forced: a network another container still uses is kept).
    fn remove_network(&self, name: &str) -> impl Future<Output = R<()>> + Send;
    /// Removes the containers left of windlass app `app` (label
    /// `io.windlass.app=<app>`) once its unit is stopped: a unit killed
    /// while starting can leave its container behind (its `--rm` cleanup
    /// died with it), which keeps the app's networks in use.
    fn remove_app_containers(&self, app: &str) -> impl Future<Output = R<()>> + Send;
    /// What systemd reports from now on: reloads, unit file changes and
    /// ended jobs, for the drift watcher. `None`: nothing to watch (the
    /// default, `--systemd none`). The channel closes when systemd's
    /// connection is gone; dropping the receiver stops the forwarding.
    fn events(&self) -> impl Future<Output = Option<tokio::sync::mpsc::Receiver<SysEvent>>> + Send {
        async { None }
    }
    /// What systemd says of `unit` now (`org.freedesktop.systemd1.Unit`:
    /// LoadState, FragmentPath, DropInPaths, NeedDaemonReload,
    /// UnitFileState), read afresh on every call. The default cannot tell.
    fn unit_props(&self, unit: &str) -> impl Future<Output = R<UnitProps>> + Send {
        let _ = unit;
        async { Err(SystemdError("unit properties are not available".into())) }
    }
    /// The reference the container `name` was created from and the id of
    /// the image it runs; `None` when it cannot be told (no such
    /// container, no podman; the default).
    fn container_image_id(
        &self,
        name: &str,
    ) -> impl Future<Output = Option<ContainerImage>> + Send {
        let _ = name;
        async { None }
    }
}

/// How a checked run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub ok: bool,
    /// Exit status or timeout, and the last lines it printed.
    pub detail: String,
}

/// How a command run to its end ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit status; `None`: killed (by a signal, or at its timeout).
    pub status: Option<i32>,
    /// It was killed at its timeout.
    pub timed_out: bool,
    /// The last lines it printed (at most 20).
    pub lines: Vec<String>,
}

impl Exit {
    /// "exit status 3", "killed by a signal", "did not finish within 5 s".
    pub fn describe(&self, timeout: std::time::Duration) -> String {
        match (self.status, self.timed_out) {
            (_, true) => format!("did not finish within {} s (killed)", timeout.as_secs()),
            (Some(c), false) => format!("exit status {c}"),
            (None, false) => "killed by a signal".into(),
        }
    }
}

/// Runs `argv` as a child in its own process group, to its end or its
/// timeout (then the whole group is killed, a script's children
/// included).
pub async fn run_child_exit(argv: &[String], timeout: std::time::Duration) -> R<Exit> {
    use std::process::Stdio;
    let Some((prog, args)) = argv.split_first() else {
        return Err(SystemdError("empty command".into()));
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|x| SystemdError(format!("cannot run {prog}: {x}")))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).to_string();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let mut lines: Vec<String> = text.lines().rev().take(20).map(str::to_string).collect();
            lines.reverse();
            Ok(Exit {
                status: out.status.code(),
                timed_out: false,
                lines,
            })
        }
        Ok(Err(x)) => Err(SystemdError(format!("{prog}: {x}"))),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: signalling the process group we created.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            Ok(Exit {
                status: None,
                timed_out: true,
                lines: Vec::new(),
            })
        }
    }
}

/// Runs `argv` as a child in its own process group; on timeout the whole
/// group is killed (a script's children included). The detail is how it
/// ended and its last 10 lines.
pub async fn run_child(argv: &[String], timeout: std::time::Duration) -> R<Checked> {
    let exit = run_child_exit(argv, timeout).await?;
    let how = match (exit.status, exit.timed_out) {
        (_, true) => exit.describe(timeout),
        (Some(c), false) => format!("exit status: {c}"),
        (None, false) => "killed by a signal".into(),
    };
    let tail = &exit.lines[exit.lines.len().saturating_sub(10)..];
    Ok(Checked {
        ok: exit.status == Some(0),
        detail: format!("{how}\n{}", tail.join("\n")).trim_end().to_string(),
    })
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn reload(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[allow(clippy::type_complexity)]
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, Vec<(&str, Value<'_>)>)],
    ) -> zbus::Result<OwnedObjectPath>;
    /// `true` when a daemon-reload starts, `false` when it is done.
    #[zbus(signal)]
    fn reloading(&self, active: bool) -> zbus::Result<()>;
    #[zbus(signal)]
    fn unit_files_changed(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn job(&self) -> zbus::Result<(u32, OwnedObjectPath)>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
}

/// systemd's answer for a unit that is not loaded (and has no file): for
/// a stop, there is nothing to stop. A job's service whose timer never
/// fired is such a unit once its generation is left.
fn not_loaded(x: &zbus::Error) -> bool {
    matches!(x, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
}

/// systemd over the system bus.
pub struct Dbus {
    conn: zbus::Connection,
}

fn e(x: impl std::fmt::Display) -> SystemdError {
    SystemdError(x.to_string())
}

impl Dbus {
    pub async fn system() -> R<Dbus> {
        Self::with_connection(zbus::Connection::system().await.map_err(e)?).await
    }

    /// systemd over `conn` (tests: a private bus where a stand-in owns
    /// `org.freedesktop.systemd1`). Subscribes, so that systemd sends
    /// its job and unit signals to this connection.
    pub async fn with_connection(conn: zbus::Connection) -> R<Dbus> {
        ManagerProxy::new(&conn)
            .await
            .map_err(e)?
            .subscribe()
            .await
            .map_err(e)?;
        Ok(Dbus { conn })
    }

    /// How a hook's run in `service` ended, its job having ended with
    /// `result`; its failed state is reset afterwards.
    async fn hook_exit(&self, service: &str, result: &str) -> R<Exit> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let lines = self.journal(service, 20).await.unwrap_or_default();
        let (status, timed_out) = match result {
            "done" => (Some(0), false),
            "timeout" => (None, true),
            _ => {
                // CLD_EXITED (1): ExecMainStatus is the exit status;
                // otherwise the signal that killed it.
                let path = m.load_unit(service).await.map_err(e)?;
                let sv = ServiceProxy::builder(&self.conn)
                    .path(path)
                    .map_err(e)?
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
                    .map_err(e)?;
                let code = sv.exec_main_code().await.unwrap_or(0);
                let st = sv.exec_main_status().await.unwrap_or(-1);
                let svc_result = sv.result().await.unwrap_or_default();
                ((code == 1).then_some(st), svc_result == "timeout")
            }
        };
        let _ = self.reset_failed(service).await;
        Ok(Exit {
            status,
            timed_out,
            lines,
        })
    }
}

/// The properties of the transient unit that runs a check
/// ([`Systemd::run_checked`]): a oneshot, killed after `timeout`, and
/// sandboxed.
fn checked_unit_properties<'a>(
    name: &str,
    argv: &[String],
    timeout: std::time::Duration,
    writable: &[String],
) -> Vec<(&'static str, Value<'a>)> {
    let exec: Vec<(String, Vec<String>, bool)> = vec![(argv[0].clone(), argv.to_vec(), false)];
    let usec = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
    vec![
        ("Description", Value::from(format!("windlass: {name}"))),
        ("ExecStart", Value::from(exec)),
        // A oneshot's start job ends when the command exits: "done",
        // "failed" (non-zero exit) or "timeout" (then it is killed).
        ("Type", Value::from("oneshot")),
        ("TimeoutStartUSec", Value::from(usec)),
        ("CollectMode", Value::from("inactive-or-failed")),
        // A downloaded binary, run as root before anyone vouched for
        // it: no new privileges, a read-only system and home, its own
        // /tmp and /dev, no network, and only `writable` to write (the
        // agent's state directory, for a new agent's own check). Not
        // DynamicUser: the candidate lives in root's staging
        // directory, and a new agent must check root's state.
        ("NoNewPrivileges", Value::from(true)),
        ("ProtectSystem", Value::from("strict")),
        ("ProtectHome", Value::from("read-only")),
        ("PrivateTmp", Value::from(true)),
        ("PrivateDevices", Value::from(true)),
        ("PrivateNetwork", Value::from(true)),
        ("ReadWritePaths", Value::from(writable.to_vec())),
    ]
}

/// How many events wait for the drift watcher before the forwarder
/// coalesces ([`forward_events`]).
const EVENT_QUEUE: usize = 256;

/// Forwards systemd's signals as [`SysEvent`]s into `tx` until `tx`'s
/// receiver is dropped or a stream ends (systemd's connection is gone;
/// the receiver then sees the channel close).
///
/// It never waits for the receiver: it must keep draining the signal
/// streams, or zbus drops the oldest queued signals, whichever they are.
/// When the channel is full, a `Reloaded` or `UnitFilesChanged` is kept
/// as a pending flag (one of each is enough: the watcher rescans for it,
/// whatever came since) and sent as soon as the channel has room; a
/// `JobDone` is dropped (the image check it would start is also part of
/// every full scan). Events of one kind keep their order; across kinds
/// (three streams) they need not, and the watcher does not rely on it.
async fn forward_events(
    reloading: impl futures_util::Stream<Item = bool>,
    files: impl futures_util::Stream<Item = ()>,
    jobs: impl futures_util::Stream<Item = String>,
    tx: tokio::sync::mpsc::Sender<SysEvent>,
) {
    use futures_util::StreamExt;
    use tokio::sync::mpsc::error::TrySendError;
    let mut reloading = std::pin::pin!(reloading);
    let mut files = std::pin::pin!(files);
    let mut jobs = std::pin::pin!(jobs);
    // Found the channel full; sent when it has room again.
    let (mut reloaded, mut changed) = (false, false);
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            permit = tx.reserve(), if reloaded || changed => {
                let Ok(permit) = permit else { return };
                permit.send(if std::mem::take(&mut reloaded) {
                    SysEvent::Reloaded
                } else {
                    changed = false;
                    SysEvent::UnitFilesChanged
                });
                continue;
            }
            r = reloading.next() => match r {
                None => return,
                // A reload starting: the units change once it is done.
                Some(true) => continue,
                Some(false) => SysEvent::Reloaded,
            },
            f = files.next() => match f {
                None => return,
                Some(()) => SysEvent::UnitFilesChanged,
            },
            j = jobs.next() => match j {
                None => return,
                Some(unit) => SysEvent::JobDone(unit),
            },
        };
        match ev {
            SysEvent::Reloaded if reloaded => continue,
            SysEvent::UnitFilesChanged if changed => continue,
            _ => {}
        }
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return,
            Err(TrySendError::Full(SysEvent::Reloaded)) => reloaded = true,
            Err(TrySendError::Full(SysEvent::UnitFilesChanged)) => changed = true,
            Err(TrySendError::Full(SysEvent::JobDone(unit))) => {
                tracing::debug!("drift events queue full: dropped the end of a job of {unit}");
            }
        }
    }
}

/// [`UnitProps`](UnitProps) from the answer of
/// `GetAll("org.freedesktop.systemd1.Unit")`; a property that is missing
/// (or of another type) keeps its default.
fn unit_props_from(
    all: &std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
) -> UnitProps {
    let string = |k: &str| {
        all.get(k)
            .and_then(|v| v.downcast_ref::<String>().ok())
            .unwrap_or_default()
    };
    let strings = all
        .get("DropInPaths")
        .and_then(|v| match &**v {
            Value::Array(a) => Some(
                a.inner()
                    .iter()
                    .filter_map(|x| x.downcast_ref::<String>().ok())
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    UnitProps {
        load_state: string("LoadState"),
        fragment_path: string("FragmentPath"),
        drop_in_paths: strings,
        need_daemon_reload: all
            .get("NeedDaemonReload")
            .and_then(|v| v.downcast_ref::<bool>().ok())
            .unwrap_or(false),
        unit_file_state: string("UnitFileState"),
    }
}

/// The `--format` of `podman container inspect` that
/// [`parse_container_image`] reads: reference, a tab, image id.
const IMAGE_FORMAT: &str = "{{.ImageName}}\t{{.Image}}";

/// The one line `podman container inspect --format IMAGE_FORMAT` prints:
/// `None` unless it is exactly a non-empty reference and a non-empty id,
/// split by a tab.
fn parse_container_image(out: &str) -> Option<ContainerImage> {
    let line = out.trim();
    if line.contains('\n') {
        return None;
    }
    let (name, id) = line.split_once('\t')?;
    let (name, id) = (name.trim(), id.trim());
    let word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    (word(name) && word(id)).then(|| ContainerImage {
        name: name.to_string(),
        id: id.to_string(),
    })
}

impl Systemd for Dbus {
    async fn reload(&self) -> R<()> {
        ManagerProxy::new(&self.conn)
            .await
            .map_err(e)?
            .reload()
            .await
            .map_err(e)
    }

    async fn job(&self, verb: Verb, unit: &str) -> R<String> {
        use futures_util::StreamExt;
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        // Subscribe before queuing, so the JobRemoved cannot be missed.
        let mut removed = m.receive_job_removed().await.map_err(e)?;
        let job = match verb {
            Verb::Start => m.start_unit(unit, "replace").await,
            Verb::Stop => m.stop_unit(unit, "replace").await,
            Verb::Restart => m.restart_unit(unit, "replace").await,
        };
        let job = match job {
            Ok(j) => j,
            Err(x) if verb == Verb::Stop && not_loaded(&x) => return Ok("done".into()),
            Err(x) => return Err(e(x)),
        };
        while let Some(sig) = removed.next().await {
            let args = sig.args().map_err(e)?;
            if args.job == job {
                return Ok(args.result);
            }
        }
        Err(SystemdError(
            "systemd went away while waiting for a job".into(),
        ))
    }

    async fn enqueue(&self, verb: Verb, unit: &str) -> R<()> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        match verb {
            Verb::Start => m.start_unit(unit, "replace").await,
            Verb::Stop => m.stop_unit(unit, "replace").await,
            Verb::Restart => m.restart_unit(unit, "replace").await,
        }
        .map(|_| ())
        .or_else(|x| match verb == Verb::Stop && not_loaded(&x) {
            true => Ok(()),
            false => Err(e(x)),
        })
    }

    async fn state(&self, unit: &str) -> R<UnitState> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let path = m.load_unit(unit).await.map_err(e)?;
        // No property cache: one Get per property, no subscription per call.
        let u = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .map_err(e)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(e)?;
        let service = ServiceProxy::builder(&self.conn)
            .path(path)
            .map_err(e)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await;
        let result = match service {
            Ok(s) => s.result().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Ok(UnitState {
            active_state: u.active_state().await.map_err(e)?,
            sub_state: u.sub_state().await.map_err(e)?,
            result,
            job_pending: u.job().await.map(|(id, _)| id != 0).unwrap_or(false),
        })
    }

    async fn journal(&self, unit: &str, n: usize) -> R<Vec<String>> {
        let out = tokio::process::Command::new("journalctl")
            .args([
                "--no-pager",
                "-o",
                "short-iso",
                "-n",
                &n.to_string(),
                "-u",
                unit,
            ])
            .output()
            .await
            .map_err(e)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    async fn transient(&self, name: &str, argv: &[String], delay_sec: Option<u64>) -> R<()> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let exec: Vec<(String, Vec<String>, bool)> = vec![(argv[0].clone(), argv.to_vec(), false)];
        let service = format!("{name}.service");
        let props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(format!("windlass: {name}"))),
            ("ExecStart", Value::from(exec)),
            ("Type", Value::from("oneshot")),
        ];
        match delay_sec {
            None => {
                m.start_transient_unit(&service, "replace", &props, &[])
                    .await
                    .map_err(e)?;
            }
            Some(d) => {
                let timer = format!("{name}.timer");
                let tprops: Vec<(&str, Value<'_>)> = vec![
                    (
                        "Description",
                        Value::from(format!("windlass deadline: {name}")),
                    ),
                    ("OnActiveSec", Value::from(d.saturating_mul(1_000_000))),
                    ("RemainAfterElapse", Value::from(false)),
                ];
                let aux = vec![(service.as_str(), props)];
                m.start_transient_unit(&timer, "replace", &tprops, &aux)
                    .await
                    .map_err(e)?;
            }
        }
        Ok(())
    }

    async fn run_checked(
        &self,
        name: &str,
        argv: &[String],
        timeout: std::time::Duration,
        writable: &[String],
    ) -> R<Checked> {
        use futures_util::StreamExt;
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let mut removed = m.receive_job_removed().await.map_err(e)?;
        let service = format!("{name}.service");
        let props = checked_unit_properties(name, argv, timeout, writable);
        let job = m
            .start_transient_unit(&service, "fail", &props, &[])
            .await
            .map_err(e)?;
        let wait = async {
            while let Some(sig) = removed.next().await {
                let args = sig.args().map_err(e)?;
                if args.job == job {
                    return Ok(args.result);
                }
            }
            Err(SystemdError(
                "systemd went away while waiting for a job".into(),
            ))
        };
        let result =
            match tokio::time::timeout(timeout + std::time::Duration::from_secs(10), wait).await {
                Ok(r) => r?,
                Err(_) => {
                    let _ = m.stop_unit(&service, "replace").await;
                    "timeout".to_string()
                }
            };
        let lines = self.journal(&service, 10).await.unwrap_or_default();
        let why = match result.as_str() {
            "done" => "exited 0".to_string(),
            "timeout" => format!("did not finish within {} s (killed)", timeout.as_secs()),
            other => format!("job {other}"),
        };
        Ok(Checked {
            ok: result == "done",
            detail: format!("{why}\n{}", lines.join("\n"))
                .trim_end()
                .to_string(),
        })
    }

    async fn show(&self, unit: &str) -> R<Vec<(String, String)>> {
        let props = "ActiveState,SubState,Result,NRestarts,ExecMainStatus,FragmentPath,DropInPaths";
        let out = tokio::process::Command::new("systemctl")
            .args(["show", "-p", props, "--", unit])
            .output()
            .await
            .map_err(e)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    async fn operation_journal(&self, id: &str, n: usize) -> R<Vec<String>> {
        let out = tokio::process::Command::new("journalctl")
            .args(["--no-pager", "-o", "short-iso", "-n", &n.to_string()])
            .arg(format!("WINDLASS_OPERATION={id}"))
            .output()
            .await
            .map_err(e)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    async fn run_hook(&self, name: &str, argv: &[String], timeout: std::time::Duration) -> R<Exit> {
        use futures_util::StreamExt;
        let service = format!("{name}.service");
        // A run an earlier agent started and that still runs is waited
        // for, not stopped: stopping it would cut a migration in half, and
        // it was the same command line. One that ended is forgotten (the
        // hook runs again), so the name is free.
        let st = self.state(&service).await?;
        if matches!(st.active_state.as_str(), "activating" | "deactivating") {
            tracing::info!("{service} still runs (started before a restart): waiting for it");
            let until = std::time::Instant::now() + timeout + std::time::Duration::from_secs(10);
            let result = loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let st = self.state(&service).await?;
                match st.active_state.as_str() {
                    "inactive" if !st.job_pending => break "done",
                    "failed" => break "failed",
                    _ if std::time::Instant::now() >= until => {
                        let _ = self.job(Verb::Stop, &service).await;
                        break "timeout";
                    }
                    _ => {}
                }
            };
            return self.hook_exit(&service, result).await;
        }
        self.job(Verb::Stop, &service).await?;
        self.reset_failed(&service).await?;
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let mut removed = m.receive_job_removed().await.map_err(e)?;
        let exec: Vec<(String, Vec<String>, bool)> = vec![(argv[0].clone(), argv.to_vec(), false)];
        let usec = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        // Not collected when it fails: its exit status is read first,
        // then its failed state reset.
        let props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(format!("windlass hook: {name}"))),
            ("ExecStart", Value::from(exec)),
            ("Type", Value::from("oneshot")),
            ("TimeoutStartUSec", Value::from(usec)),
        ];
        let job = m
            .start_transient_unit(&service, "fail", &props, &[])
            .await
            .map_err(e)?;
        let wait = async {
            while let Some(sig) = removed.next().await {
                let args = sig.args().map_err(e)?;
                if args.job == job {
                    return Ok(args.result);
                }
            }
            Err(SystemdError(
                "systemd went away while waiting for a job".into(),
            ))
        };
        let result =
            match tokio::time::timeout(timeout + std::time::Duration::from_secs(10), wait).await {
                Ok(r) => r?,
                Err(_) => {
                    let _ = self.job(Verb::Stop, &service).await;
                    "timeout".to_string()
                }
            };
        self.hook_exit(&service, &result).await
    }

    async fn kill(&self, unit: &str) -> R<()> {
        ManagerProxy::new(&self.conn)
            .await
            .map_err(e)?
            .kill_unit(unit, "all", libc::SIGKILL)
            .await
            .map_err(e)
    }

    async fn remove_volume(&self, name: &str) -> R<()> {
        let out = tokio::process::Command::new("podman")
            .args(["volume", "rm", "--", name])
            .output()
            .await
            .map_err(|x| e(format!("podman volume rm {name}: {x}")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("no such volume") {
            return Ok(());
        }
        Err(e(format!("podman volume rm {name}: {}", err.trim())))
    }

    async fn container_inspect(&self, name: &str) -> Option<serde_json::Value> {
        let out = tokio::process::Command::new("podman")
            .args(["container", "inspect", name])
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    async fn container_image(&self, name: &str) -> Option<String> {
        self.container_image_id(name).await.map(|c| c.name)
    }

    async fn container_image_id(&self, name: &str) -> Option<ContainerImage> {
        // A real tab in the template: podman prints it as it is.
        // Killed when dropped: the drift scan gives up on it after a
        // while, or drops it with a scan made stale.
        let out = tokio::process::Command::new("podman")
            .args(["container", "inspect", "--format", IMAGE_FORMAT, "--", name])
            .kill_on_drop(true)
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        parse_container_image(&String::from_utf8_lossy(&out.stdout))
    }

    async fn events(&self) -> Option<tokio::sync::mpsc::Receiver<SysEvent>> {
        use futures_util::StreamExt;
        use futures_util::future::ready;
        // Both match rules are in place before this returns: no signal
        // sent after the call is missed. Not `JobRemoved`: every job on
        // the host (a container's health check runs one each interval)
        // would wake the drift watcher, which must sleep between changes;
        // what a job changes is found by the scans after operations and
        // by the drift-scan timer.
        let streams = async {
            let m = ManagerProxy::new(&self.conn).await?;
            let reloading = m.receive_reloading().await?;
            let files = m.receive_unit_files_changed().await?;
            zbus::Result::Ok((reloading, files))
        };
        let (reloading, files) = match streams.await {
            Ok(s) => s,
            Err(x) => {
                tracing::warn!("cannot listen to systemd's signals: {x}");
                return None;
            }
        };
        let reloading = reloading.filter_map(|s| ready(s.args().ok().map(|a| a.active)));
        let files = files.map(|_| ());
        let jobs = futures_util::stream::pending::<String>();
        let (tx, rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        tokio::spawn(forward_events(reloading, files, jobs, tx));
        Some(rx)
    }

    async fn unit_props(&self, unit: &str) -> R<UnitProps> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        let path = m.load_unit(unit).await.map_err(e)?;
        let p = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination("org.freedesktop.systemd1")
            .map_err(e)?
            .path(path)
            .map_err(e)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(e)?;
        let all = p
            .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
                "org.freedesktop.systemd1.Unit",
            ))
            .await
            .map_err(e)?;
        Ok(unit_props_from(&all))
    }

    async fn reset_failed(&self, unit: &str) -> R<()> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        match m.reset_failed_unit(unit).await {
            Ok(()) => Ok(()),
            // Not loaded: nothing to forget.
            Err(x) if not_loaded(&x) => Ok(()),
            Err(x) => Err(e(x)),
        }
    }

    async fn remove_network(&self, name: &str) -> R<()> {
        let out = tokio::process::Command::new("podman")
            .args(["network", "rm", "--", name])
            .output()
            .await
            .map_err(|x| SystemdError(format!("podman network rm {name}: {x}")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("network not found") {
            Ok(())
        } else {
            Err(SystemdError(format!(
                "podman network rm {name}: {}",
                err.trim()
            )))
        }
    }

    async fn remove_app_containers(&self, app: &str) -> R<()> {
        let filter = format!("label=io.windlass.app={app}");
        let out = tokio::process::Command::new("podman")
            .args(["container", "rm", "--force", "--filter", &filter])
            .output()
            .await
            .map_err(|x| SystemdError(format!("podman container rm ({filter}): {x}")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        // No such container: nothing was left.
        if out.status.success() || err.trim().is_empty() || err.contains("no such container") {
            Ok(())
        } else {
            Err(SystemdError(format!(
                "podman container rm ({filter}): {}",
                err.trim()
            )))
        }
    }

    async fn stop_transient(&self, name: &str) -> R<()> {
        let m = ManagerProxy::new(&self.conn).await.map_err(e)?;
        for u in [format!("{name}.timer"), format!("{name}.service")] {
            let _ = m.stop_unit(&u, "replace").await;
        }
        Ok(())
    }
}

/// `--systemd none`: touches no unit. A unit started or restarted counts
/// as active, a stopped one as inactive; transient units and kills are
/// logged, not run (for trying the agent out, and its bus tests).
#[derive(Default)]
pub struct NoSystemd {
    active: Mutex<BTreeMap<String, bool>>,
}

impl Systemd for NoSystemd {
    async fn reload(&self) -> R<()> {
        Ok(())
    }

    async fn job(&self, verb: Verb, unit: &str) -> R<String> {
        self.active
            .lock()
            .unwrap()
            .insert(unit.to_string(), verb != Verb::Stop);
        Ok("done".into())
    }

    async fn enqueue(&self, verb: Verb, unit: &str) -> R<()> {
        self.job(verb, unit).await.map(|_| ())
    }

    async fn state(&self, unit: &str) -> R<UnitState> {
        let active = self.active.lock().unwrap().get(unit).copied() == Some(true);
        Ok(UnitState {
            active_state: if active { "active" } else { "inactive" }.into(),
            sub_state: if active { "running" } else { "dead" }.into(),
            result: "success".into(),
            job_pending: false,
        })
    }

    async fn journal(&self, unit: &str, _n: usize) -> R<Vec<String>> {
        Ok(vec![format!("{unit}: no journal (--systemd none)")])
    }

    async fn transient(&self, name: &str, _argv: &[String], delay_sec: Option<u64>) -> R<()> {
        tracing::info!("--systemd none: not starting transient unit {name} ({delay_sec:?} s)");
        Ok(())
    }

    async fn kill(&self, _unit: &str) -> R<()> {
        Ok(())
    }

    async fn container_image(&self, _name: &str) -> Option<String> {
        None
    }

    async fn reset_failed(&self, _unit: &str) -> R<()> {
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> R<()> {
        tracing::info!("--systemd none: not removing Podman network {name}");
        Ok(())
    }

    async fn remove_app_containers(&self, app: &str) -> R<()> {
        tracing::info!("--systemd none: not removing containers of {app}");
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> R<()> {
        tracing::info!("--systemd none: not removing Podman volume {name}");
        Ok(())
    }

    async fn stop_transient(&self, _name: &str) -> R<()> {
        Ok(())
    }
}

/// The implementations, as one type (the trait is not object-safe).
pub enum AnySystemd {
    Dbus(Dbus),
    /// `--systemd none`.
    None(NoSystemd),
}

/// Each method runs on the implementation in use.
macro_rules! forward {
    ($(async fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
            match self {
                AnySystemd::Dbus(s) => s.$name($($arg),*).await,
                AnySystemd::None(s) => s.$name($($arg),*).await,
            }
        })*
    };
}

impl Systemd for AnySystemd {
    forward! {
        async fn reload(&self) -> R<()>;
        async fn job(&self, verb: Verb, unit: &str) -> R<String>;
        async fn enqueue(&self, verb: Verb, unit: &str) -> R<()>;
        async fn state(&self, unit: &str) -> R<UnitState>;
        async fn journal(&self, unit: &str, n: usize) -> R<Vec<String>>;
        async fn transient(&self, name: &str, argv: &[String], delay_sec: Option<u64>) -> R<()>;
        async fn kill(&self, unit: &str) -> R<()>;
        async fn run_checked(&self, name: &str, argv: &[String], timeout: std::time::Duration, writable: &[String]) -> R<Checked>;
        async fn show(&self, unit: &str) -> R<Vec<(String, String)>>;
        async fn operation_journal(&self, id: &str, n: usize) -> R<Vec<String>>;
        async fn run_hook(&self, name: &str, argv: &[String], timeout: std::time::Duration) -> R<Exit>;
        async fn remove_volume(&self, name: &str) -> R<()>;
        async fn container_inspect(&self, name: &str) -> Option<serde_json::Value>;
        async fn container_image(&self, name: &str) -> Option<String>;
        async fn stop_transient(&self, name: &str) -> R<()>;
        async fn reset_failed(&self, unit: &str) -> R<()>;
        async fn remove_network(&self, name: &str) -> R<()>;
        async fn remove_app_containers(&self, app: &str) -> R<()>;
        async fn events(&self) -> Option<tokio::sync::mpsc::Receiver<SysEvent>>;
        async fn unit_props(&self, unit: &str) -> R<UnitProps>;
        async fn container_image_id(&self, name: &str) -> Option<ContainerImage>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_line_is_a_reference_a_tab_and_an_id() {
        let want = |name: &str, id: &str| {
            Some(ContainerImage {
                name: name.into(),
                id: id.into(),
            })
        };
        assert_eq!(
            parse_container_image("registry.example/web:1.2\t3f2a9c\n"),
            want("registry.example/web:1.2", "3f2a9c")
        );
        assert_eq!(
            parse_container_image("  docker.io/library/nginx:latest \t sha \n"),
            want("docker.io/library/nginx:latest", "sha")
        );
        for bad in [
            "",
            "\n",
            "web:1",
            "web:1\t",
            "\tid",
            "web:1 id",
            "web:1\tid extra",
            "web:1\tid\tmore",
            "web:1\tid\nweb:2\tid2",
        ] {
            assert_eq!(parse_container_image(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unit_props_are_read_from_get_all_and_missing_ones_default() {
        use zbus::zvariant::OwnedValue;
        let v = |x: Value<'_>| OwnedValue::try_from(x).unwrap();
        let mut all = std::collections::HashMap::new();
        all.insert("LoadState".to_string(), v(Value::from("loaded")));
        all.insert(
            "FragmentPath".to_string(),
            v(Value::from("/run/systemd/generator/web.service")),
        );
        all.insert(
            "DropInPaths".to_string(),
            v(Value::from(vec![
                "/etc/systemd/system/web.service.d/override.conf".to_string(),
            ])),
        );
        all.insert("NeedDaemonReload".to_string(), v(Value::from(true)));
        all.insert("UnitFileState".to_string(), v(Value::from("generated")));
        all.insert("ActiveState".to_string(), v(Value::from("active")));
        assert_eq!(
            unit_props_from(&all),
            UnitProps {
                load_state: "loaded".into(),
                fragment_path: "/run/systemd/generator/web.service".into(),
                drop_in_paths: vec!["/etc/systemd/system/web.service.d/override.conf".into()],
                need_daemon_reload: true,
                unit_file_state: "generated".into(),
            }
        );
        let mut few = std::collections::HashMap::new();
        few.insert("LoadState".to_string(), v(Value::from("not-found")));
        // Of another type than systemd's: as if missing.
        few.insert("NeedDaemonReload".to_string(), v(Value::from("yes")));
        assert_eq!(
            unit_props_from(&few),
            UnitProps {
                load_state: "not-found".into(),
                ..Default::default()
            }
        );
    }

    /// A stream fed by the test through an unbounded channel.
    fn fed<T: Send + 'static>() -> (
        tokio::sync::mpsc::UnboundedSender<T>,
        impl futures_util::Stream<Item = T>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        (
            tx,
            futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
        )
    }

    #[tokio::test]
    async fn a_full_queue_keeps_one_reload_and_one_unit_files_change_and_drops_job_ends() {
        let (rl, reloading) = fed();
        let (uf, files) = fed();
        let (jd, jobs) = fed();
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let task = tokio::spawn(forward_events(reloading, files, jobs, tx));
        // A reload starting is not an event.
        rl.send(true).unwrap();
        rl.send(false).unwrap();
        assert_eq!(rx.recv().await, Some(SysEvent::Reloaded));
        // Fill the queue with two job ends, then more while it is full.
        jd.send("a.service".to_string()).unwrap();
        jd.send("b.service".to_string()).unwrap();
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(50));
        settle().await;
        jd.send("c.service".to_string()).unwrap();
        rl.send(false).unwrap();
        rl.send(false).unwrap();
        uf.send(()).unwrap();
        uf.send(()).unwrap();
        settle().await;
        let mut got = Vec::new();
        while let Ok(Some(ev)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await
        {
            got.push(ev);
        }
        assert_eq!(
            got,
            [
                SysEvent::JobDone("a.service".into()),
                SysEvent::JobDone("b.service".into()),
                SysEvent::Reloaded,
                SysEvent::UnitFilesChanged,
            ]
        );
        // Dropping the receiver ends the forwarder, signals or not.
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the forwarder ends with its receiver")
            .unwrap();
        // So does a stream's end (systemd's connection gone).
        let (rl, reloading) = fed::<bool>();
        let (_uf, files) = fed();
        let (_jd, jobs) = fed();
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(forward_events(reloading, files, jobs, tx));
        drop(rl);
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_checked_command_runs_sandboxed_and_writes_only_where_it_is_told() {
        let argv = vec![
            "/var/lib/windlass/staging/x".to_string(),
            "--self-test".into(),
        ];
        let writable = vec!["/var/lib/windlass".to_string()];
        let props = checked_unit_properties(
            "windlass-check-x",
            &argv,
            std::time::Duration::MAX,
            &writable,
        );
        let get = |k: &str| {
            props
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k} in {props:?}"))
        };
        for k in [
            "NoNewPrivileges",
            "PrivateTmp",
            "PrivateDevices",
            "PrivateNetwork",
        ] {
            assert_eq!(get(k), Value::from(true), "{k}");
        }
        assert_eq!(get("ProtectSystem"), Value::from("strict"));
        assert_eq!(get("ProtectHome"), Value::from("read-only"));
        assert_eq!(get("ReadWritePaths"), Value::from(writable.clone()));
        assert_eq!(get("Type"), Value::from("oneshot"));
        // A timeout too long for microseconds saturates rather than wraps.
        assert_eq!(get("TimeoutStartUSec"), Value::from(u64::MAX));
        let none = checked_unit_properties("c", &argv, std::time::Duration::from_secs(30), &[]);
        let rw = none.iter().find(|(n, _)| *n == "ReadWritePaths").unwrap();
        assert_eq!(rw.1, Value::from(Vec::<String>::new()));
    }
}
