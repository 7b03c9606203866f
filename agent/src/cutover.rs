//! Cutover: move a configured target (a binary behind a link, run by a
//! unit) to a new version with no moment where the link is missing, and
//! an automatic way back. Versions live at
//! `<artifacts>/<target>/<version>/<binary>`; the link points into one.
//!
//! Phases, each persisted before it runs (the record carries a
//! [`CutoverState`]): `recorded` → `staging` (download over HTTPS into a
//! staging directory outside the artifacts, size cap, progress as
//! PhaseChanged details) → `verifying` (SHA-256 again, then
//! `<new> --self-test` with a timeout, in a transient unit) → `cutover`
//! (adopt a plain file at the link into a versioned directory first, arm
//! the external revert, move the staged version into place, a new link
//! beside the old renamed over it, directory fsynced, restart the unit) →
//! `confirming` (the unit active and `health_http` answering 2xx within
//! the deadline) → `committing` → committed. A failed gate, Cancel or a
//! passed deadline → `rolling-back`: the link is swapped back to the
//! version recorded at the start, the unit restarted → rolled-back.
//!
//! A refusal (bad arguments, a wrong digest, a truncated or oversized
//! download, plain http, a failing or hanging self-test, the version
//! already running) happens before `cutover` and changes nothing: not the
//! link, not the unit, not the artifacts directory.
//!
//! Self-upgrade (`agent = true`): the old agent stages and verifies the
//! new windlassd, arms the external revert (run by the *old* binary),
//! swaps the link and asks systemd to restart it, leaving the record in
//! `confirming`. The new agent finds the record at start, checks that it
//! is the new binary and can work, takes its bus name, and only then
//! commits ([`Engine::confirm_self_upgrade`]). If it never gets there the
//! timer's `windlassd --revert` swaps the link back and restarts the old
//! agent.
//!
//! This module never touches a generation, and never deletes the running
//! or the previous version.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{Engine, EngineError, SwitchOptions};
use crate::health::{self, Gate};
use crate::store::{Kind, Outcome, Record, swap_symlink};
use crate::systemd::Systemd;
use crate::targets::{self, TargetError};

/// Where targets are configured and versions kept.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<name>.toml` per target.
    pub targets_dir: PathBuf,
    /// `<target>/<version>/<binary>`.
    pub artifacts_dir: PathBuf,
    /// Downloads in progress, one directory per operation (same file
    /// system as the artifacts, so a verified version moves in by rename).
    pub staging_dir: PathBuf,
    /// This process is `windlassd --revert`, not the agent: undoing a
    /// self-upgrade must start the old agent.
    pub revert_helper: bool,
}

impl Settings {
    pub fn new(state_dir: &Path, targets_dir: &Path) -> Settings {
        Settings {
            targets_dir: targets_dir.to_path_buf(),
            artifacts_dir: state_dir.join("artifacts"),
            staging_dir: state_dir.join("staging"),
            revert_helper: false,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(
            Path::new("/var/lib/windlass"),
            Path::new("/etc/windlass/targets"),
        )
    }
}

/// What a cutover moves, persisted in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutoverState {
    pub target: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub link: PathBuf,
    pub binary: String,
    pub unit: Option<String>,
    pub health_http: Option<String>,
    pub keep: usize,
    pub max_bytes: u64,
    pub self_test_timeout_sec: u64,
    pub agent: bool,
    pub allow_http: bool,
    /// Where the link pointed when the operation started (absolute), the
    /// version to return to; `None`: there was no link.
    pub previous: Option<PathBuf>,
    /// The link was a plain file, copied into `previous` first.
    #[serde(default)]
    pub adopted: bool,
    /// `<artifacts>/<target>/<version>`.
    pub version_dir: PathBuf,
    /// The download's staging directory, while it exists.
    #[serde(default)]
    pub staging: Option<PathBuf>,
    /// This operation created `version_dir` (a revert removes it again).
    #[serde(default)]
    pub fresh: bool,
}

impl CutoverState {
    pub fn new_exe(&self) -> PathBuf {
        self.version_dir.join(&self.binary)
    }

    /// The binary to return to (for the agent: what runs the revert).
    pub fn previous_exe(&self) -> PathBuf {
        self.previous.clone().unwrap_or_else(|| self.link.clone())
    }
}

/// A Cutover call.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub deadline_sec: Option<u64>,
}

