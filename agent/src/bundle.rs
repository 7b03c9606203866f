//! Diagnostics bundles: when an operation ends without committing (or
//! every time, when configured), the evidence is collected at once into
//! `operations/<id>.d/`, so that nobody has to log into the host while
//! it is still fresh:
//!
//! * `bundle.json`: the summary (schema below);
//! * `record.json`: the operation's record;
//! * `journal/<unit>.log`: each changed unit's last journal lines;
//! * `operation.log`: the agent's journal of the operation
//!   (`WINDLASS_OPERATION=<id>`);
//! * `hooks/<kind>-<app>.log`: the output of each hook that ran;
//! * `containers/<name>.json`: `podman container inspect` of each changed
//!   unit's container (its `State`, with the health check's `Log`), the
//!   environment's values and the create command's `--env` values
//!   masked as `***`, as it is when the bundle is written; and
//!   `containers/<name>.at-failure.json`, the same taken when a health
//!   gate failed, before the way back replaced the container;
//! * `health.json`: the health timeline, every change seen by the
//!   operation's health gates: an array of `{"t_ms": <Unix ms>,
//!   "target": <unit or probe URL>, "state": <state>}`, where a unit's
//!   state is `ActiveState/SubState` (`: Result` when failed, ` (job)`
//!   while a job is queued) and a probe's `2xx`, `status <code>`, `timed
//!   out`, `connection refused or unreachable` or `no answer`.
//!
//! `bundle.json` (`format` 1): `operation`, `kind`, `result`, `error`,
//! `from_generation`, `to_generation` (strings or null),
//! `changed_units`, `units` (unit → property → value, from `systemctl
//! show`: `ActiveState`, `SubState`, `Result`, `NRestarts`,
//! `ExecMainStatus`, `FragmentPath`, `DropInPaths`) and `files` (every
//! other file of the bundle, relative).
//!
//! Every text goes through [`redact::text`] (URL credentials), and no
//! environment or secret value is read: the bundle has the units'
//! properties above, not their `Environment=`. The bundle is written
//! under a temporary name and renamed; retention keeps the newest
//! [`Retention::keep`] bundles within [`Retention::max_bytes`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::record::Record;
use crate::redact;
use crate::systemd::Systemd;

/// The bundle format written.
pub const FORMAT: u32 = 1;

/// Lines of each unit's journal kept.
pub const JOURNAL_LINES: usize = 200;

/// Lines of a hook's output kept (the last ones).
pub const HOOK_LINES: usize = 500;

/// Changes kept per health gate in the timeline (the first ones; a last
/// entry says how many more there were).
pub const HEALTH_CHANGES: usize = 1000;

/// Which bundles are kept, and when one is written.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Also for operations that committed.
    pub always: bool,
    pub keep: usize,
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            always: false,
            keep: 20,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    format: u32,
    operation: &'a str,
    kind: &'a str,
    result: Option<&'a str>,
    error: String,
    from_generation: Option<String>,
    to_generation: Option<String>,
    changed_units: &'a [String],
    units: BTreeMap<String, BTreeMap<String, String>>,
    files: Vec<String>,
}

/// Where the hooks of operation `id` keep their output until its bundle
/// is written (a dot name: never taken for a record).
pub fn hook_output_dir(operations: &Path, id: &str) -> PathBuf {
    operations.join(format!(".{id}.hooks"))
}

/// Appends `lines` to the output kept of hook `name` (`pre-commit-db`)
/// of operation `id`, keeping the last [`HOOK_LINES`].
pub fn keep_hook_output(operations: &Path, id: &str, name: &str, lines: &[String]) {
    let dir = hook_output_dir(operations, id);
    let path = dir.join(format!("{name}.log"));
    let res = (|| -> std::io::Result<()> {
        fs::create_dir_all(&dir)?;
        let old = fs::read_to_string(&path).unwrap_or_default();
        let mut all: Vec<String> = old.lines().map(str::to_string).collect();
        all.extend(lines.iter().map(|l| redact::text(l)));
        let start = all.len().saturating_sub(HOOK_LINES);
        let mut text = all[start..].join("\n");
        text.push('\n');
        fs::write(&path, text)
    })();
    if let Err(e) = res {
        tracing::warn!(
            WINDLASS_OPERATION = id,
            "cannot keep the output of hook {name}: {e}"
        );
    }
}