impl Request {
    /// Reads the D-Bus options: `deadline` (seconds, t or u).
    pub fn options(
        &mut self,
        options: &std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
    ) -> Result<(), EngineError> {
        for (k, v) in options {
            match k.as_str() {
                "deadline" => {
                    let d = u64::try_from(v.clone())
                        .or_else(|_| u32::try_from(v.clone()).map(u64::from))
                        .map_err(|_| {
                            EngineError::InvalidArgument(
                                "option deadline must be seconds (t or u)".into(),
                            )
                        })?;
                    self.deadline_sec = Some(d);
                }
                other => {
                    return Err(EngineError::InvalidArgument(format!(
                        "unknown option {other:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Where a link points, as an absolute path (`None`: not a symlink).
fn link_target(link: &Path) -> Option<PathBuf> {
    let t = std::fs::read_link(link).ok()?;
    Some(if t.is_absolute() {
        t
    } else {
        link.parent().unwrap_or(Path::new("/")).join(t)
    })
}

fn sha256_file(p: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn fsync_dir(d: &Path) -> std::io::Result<()> {
    std::fs::File::open(d)?.sync_all()
}

/// Copies `from` to `to` (temp file, fsync, rename, fsync dir), keeping
/// its mode.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".adopting-{}", std::process::id()));
    std::fs::copy(from, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    fsync_dir(dir)?;
    if let Some(up) = dir.parent() {
        fsync_dir(up)?;
    }
    Ok(())
}

/// The version a link target names, for the record's `from`.
fn version_of(target_dir: &Path, exe: Option<&Path>, link_is_file: bool) -> Option<String> {
    if link_is_file {
        return Some("(plain file, adopted at cutover)".into());
    }
    let exe = exe?;
    match exe.parent() {
        Some(v) if v.parent() == Some(target_dir) => {
            v.file_name().map(|n| n.to_string_lossy().to_string())
        }
        _ => Some(exe.display().to_string()),
    }
}

fn refusal(e: TargetError) -> EngineError {
    match e {
        TargetError::NotFound { .. } => EngineError::NotFound(e.to_string()),
        TargetError::Invalid { .. } => EngineError::InvalidArgument(e.to_string()),
    }
}

impl<S: Systemd + 'static> Engine<S> {
    /// Starts a cutover; refuses at once (changing nothing) what can be
    /// told without downloading; returns its record, runs in the
    /// background.
    pub fn cutover(self: &Arc<Self>, req: Request) -> Result<Record, EngineError> {
        let t = targets::load(&self.cutover.targets_dir, &req.target).map_err(refusal)?;
        if !targets::valid_name(&req.version) {
            return Err(EngineError::InvalidArgument(format!(
                "version {:?} is not a valid version name (letters, digits, . _ - +)",
                req.version
            )));
        }
        let sha = req.sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::InvalidArgument(format!(
                "sha256 {:?}: expected 64 hex digits",
                req.sha256
            )));
        }
        let scheme = req
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("https") => {}
            Some("http") if t.allow_http => {}
            Some("http") => {
                return Err(EngineError::InvalidArgument(format!(
                    "refusing plain http ({}): downloads must use https",
                    req.url
                )));
            }
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "{:?} is not an https URL",
                    req.url
                )));
            }
        }
        let target_dir = self.cutover.artifacts_dir.join(&t.name);
        let version_dir = target_dir.join(&req.version);
        let new_exe = version_dir.join(&t.binary);
        let meta = std::fs::symlink_metadata(&t.link).ok();
        let link_is_file = meta.as_ref().is_some_and(|m| m.file_type().is_file());
        if meta.as_ref().is_some_and(|m| m.file_type().is_dir()) {
            return Err(EngineError::InvalidArgument(format!(
                "{} is a directory, not a binary or a link",
                t.link.display()
            )));
        }
        let current = link_target(&t.link);
        if current.as_deref() == Some(new_exe.as_path()) {
            return Err(EngineError::InvalidArgument(format!(
                "version {} of {} is already running ({} → {})",
                req.version,
                t.name,
                t.link.display(),
                new_exe.display()
            )));
        }
        if new_exe.exists() {
            let have = sha256_file(&new_exe).map_err(|e| {
                EngineError::Failed(format!("cannot read {}: {e}", new_exe.display()))
            })?;
            if have != sha {
                return Err(EngineError::VerificationFailed(format!(
                    "version {} of {} is on disk with sha256 {have}, not {sha}",
                    req.version, t.name
                )));
            }
        }
        let from = version_of(&target_dir, current.as_deref(), link_is_file);
        let deadline = req.deadline_sec.unwrap_or(t.deadline_sec);
        let mut r = self.begin(
            Kind::Cutover,
            from,
            req.version.clone(),
            &SwitchOptions::default(),
            deadline,
            None,
        )?;
        r.deadline_from_option = req.deadline_sec.is_some();
        r.cutover = Some(CutoverState {
            target: t.name.clone(),
            version: req.version,
            url: req.url,
            sha256: sha,
            link: t.link,
            binary: t.binary,
            unit: t.unit,
            health_http: t.health_http,
            keep: t.keep,
            max_bytes: t.max_bytes,
            self_test_timeout_sec: t.self_test_timeout_sec,
            agent: t.agent,
            allow_http: t.allow_http,
            previous: current,
            adopted: false,
            version_dir,
            staging: None,
            fresh: false,
        });
        let me = self.clone();
        let rec = r.clone();
        tokio::spawn(async move { me.run_cutover(rec).await });
        Ok(r)
    }

    fn state(r: &mut Record) -> &mut CutoverState {
        r.cutover.as_mut().expect("a cutover record has its state")
    }

    /// Ends a cutover before the link was touched: the staging directory
    /// goes, nothing else changed.
    fn refuse(&self, mut r: Record, error: String) {
        if let Some(s) = Self::state(&mut r).staging.take() {
            let _ = std::fs::remove_dir_all(&s);
        }
        let outcome = if self.canceled(&r.id) {
            Outcome::Canceled
        } else {
            Outcome::Failed
        };
        tracing::warn!(
            WINDLASS_OPERATION = r.id.as_str(),
            "cutover refused, nothing changed: {error}"
        );
        self.finish(&mut r, outcome, error);
    }

    async fn run_cutover(self: Arc<Self>, mut r: Record) {
        let c = Self::state(&mut r).clone();
        let new_exe = c.new_exe();
        // Staging.
        let candidate = if new_exe.exists() {
            if let Err(e) = self.save(&mut r, "staging", "already on disk") {
                return self.refuse(r, e.to_string());
            }
            new_exe.clone()
        } else {
            let staging = self.cutover.staging_dir.join(&r.id);
            {
                let s = Self::state(&mut r);
                s.staging = Some(staging.clone());
                s.fresh = true;
            }
            if let Err(e) = self.save(&mut r, "staging", &c.url) {
                return self.refuse(r, e.to_string());
            }
            if let Err(e) = std::fs::create_dir_all(&staging) {
                return self.refuse(r, format!("cannot create {}: {e}", staging.display()));
            }
            let dest = staging.join(&c.binary);
            let reported = Mutex::new(0u64);
            let rec = r.clone();
            let notify = self.notify.clone();
            let progress = move |got: u64, total: Option<u64>| {
                let step = total.map(|t| (t / 10).max(1)).unwrap_or(4 << 20);
                let mut last = reported.lock().unwrap();
                if got - *last >= step || Some(got) == total {
                    *last = got;
                    let detail = match total {
                        Some(t) => format!("received {got} of {t} bytes"),
                        None => format!("received {got} bytes"),
                    };
                    notify.phase(&rec, &detail);
                }
            };
            let opts = windlass_net::download::DownloadOptions {
                sha256: &c.sha256,
                max_bytes: c.max_bytes,
                allow_http: c.allow_http,
                mode: 0o755,
                progress: Some(&progress),
            };
            if let Err(e) =
                windlass_net::download::download_verified(&self.http, &c.url, &dest, &opts).await
            {
                let what = match e {
                    windlass_net::download::DownloadError::ChecksumMismatch { .. } => {
                        "verification failed"
                    }
                    _ => "staging failed",
                };
                return self.refuse(r, format!("{what}: {e}"));
            }
            dest
        };
        if self.canceled(&r.id) {
            return self.refuse(r, "canceled".into());
        }
        // Verifying: the digest once more (the file is ours from here),
        // then the binary's own self-test.
        if let Err(e) = self.save(&mut r, "verifying", &candidate.display().to_string()) {
            return self.refuse(r, e.to_string());
        }
        match tokio::task::spawn_blocking({
            let p = candidate.clone();
            move || sha256_file(&p)
        })
        .await
        {
            Ok(Ok(h)) if h == c.sha256 => {}
            Ok(Ok(h)) => {
                return self.refuse(
                    r,
                    format!(
                        "verification failed: {} has sha256 {h}, not {}",
                        candidate.display(),
                        c.sha256
                    ),
                );
            }
            Ok(Err(e)) => {
                return self.refuse(r, format!("cannot read {}: {e}", candidate.display()));
            }
            Err(e) => return self.refuse(r, e.to_string()),
        }
        let mut argv = vec![
            candidate.to_string_lossy().to_string(),
            "--self-test".to_string(),
        ];
        if c.agent {
            // The new agent checks the state this agent uses.
            if let Some(state) = self.cutover.artifacts_dir.parent() {
                argv.push("--state-dir".into());
                argv.push(state.to_string_lossy().to_string());
            }
            argv.push("--targets".into());
            argv.push(self.cutover.targets_dir.to_string_lossy().to_string());
        }
        let timeout = Duration::from_secs(c.self_test_timeout_sec);
        match self
            .systemd
            .run_checked(&format!("windlass-self-test-{}", r.id), &argv, timeout)
            .await
        {
            Ok(ch) if ch.ok => {}
            Ok(ch) => {
                return self.refuse(
                    r,
                    format!(
                        "verification failed: {} --self-test: {}",
                        candidate.display(),
                        ch.detail
                    ),
                );
            }
            Err(e) => {
                return self.refuse(
                    r,
                    format!("verification failed: cannot run the self-test: {e}"),
                );
            }
        }
        if self.canceled(&r.id) {
            return self.refuse(r, "canceled".into());
        }
        self.swap_in(r).await;
    }

    /// The `cutover` and `confirming` phases.
    async fn swap_in(self: Arc<Self>, mut r: Record) {
        let c = Self::state(&mut r).clone();
        let target_dir = self.cutover.artifacts_dir.join(&c.target);
        // Adopt a plain file at the link: copy it into a versioned
        // directory, so the link can point back at it. The file itself is
        // replaced only by the rename below (no moment without it).
        if std::fs::symlink_metadata(&c.link).is_ok_and(|m| m.file_type().is_file()) {
            let adopted = match sha256_file(&c.link) {
                Ok(h) => target_dir
                    .join(format!("adopted-{}", &h[..12]))
                    .join(&c.binary),
                Err(e) => {
                    return self.refuse(r, format!("cannot read {}: {e}", c.link.display()));
                }
            };
            if !adopted.exists()
                && let Err(e) = copy_durably(&c.link, &adopted)
            {
                return self.refuse(
                    r,
                    format!(
                        "cannot adopt {} into {}: {e}",
                        c.link.display(),
                        adopted.display()
                    ),
                );
            }
            let s = Self::state(&mut r);
            s.previous = Some(adopted);
            s.adopted = true;
        }
        let detail = format!("{} → {}", c.link.display(), c.new_exe().display());
        if let Err(e) = self.save(&mut r, "cutover", &detail) {
            return self.refuse(r, e.to_string());
        }
        self.arm(&r).await;
        let res: std::io::Result<()> = (|| {
            if let Some(staging) = Self::state(&mut r).staging.clone() {
                std::fs::create_dir_all(&target_dir)?;
                std::fs::rename(&staging, &c.version_dir)?;
                fsync_dir(&target_dir)?;
                Self::state(&mut r).staging = None;
            }
            swap_symlink(&c.link, &c.new_exe())
        })();
        if let Err(e) = res {
            let msg = format!("cannot swap {}: {e}", c.link.display());
            return self.revert(r, msg, Outcome::RolledBack).await;
        }
        if c.agent {
            return self.restart_self(r).await;
        }
        if let Some(u) = &c.unit
            && let Err(e) = self.systemd.enqueue("restart", u).await
        {
            let msg = format!("cannot restart {u}: {e}");
            return self.revert(r, msg, Outcome::RolledBack).await;
        }
        if let Err(e) = self.save(&mut r, "confirming", "") {
            return self.revert(r, e.to_string(), Outcome::RolledBack).await;
        }
        self.confirm_cutover(r).await;
    }

    async fn confirm_cutover(self: Arc<Self>, r: Record) {
        let c = r.cutover.clone().expect("a cutover record");
        let gate = Gate {
            units: c.unit.iter().cloned().collect(),
            http: c.health_http.iter().cloned().collect(),
            deadline: Duration::from_secs(r.deadline_sec),
            poll: self.poll,
        };
        let id = r.id.clone();
        let canceled = || self.canceled(&id);
        match health::wait(&self.systemd, &gate, &self.http, canceled).await {
            Ok(()) => self.commit_cutover(r).await,
            Err(f) => {
                let outcome = if f.reason == "canceled" {
                    Outcome::Canceled
                } else {
                    Outcome::RolledBack
                };
                let mut msg = f.reason.clone();
                if let Some(u) = &f.unit
                    && let Ok(lines) = self.systemd.journal(u, 20).await
                {
                    msg.push_str(&format!(
                        "\n--- last journal lines of {u} ---\n{}",
                        lines.join("\n")
                    ));
                }
                self.revert(r, msg, outcome).await
            }
        }
    }

    async fn commit_cutover(&self, mut r: Record) {
        if let Err(e) = self.save(&mut r, "committing", "") {
            tracing::error!("{e}");
        }
        let c = r.cutover.clone().expect("a cutover record");
        // The version in use is the newest; pruning keeps the newest.
        if let Ok(d) = std::fs::File::open(&c.version_dir) {
            let _ = d.set_modified(std::time::SystemTime::now());
        }
        let target_dir = self.cutover.artifacts_dir.join(&c.target);
        for gone in prune(&target_dir, &c) {
            tracing::info!(
                WINDLASS_OPERATION = r.id.as_str(),
                "removed old version {}",
                gone.display()
            );
        }
        self.disarm(&r).await;
        self.finish(&mut r, Outcome::Committed, String::new());
    }

    /// Swaps the link back to the version recorded at the start and
    /// restarts the unit (for the agent: queues the restart and returns,
    /// the old agent takes over).
    async fn revert(&self, mut r: Record, error: String, outcome: Outcome) {
        if let Err(e) = self.save(&mut r, "rolling-back", &error) {
            tracing::error!("{e}");
        }
        let c = r.cutover.clone().expect("a cutover record");
        let back = match &c.previous {
            Some(p) => swap_symlink(&c.link, p),
            None => match std::fs::remove_file(&c.link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => fsync_dir(c.link.parent().unwrap_or(Path::new("/"))),
            },
        };
        if let Err(e) = back {
            let msg = format!(
                "{error}\nand swapping {} back failed: {e}",
                c.link.display()
            );
            self.finish(&mut r, Outcome::Failed, msg);
            return self.disarm(&r).await;
        }
        if let Some(s) = &c.staging {
            let _ = std::fs::remove_dir_all(s);
        }
        if c.fresh && link_target(&c.link).as_deref() != Some(c.new_exe().as_path()) {
            let _ = std::fs::remove_dir_all(&c.version_dir);
        }
        let mut res = Ok(());
        if let Some(u) = &c.unit {
            if c.agent {
                // The old agent needs the state lock this process holds:
                // queue its start and let this process end. (When this
                // process is the old agent, it is running already.)
                if self.cutover.revert_helper
                    || !is_this_binary(std::env::current_exe().ok().as_deref(), &c.previous_exe())
                {
                    res = self
                        .systemd
                        .enqueue("restart", u)
                        .await
                        .map_err(|e| format!("cannot restart {u}: {e}"));
                }
            } else {
                res = match self.systemd.enqueue("restart", u).await {
                    Err(e) => Err(format!("cannot restart {u}: {e}")),
                    Ok(()) => {
                        // The previous version was healthy before; its
                        // unit active again is enough to call it back (an
                        // HTTP check failing for a reason outside the
                        // binary must not hold the way back hostage).
                        let gate = Gate {
                            units: vec![u.clone()],
                            http: Vec::new(),
                            deadline: Duration::from_secs(r.deadline_sec.max(1)),
                            poll: self.poll,
                        };
                        health::wait(&self.systemd, &gate, &self.http, || false)
                            .await
                            .map_err(|f| {
                                format!("the previous version is not healthy again: {}", f.reason)
                            })
                    }
                };
            }
        }
        match res {
            Ok(()) => self.finish(&mut r, outcome, error),
            Err(e) => self.finish(&mut r, Outcome::Failed, format!("{error}\nand {e}")),
        }
        // Last: run by the revert timer, this process lives in the unit
        // that disarming stops.
        self.disarm(&r).await;
    }

    /// Self-upgrade, old agent: the link names the new agent; ask systemd
    /// to restart us and leave the record for the new agent to commit.
    async fn restart_self(self: Arc<Self>, mut r: Record) {
        let c = r.cutover.clone().expect("a cutover record");
        let unit = c.unit.clone().unwrap_or_else(|| "windlassd.service".into());
        if let Err(e) = self.save(
            &mut r,
            "confirming",
            "restarting windlassd into the new version",
        ) {
            return self.revert(r, e.to_string(), Outcome::RolledBack).await;
        }
        if let Err(e) = self.systemd.enqueue("restart", &unit).await {
            // Still the old agent, still running: put the link back.
            let mut r = r;
            if let Some(p) = &c.previous
                && let Err(e2) = swap_symlink(&c.link, p)
            {
                self.disarm(&r).await;
                return self.finish(
                    &mut r,
                    Outcome::Failed,
                    format!("cannot restart {unit}: {e}\nand swapping back failed: {e2}"),
                );
            }
            if c.fresh {
                let _ = std::fs::remove_dir_all(&c.version_dir);
            }
            self.disarm(&r).await;
            return self.finish(
                &mut r,
                Outcome::RolledBack,
                format!("cannot restart {unit}: {e}"),
            );
        }
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            "restart of {unit} queued; the new agent commits"
        );
    }

    /// Self-upgrade, new agent: called once the bus name is ours. Commits
    /// a pending self-upgrade whose new binary is this process, after
    /// checking that this agent can work; else swaps back.
    pub async fn confirm_self_upgrade(self: &Arc<Self>) {
        let me = std::env::current_exe().ok();
        for r in self.store.all().unwrap_or_default() {
            let Some(c) = r.cutover.clone() else { continue };
            if r.finished() || !c.agent {
                continue;
            }
            if !is_this_binary(me.as_deref(), &c.new_exe()) {
                continue;
            }
            match self_check(&self.cutover) {
                Ok(()) => self.commit_cutover(r).await,
                Err(e) => {
                    self.revert(
                        r,
                        format!("the new agent failed its check: {e}"),
                        Outcome::RolledBack,
                    )
                    .await
                }
            }
        }
    }
}

fn is_this_binary(me: Option<&Path>, exe: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    match me {
        Some(m) => canon(m).is_some() && canon(m) == canon(exe),
        None => false,
    }
}

/// What the new agent needs: its state directories writable.
fn self_check(s: &Settings) -> std::io::Result<()> {
    std::fs::create_dir_all(&s.staging_dir)?;
    let p = s
        .staging_dir
        .join(format!(".self-check-{}", std::process::id()));
    std::fs::write(&p, b"ok")?;
    std::fs::remove_file(&p)
}