/// Where the health gates of operation `id` keep their timeline until
/// its bundle is written (JSON lines, a dot name).
pub fn health_timeline_path(operations: &Path, id: &str) -> PathBuf {
    operations.join(format!(".{id}.health"))
}

/// A health gate's timeline: each change of what it sees, appended to
/// [`health_timeline_path`] as it happens (a restart keeps what was seen).
pub struct Timeline {
    path: PathBuf,
    last: BTreeMap<String, String>,
    written: usize,
    dropped: usize,
}

impl Timeline {
    pub fn new(state_dir: &Path, id: &str) -> Timeline {
        Timeline {
            path: health_timeline_path(&state_dir.join("operations"), id),
            last: BTreeMap::new(),
            written: 0,
            dropped: 0,
        }
    }

    fn append(&self, entry: serde_json::Value) {
        let res = (|| -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let mut line = entry.to_string();
            line.push('\n');
            f.write_all(line.as_bytes())
        })();
        if let Err(e) = res {
            tracing::debug!("cannot keep the health timeline: {e}");
        }
    }

    /// `target` was seen in `state`: kept when that is a change.
    pub fn saw(&mut self, target: &str, state: &str) {
        if self.last.get(target).is_some_and(|s| s == state) {
            return;
        }
        self.last.insert(target.to_string(), state.to_string());
        if self.written >= HEALTH_CHANGES {
            self.dropped += 1;
            return;
        }
        self.written += 1;
        self.append(serde_json::json!({
            "t_ms": unix_ms(),
            "target": redact::text(target),
            "state": redact::text(state),
        }));
    }

    /// The gate is over: says how many changes were not kept.
    pub fn close(self) {
        if self.dropped > 0 {
            self.append(serde_json::json!({
                "t_ms": unix_ms(),
                "target": "",
                "state": format!("{} more changes not kept", self.dropped),
            }));
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The container a changed unit runs, by windlass's naming: `web` for
/// `web.service` (Quadlet, Guix) and `podman-web.service` (NixOS
/// oci-containers). Timers, sockets and other kinds have none.
/// Names that could leave the bundle's directory are not containers.
fn container_of(unit: &str) -> Option<&str> {
    let name = match unit.strip_suffix(".service") {
        Some(n) => n,
        None if unit.contains('.') => return None,
        None => unit,
    };
    let name = name.strip_prefix("podman-").unwrap_or(name);
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.')).then_some(name)
}

/// Where the containers' state at a failed gate is kept until the
/// bundle is written (a dot name).
pub fn failure_snapshot_dir(operations: &Path, id: &str) -> PathBuf {
    operations.join(format!(".{id}.containers"))
}

/// A gate failed: the inspect output of each changed unit's container,
/// masked, kept now, before the way back replaces the containers (their
/// health logs are the evidence).
pub async fn keep_containers_at_failure<S: Systemd>(
    systemd: &S,
    operations: &Path,
    id: &str,
    units: &[String],
) {
    let dir = failure_snapshot_dir(operations, id);
    for u in units {
        let Some(c) = container_of(u) else { continue };
        let Some(v) = first_inspected(systemd.container_inspect(c).await) else {
            continue;
        };
        let res = (|| -> std::io::Result<()> {
            let mut json =
                serde_json::to_string_pretty(&mask_inspect(v)).map_err(std::io::Error::other)?;
            json.push('\n');
            write_file(&dir.join(format!("{c}.json")), &json)
        })();
        if let Err(e) = res {
            tracing::debug!("cannot keep the state of container {c}: {e}");
        }
    }
}

/// `podman container inspect` gives an array of one.
fn first_inspected(v: Option<serde_json::Value>) -> Option<serde_json::Value> {
    match v {
        Some(serde_json::Value::Array(mut a)) if !a.is_empty() => Some(a.swap_remove(0)),
        Some(v @ serde_json::Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// `podman container inspect` output with nothing secret left: each
/// `Config.Env` value and each `--env`/`-e` value of `Config.CreateCommand`
/// masked, then every text passed through [`redact::text`].
pub fn mask_inspect(mut v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let mask_env = |s: &str| match s.split_once('=') {
        Some((k, _)) => format!("{k}=***"),
        None => s.to_string(),
    };
    if let Some(env) = v.pointer_mut("/Config/Env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(s) = e.as_str() {
                *e = Value::from(mask_env(s));
            }
        }
    }
    if let Some(cmd) = v
        .pointer_mut("/Config/CreateCommand")
        .and_then(Value::as_array_mut)
    {
        let mut next_is_env = false;
        for a in cmd.iter_mut() {
            let Some(s) = a.as_str().map(str::to_string) else {
                continue;
            };
            if next_is_env {
                *a = Value::from(mask_env(&s));
                next_is_env = false;
            } else if s == "-e" || s == "--env" {
                next_is_env = true;
            } else if let Some(rest) = s.strip_prefix("--env=") {
                *a = Value::from(format!("--env={}", mask_env(rest)));
            } else if let Some(rest) = s.strip_prefix("-e=") {
                *a = Value::from(format!("-e={}", mask_env(rest)));
            }
        }
    }
    redact_strings(&mut v);
    v
}

fn redact_strings(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = redact::text(s),
        Value::Array(a) => a.iter_mut().for_each(redact_strings),
        Value::Object(o) => o.values_mut().for_each(redact_strings),
        _ => {}
    }
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let mut f = fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn lines_text(lines: &[String]) -> String {
    let mut t: String = lines
        .iter()
        .map(|l| redact::text(l))
        .collect::<Vec<_>>()
        .join("\n");
    t.push('\n');
    t
}

/// Writes the bundle of the finished operation `r` (of `kind`) into
/// `operations/`; returns its directory.
pub async fn write<S: Systemd, O: Serialize>(
    systemd: &S,
    operations: &Path,
    r: &Record<O>,
    kind: &str,
    from: Option<String>,
    to: Option<String>,
) -> std::io::Result<PathBuf> {
    let id = r.id.as_str();
    let tmp = operations.join(format!(".{id}.d.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    // The record's journal is for authorised callers only: root's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
    }
    let mut files = Vec::new();
    let record = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    write_file(&tmp.join("record.json"), &redact::text(&record))?;
    files.push("record.json".to_string());
    let mut units = BTreeMap::new();
    for u in &r.changed_units {
        if u.contains('/') || u.starts_with('.') {
            continue;
        }
        if let Ok(props) = systemd.show(u).await {
            units.insert(u.clone(), props.into_iter().collect());
        }
        if let Ok(lines) = systemd.journal(u, JOURNAL_LINES).await {
            write_file(
                &tmp.join("journal").join(format!("{u}.log")),
                &lines_text(&lines),
            )?;
            files.push(format!("journal/{u}.log"));
        }
    }
    for u in &r.changed_units {
        let Some(c) = container_of(u) else { continue };
        let at_failure = failure_snapshot_dir(operations, id).join(format!("{c}.json"));
        if let Ok(text) = fs::read_to_string(&at_failure) {
            write_file(
                &tmp.join("containers").join(format!("{c}.at-failure.json")),
                &text,
            )?;
            files.push(format!("containers/{c}.at-failure.json"));
        }
        let Some(inspected) = first_inspected(systemd.container_inspect(c).await) else {
            continue;
        };
        let mut json = serde_json::to_string_pretty(&mask_inspect(inspected))
            .map_err(std::io::Error::other)?;
        json.push('\n');
        write_file(&tmp.join("containers").join(format!("{c}.json")), &json)?;
        files.push(format!("containers/{c}.json"));
    }
    let health = health_timeline_path(operations, id);
    if let Ok(text) = fs::read_to_string(&health) {
        let entries: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut json = serde_json::to_string_pretty(&entries).map_err(std::io::Error::other)?;
        json.push('\n');
        write_file(&tmp.join("health.json"), &json)?;
        files.push("health.json".into());
    }
    if let Ok(lines) = systemd.operation_journal(id, JOURNAL_LINES * 5).await {
        write_file(&tmp.join("operation.log"), &lines_text(&lines))?;
        files.push("operation.log".into());
    }
    let hooks = hook_output_dir(operations, id);
    if let Ok(entries) = fs::read_dir(&hooks) {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        for n in names {
            let text = fs::read_to_string(hooks.join(&n)).unwrap_or_default();
            write_file(&tmp.join("hooks").join(&n), &text)?;
            files.push(format!("hooks/{n}"));
        }
    }
    let summary = Summary {
        format: FORMAT,
        operation: id,
        kind,
        result: r.result.map(|o| o.as_str()),
        error: redact::text(&r.error),
        from_generation: from,
        to_generation: to,
        changed_units: &r.changed_units,
        units,
        files,
    };
    let mut json = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    json.push('\n');
    write_file(&tmp.join("bundle.json"), &json)?;
    let dest = operations.join(format!("{id}.d"));
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest)?;
    if let Ok(d) = fs::File::open(operations) {
        let _ = d.sync_all();
    }
    let _ = fs::remove_dir_all(&hooks);
    let _ = fs::remove_file(&health);
    let _ = fs::remove_dir_all(failure_snapshot_dir(operations, id));
    Ok(dest)
}

/// The bundle at `dir` as a zstd-compressed tar archive (every file
/// under `<id>/`), in an anonymous memory file read from its start: what
/// the bus hands a caller.
pub fn archive(dir: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Seek;
    use std::os::fd::FromRawFd;
    let name = c"windlass-bundle";
    // SAFETY: a NUL-terminated name; the descriptor returned is new and
    // owned by the File from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    let top = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".d"))
        .unwrap_or("bundle")
        .to_string();
    {
        let enc = zstd::Encoder::new(&mut file, 3)?;
        let mut tar = tar::Builder::new(enc);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        tar.append_dir_all(&top, dir)?;
        tar.into_inner()?.finish()?;
    }
    file.flush()?;
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(file.into())
}

/// Removes what operation `id` kept for its bundle (hook output, the
/// health timeline, the containers at a failed gate, a half-written
/// bundle): once its bundle is written, or when none is.
pub fn discard_scratch(operations: &Path, id: &str) {
    let _ = fs::remove_dir_all(hook_output_dir(operations, id));
    let _ = fs::remove_file(health_timeline_path(operations, id));
    let _ = fs::remove_dir_all(failure_snapshot_dir(operations, id));
    let _ = fs::remove_dir_all(operations.join(format!(".{id}.d.tmp")));
}

fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Removes the oldest bundles until at most `keep` are left and they
/// take at most `max_bytes` together. Returns the ones removed.
pub fn retain(operations: &Path, ret: &Retention) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(operations) else {
        return Vec::new();
    };
    // Operation ids sort by time: name order is age order.
    let mut bundles: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".d"))
                .is_some_and(|stem| stem.parse::<crate::record::OpId>().is_ok())
        })
        .collect();
    bundles.sort();
    let mut sizes: Vec<u64> = bundles.iter().map(|b| dir_size(b)).collect();
    let mut removed = Vec::new();
    while !bundles.is_empty()
        && (bundles.len() > ret.keep || sizes.iter().sum::<u64>() > ret.max_bytes)
    {
        let b = bundles.remove(0);
        sizes.remove(0);
        if fs::remove_dir_all(&b).is_ok() {
            removed.push(b);
        }
    }
    removed
}