/// Removes old versions beyond `keep`, newest (by modification time)
/// kept first; never the version just committed nor the previous one.
pub fn prune(target_dir: &Path, c: &CutoverState) -> Vec<PathBuf> {
    let protected: Vec<PathBuf> = [
        Some(c.version_dir.clone()),
        c.previous
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Ok(entries) = std::fs::read_dir(target_dir) else {
        return Vec::new();
    };
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| !protected.contains(p))
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    others.sort_by_key(|b| std::cmp::Reverse(b.0));
    let room = c.keep.saturating_sub(protected.len());
    let mut removed = Vec::new();
    for (_, p) in others.into_iter().skip(room) {
        if std::fs::remove_dir_all(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Resolves an unfinished cutover after a restart (or from the external
/// revert): before the link was touched, nothing changed (canceled);
/// after, swap back (rolled-back); a commit in progress is finished. A
/// self-upgrade whose new agent is this process waits for
/// [`Engine::confirm_self_upgrade`].
pub async fn recover<S: Systemd + 'static>(engine: &Arc<Engine<S>>, mut r: Record) {
    let phase = r.phase.clone();
    let why = format!("interrupted during {phase} (agent restart)");
    let Some(c) = r.cutover.clone() else {
        return engine.finish(
            &mut r,
            Outcome::Canceled,
            format!("{why}; nothing was changed"),
        );
    };
    match phase.as_str() {
        "recorded" | "staging" | "verifying" => {
            if let Some(s) = &c.staging {
                let _ = std::fs::remove_dir_all(s);
            }
            engine.finish(
                &mut r,
                Outcome::Canceled,
                format!("{why}; nothing was changed"),
            );
            engine.disarm(&r).await;
        }
        "committing" => engine.commit_cutover(r).await,
        "cutover" | "confirming"
            if c.agent && is_this_binary(std::env::current_exe().ok().as_deref(), &c.new_exe()) =>
        {
            tracing::info!(
                WINDLASS_OPERATION = r.id.as_str(),
                "this is the new agent of a self-upgrade: committing once on the bus"
            );
        }
        _ => {
            let why = if c.agent {
                format!("the new agent did not come up healthy in time ({phase})")
            } else {
                why
            };
            engine.revert(r, why, Outcome::RolledBack).await
        }
    }
}
