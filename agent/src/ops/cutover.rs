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
//! commits ([`confirm_self_upgrade`]). If it never gets there the timer's
//! `windlassd --revert` swaps the link back and restarts the old agent.
//!
//! This module never touches a generation, and never deletes the running
//! or the previous version.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::runner::{OpError, Runner};
use super::steps;
use crate::durable::{copy_durably, fsync_dir, link_target, sha256_file, swap_symlink};
use crate::health::Gate;
use crate::record::{CutoverOp, CutoverPhase, CutoverState, Outcome, Record};
use crate::systemd::{Systemd, Verb};
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

/// A Cutover call.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub deadline_sec: Option<u64>,
    /// The caller's request id (see [`Record::request`]).
    pub request: Option<String>,
}

/// What a cutover runs with: the runner and the cutover settings.
pub struct Cx<P, S> {
    pub rn: Arc<Runner<P, S>>,
    pub settings: Arc<Settings>,
}

impl<P, S> Clone for Cx<P, S> {
    fn clone(&self) -> Self {
        Cx {
            rn: self.rn.clone(),
            settings: self.settings.clone(),
        }
    }
}

type Rec = Record<CutoverOp>;

/// How often a download looks whether it was canceled.
const CANCEL_POLL: Duration = Duration::from_millis(200);

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

fn refusal(e: TargetError) -> OpError {
    match e {
        TargetError::NotFound { .. } => OpError::NotFound(e.to_string()),
        TargetError::Invalid { .. } => OpError::InvalidArgument(e.to_string()),
    }
}

fn check_url(url: &str, allow_http: bool) -> Result<(), OpError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => Ok(()),
        Some("http") if allow_http => Ok(()),
        Some("http") => Err(OpError::InvalidArgument(format!(
            "refusing plain http ({url}): downloads must use https"
        ))),
        _ => Err(OpError::InvalidArgument(format!(
            "{url:?} is not an https URL"
        ))),
    }
}

impl<P: Send + Sync + 'static, S: Systemd + 'static> Cx<P, S> {
    /// Starts a cutover; refuses at once (changing nothing) what can be
    /// told without downloading; returns its record, runs in the
    /// background.
    pub fn start(&self, req: Request) -> Result<Rec, OpError> {
        let t = targets::load(&self.settings.targets_dir, &req.target).map_err(refusal)?;
        if !targets::valid_name(&req.version) {
            return Err(OpError::InvalidArgument(format!(
                "version {:?} is not a valid version name (letters, digits, . _ - +)",
                req.version
            )));
        }
        let sha = req.sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OpError::InvalidArgument(format!(
                "sha256 {:?}: expected 64 hex digits",
                req.sha256
            )));
        }
        check_url(&req.url, t.allow_http)?;
        let target_dir = self.settings.artifacts_dir.join(&t.name);
        let version_dir = target_dir.join(&req.version);
        let new_exe = version_dir.join(&t.binary);
        let meta = std::fs::symlink_metadata(&t.link).ok();
        let link_is_file = meta.as_ref().is_some_and(|m| m.file_type().is_file());
        if meta.as_ref().is_some_and(|m| m.file_type().is_dir()) {
            return Err(OpError::InvalidArgument(format!(
                "{} is a directory, not a binary or a link",
                t.link.display()
            )));
        }
        let current = link_target(&t.link);
        if current.as_deref() == Some(new_exe.as_path()) {
            return Err(OpError::InvalidArgument(format!(
                "version {} of {} is already running ({} → {})",
                req.version,
                t.name,
                t.link.display(),
                new_exe.display()
            )));
        }
        if new_exe.exists() {
            let have = sha256_file(&new_exe)
                .map_err(|e| OpError::Failed(format!("cannot read {}: {e}", new_exe.display())))?;
            if have != sha {
                return Err(OpError::VerificationFailed(format!(
                    "version {} of {} is on disk with sha256 {have}, not {sha}",
                    req.version, t.name
                )));
            }
        }
        let mut r = self.rn.record(CutoverOp {
            phase: CutoverPhase::Recorded,
            from_version: version_of(&target_dir, current.as_deref(), link_is_file),
            to_version: req.version.clone(),
            cutover: Box::new(CutoverState {
                target: t.name.clone(),
                version: req.version,
                // Only ever shown without its credentials; the download
                // below uses the real one, which is kept nowhere.
                url: crate::redact::url(&req.url),
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
            }),
        });
        r.deadline_sec = req.deadline_sec.unwrap_or(t.deadline_sec);
        r.deadline_from_option = req.deadline_sec.is_some();
        r.request = req.request;
        let r = self.rn.begin(r)?;
        let me = self.clone();
        let rec = r.clone();
        let url = req.url;
        tokio::spawn(async move { me.run(rec, url).await });
        Ok(r)
    }

    /// Ends a cutover before the link was touched: the staging directory
    /// goes, nothing else changed.
    async fn refuse(&self, mut r: Rec, error: String) -> Rec {
        let error = crate::redact::text(&error);
        if let Some(s) = r.op.cutover.staging.take() {
            let _ = std::fs::remove_dir_all(&s);
        }
        let outcome = if self.rn.canceled(&r) {
            Outcome::Canceled
        } else {
            Outcome::Failed
        };
        tracing::warn!(
            WINDLASS_OPERATION = r.id.as_str(),
            "cutover refused, nothing changed: {error}"
        );
        self.rn.end(r, outcome, error, None).await
    }

    async fn run(self, mut r: Rec, url: String) -> Rec {
        let candidate = match self.stage(&mut r, &url).await {
            Ok(p) => p,
            Err(e) => return self.refuse(r, e).await,
        };
        if self.rn.canceled(&r) {
            return self.refuse(r, "canceled".into()).await;
        }
        if let Err(e) = self.verify(&mut r, &candidate).await {
            return self.refuse(r, e).await;
        }
        if self.rn.canceled(&r) {
            return self.refuse(r, "canceled".into()).await;
        }
        self.swap_in(r).await
    }

    /// `staging`: the new version on disk, verified by the download
    /// (unless already there); returns the binary to check. The external
    /// revert is armed from here, for the whole operation; Cancel stops a
    /// download within a fraction of a second.
    async fn stage(&self, r: &mut Rec, url: &str) -> Result<PathBuf, String> {
        let c = r.op.cutover.clone();
        let new_exe = c.new_exe();
        if new_exe.exists() {
            self.rn
                .save(r, CutoverPhase::Staging, "already on disk")
                .map_err(|e| e.to_string())?;
            self.arm_for_staging(r).await;
            return Ok(new_exe);
        }
        let staging = self.settings.staging_dir.join(r.id.as_str());
        r.op.cutover.staging = Some(staging.clone());
        r.op.cutover.fresh = true;
        self.rn
            .save(r, CutoverPhase::Staging, &c.url)
            .map_err(|e| e.to_string())?;
        self.arm_for_staging(r).await;
        std::fs::create_dir_all(&staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        let dest = staging.join(&c.binary);
        let reported = Mutex::new(0u64);
        let (id, notify) = (r.id.clone(), self.rn.notify.clone());
        let progress = move |got: u64, total: Option<u64>| {
            let step = total.map(|t| (t / 10).max(1)).unwrap_or(4 << 20);
            let mut last = reported.lock().unwrap();
            if got - *last >= step || Some(got) == total {
                *last = got;
                let detail = match total {
                    Some(t) => format!("received {got} of {t} bytes"),
                    None => format!("received {got} bytes"),
                };
                notify.phase(&id, CutoverPhase::Staging.as_str(), &detail);
            }
        };
        let opts = windlass_net::download::DownloadOptions {
            sha256: &c.sha256,
            max_bytes: c.max_bytes,
            allow_http: c.allow_http,
            mode: 0o755,
            progress: Some(&progress),
        };
        let res = {
            let download =
                windlass_net::download::download_verified(&self.rn.http, url, &dest, &opts);
            tokio::pin!(download);
            loop {
                tokio::select! {
                    res = &mut download => break res,
                    _ = tokio::time::sleep(CANCEL_POLL) => {
                        if self.rn.canceled(r) {
                            return Err("canceled".into());
                        }
                    }
                }
            }
        };
        res.map_err(|e| {
            let what = match e {
                windlass_net::download::DownloadError::ChecksumMismatch { .. } => {
                    "verification failed"
                }
                _ => "staging failed",
            };
            format!("{what}: {e}")
        })?;
        Ok(dest)
    }

    /// The external revert, armed when staging begins: it covers the
    /// download (bounded by its own cap), the self-test and the gate, so
    /// that an agent stuck anywhere in the operation is still undone.
    /// Re-armed for the gate alone once the link is swapped.
    async fn arm_for_staging(&self, r: &Rec) {
        let budget = windlass_net::download::DOWNLOAD_TIMEOUT
            .as_secs()
            .saturating_add(r.op.cutover.self_test_timeout_sec);
        let mut armed = r.clone();
        armed.deadline_sec = r.deadline_sec.saturating_add(budget);
        self.rn.arm(&armed).await;
    }

    /// `verifying`: the digest once more (the file is ours from here),
    /// then the binary's own self-test.
    async fn verify(&self, r: &mut Rec, candidate: &Path) -> Result<(), String> {
        let c = r.op.cutover.clone();
        self.rn
            .save(r, CutoverPhase::Verifying, &candidate.display().to_string())
            .map_err(|e| e.to_string())?;
        let p = candidate.to_path_buf();
        match tokio::task::spawn_blocking(move || sha256_file(&p)).await {
            Ok(Ok(h)) if h == c.sha256 => {}
            Ok(Ok(h)) => {
                return Err(format!(
                    "verification failed: {} has sha256 {h}, not {}",
                    candidate.display(),
                    c.sha256
                ));
            }
            Ok(Err(e)) => return Err(format!("cannot read {}: {e}", candidate.display())),
            Err(e) => return Err(e.to_string()),
        }
        let mut argv = vec![
            candidate.to_string_lossy().to_string(),
            "--self-test".to_string(),
        ];
        let mut writable = Vec::new();
        if c.agent {
            // The new agent checks the state this agent uses.
            if let Some(state) = self.settings.artifacts_dir.parent() {
                argv.push("--state-dir".into());
                argv.push(state.to_string_lossy().to_string());
                writable.push(state.to_string_lossy().to_string());
            }
            argv.push("--targets".into());
            argv.push(self.settings.targets_dir.to_string_lossy().to_string());
        }
        let timeout = Duration::from_secs(c.self_test_timeout_sec);
        match self
            .rn
            .systemd
            .run_checked(
                &format!("windlass-self-test-{}", r.id),
                &argv,
                timeout,
                &writable,
            )
            .await
        {
            Ok(ch) if ch.ok => Ok(()),
            Ok(ch) => Err(format!(
                "verification failed: {} --self-test: {}",
                candidate.display(),
                ch.detail
            )),
            Err(e) => Err(format!(
                "verification failed: cannot run the self-test: {e}"
            )),
        }
    }

    /// Adopts a plain file at the link: copies it into a versioned
    /// directory, so the link can point back at it. The file itself is
    /// replaced only by the link's rename (no moment without it).
    fn adopt(&self, r: &mut Rec) -> Result<(), String> {
        let c = &r.op.cutover;
        if !std::fs::symlink_metadata(&c.link).is_ok_and(|m| m.file_type().is_file()) {
            return Ok(());
        }
        let target_dir = self.settings.artifacts_dir.join(&c.target);
        let h =
            sha256_file(&c.link).map_err(|e| format!("cannot read {}: {e}", c.link.display()))?;
        let adopted = target_dir
            .join(format!("adopted-{}", &h[..12]))
            .join(&c.binary);
        if !adopted.exists() {
            copy_durably(&c.link, &adopted).map_err(|e| {
                format!(
                    "cannot adopt {} into {}: {e}",
                    c.link.display(),
                    adopted.display()
                )
            })?;
        }
        let dirs: Vec<&Path> = adopted.ancestors().skip(1).take(3).collect();
        install_modes(&dirs, &adopted)
            .map_err(|e| format!("cannot set the modes of {}: {e}", adopted.display()))?;
        r.op.cutover.previous = Some(adopted);
        r.op.cutover.adopted = true;
        Ok(())
    }

    /// The `cutover` and `confirming` phases.
    async fn swap_in(self, mut r: Rec) -> Rec {
        if let Err(e) = self.adopt(&mut r) {
            return self.refuse(r, e).await;
        }
        let c = r.op.cutover.clone();
        let detail = format!("{} → {}", c.link.display(), c.new_exe().display());
        if let Err(e) = self.rn.save(&mut r, CutoverPhase::Cutover, &detail) {
            return self.refuse(r, e.to_string()).await;
        }
        // From here the deadline is the gate's (the one armed at staging
        // covered the download).
        self.rn.rearm_for_gate(&r, false).await;
        let target_dir = self.settings.artifacts_dir.join(&c.target);
        let res: std::io::Result<()> = (|| {
            if let Some(staging) = r.op.cutover.staging.clone() {
                std::fs::create_dir_all(&target_dir)?;
                std::fs::rename(&staging, &c.version_dir)?;
                fsync_dir(&target_dir)?;
                r.op.cutover.staging = None;
            }
            let dirs = [&self.settings.artifacts_dir, &target_dir, &c.version_dir];
            install_modes(&dirs.map(PathBuf::as_path), &c.new_exe())?;
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
            && let Err(e) = self.rn.systemd.enqueue(Verb::Restart, u).await
        {
            let msg = format!("cannot restart {u}: {e}");
            return self.revert(r, msg, Outcome::RolledBack).await;
        }
        if let Err(e) = self.rn.save(&mut r, CutoverPhase::Confirming, "") {
            return self.revert(r, e.to_string(), Outcome::RolledBack).await;
        }
        self.confirm(r).await
    }

    /// `confirming`: the unit active and its probe answering, within the
    /// deadline; else back.
    async fn confirm(self, mut r: Rec) -> Rec {
        let c = &r.op.cutover;
        let gate = Gate {
            units: c.unit.iter().cloned().collect(),
            http: c.health_http.iter().cloned().collect(),
            deadline: Duration::from_secs(r.deadline_sec),
            poll: self.rn.poll,
        };
        match steps::wait_cancellable(&self.rn, &r, &gate).await {
            Ok(()) => self.commit(r).await,
            Err(f) => {
                let (outcome, msg) = steps::explain(&self.rn, &mut r, f).await;
                self.revert(r, msg, outcome).await
            }
        }
    }

    async fn commit(&self, mut r: Rec) -> Rec {
        if let Err(e) = self.rn.save(&mut r, CutoverPhase::Committing, "") {
            tracing::error!("{e}");
        }
        let c = &r.op.cutover;
        // The version in use is the newest; pruning keeps the newest.
        if let Ok(d) = std::fs::File::open(&c.version_dir) {
            let _ = d.set_modified(std::time::SystemTime::now());
        }
        let target_dir = self.settings.artifacts_dir.join(&c.target);
        for gone in prune(&target_dir, c) {
            tracing::info!(
                WINDLASS_OPERATION = r.id.as_str(),
                "removed old version {}",
                gone.display()
            );
        }
        self.rn
            .end(r, Outcome::Committed, String::new(), None)
            .await
    }

    /// Swaps the link back to the version recorded at the start and
    /// restarts the unit (for the agent: queues the restart and returns,
    /// the old agent takes over).
    async fn revert(&self, mut r: Rec, error: String, outcome: Outcome) -> Rec {
        if let Err(e) = self.rn.save(&mut r, CutoverPhase::RollingBack, &error) {
            tracing::error!("{e}");
        }
        let c = r.op.cutover.clone();
        if let Err(e) = swap_back(&c) {
            let msg = format!(
                "{error}\nand swapping {} back failed: {e}",
                c.link.display()
            );
            return self.rn.end(r, Outcome::Failed, msg, None).await;
        }
        if let Some(s) = &c.staging {
            let _ = std::fs::remove_dir_all(s);
        }
        if c.fresh && link_target(&c.link).as_deref() != Some(c.new_exe().as_path()) {
            let _ = std::fs::remove_dir_all(&c.version_dir);
        }
        let res = match &c.unit {
            None => Ok(()),
            Some(u) if c.agent => self.restart_old_agent(&c, u).await,
            Some(u) => self.restart_previous(&r, u).await,
        };
        match res {
            Ok(()) => self.rn.end(r, outcome, error, None).await,
            Err(e) => {
                let msg = format!("{error}\nand {e}");
                self.rn.end(r, Outcome::Failed, msg, None).await
            }
        }
    }

    /// The old agent needs the state lock this process holds: queue its
    /// start and let this process end. (When this process is the old
    /// agent, it is running already.)
    async fn restart_old_agent(&self, c: &CutoverState, unit: &str) -> Result<(), String> {
        let me = std::env::current_exe().ok();
        if self.settings.revert_helper || !is_this_binary(me.as_deref(), &c.previous_exe()) {
            self.rn
                .systemd
                .enqueue(Verb::Restart, unit)
                .await
                .map_err(|e| format!("cannot restart {unit}: {e}"))?;
        }
        Ok(())
    }

    /// Restarts the previous version. It was healthy before; its unit
    /// active again is enough to call it back (an HTTP check failing for
    /// a reason outside the binary must not hold the way back hostage).
    async fn restart_previous(&self, r: &Rec, unit: &str) -> Result<(), String> {
        self.rn
            .systemd
            .enqueue(Verb::Restart, unit)
            .await
            .map_err(|e| format!("cannot restart {unit}: {e}"))?;
        let gate = Gate {
            units: vec![unit.to_string()],
            http: Vec::new(),
            deadline: Duration::from_secs(r.deadline_sec.max(1)),
            poll: self.rn.poll,
        };
        steps::wait(&self.rn, &r.id, &gate)
            .await
            .map_err(|f| format!("the previous version is not healthy again: {f}"))
    }

    /// Self-upgrade, old agent: the link names the new agent; ask systemd
    /// to restart us and leave the record for the new agent to commit.
    async fn restart_self(self, mut r: Rec) -> Rec {
        let c = r.op.cutover.clone();
        let unit = c.unit.clone().unwrap_or_else(|| "windlassd.service".into());
        let detail = "restarting windlassd into the new version";
        if let Err(e) = self.rn.save(&mut r, CutoverPhase::Confirming, detail) {
            return self.revert(r, e.to_string(), Outcome::RolledBack).await;
        }
        if let Err(e) = self.rn.systemd.enqueue(Verb::Restart, &unit).await {
            // Still the old agent, still running: put the link back.
            if let Some(p) = &c.previous
                && let Err(e2) = swap_symlink(&c.link, p)
            {
                let msg = format!("cannot restart {unit}: {e}\nand swapping back failed: {e2}");
                return self.rn.end(r, Outcome::Failed, msg, None).await;
            }
            if c.fresh {
                let _ = std::fs::remove_dir_all(&c.version_dir);
            }
            let msg = format!("cannot restart {unit}: {e}");
            return self.rn.end(r, Outcome::RolledBack, msg, None).await;
        }
        tracing::info!(
            WINDLASS_OPERATION = r.id.as_str(),
            "restart of {unit} queued; the new agent commits"
        );
        r
    }

    /// Resolves a cutover found unfinished at start (or by the external
    /// revert): before the link was touched, nothing changed (canceled);
    /// after, swap back (rolled-back); a commit in progress is finished.
    /// A self-upgrade whose new agent is this process waits for
    /// [`confirm_self_upgrade`].
    pub async fn recover(&self, r: Rec, why: String) -> Rec {
        let c = r.op.cutover.clone();
        let new_agent =
            c.agent && is_this_binary(std::env::current_exe().ok().as_deref(), &c.new_exe());
        match r.phase() {
            CutoverPhase::Recorded | CutoverPhase::Staging | CutoverPhase::Verifying => {
                if let Some(s) = &c.staging {
                    let _ = std::fs::remove_dir_all(s);
                }
                let msg = format!("{why}; nothing was changed");
                self.rn.end(r, Outcome::Canceled, msg, None).await
            }
            CutoverPhase::Committing => self.commit(r).await,
            CutoverPhase::Cutover | CutoverPhase::Confirming if new_agent => {
                tracing::info!(
                    WINDLASS_OPERATION = r.id.as_str(),
                    "this is the new agent of a self-upgrade: committing once on the bus"
                );
                r
            }
            CutoverPhase::Cutover | CutoverPhase::Confirming | CutoverPhase::RollingBack => {
                let why = if c.agent {
                    format!(
                        "the new agent did not come up healthy in time ({})",
                        r.phase()
                    )
                } else {
                    why
                };
                self.revert(r, why, Outcome::RolledBack).await
            }
            CutoverPhase::Finished => {
                let msg = format!("{why}; finished without a result");
                self.rn.end(r, Outcome::Failed, msg, None).await
            }
        }
    }

    /// Self-upgrade, new agent: called once the bus name is ours. Commits
    /// a pending self-upgrade whose new binary is this process, after
    /// checking that this agent can work; else swaps back.
    pub async fn confirm_self_upgrade(&self) {
        let me = std::env::current_exe().ok();
        for r in self.rn.store.all() {
            let Some(r) = r.downcast::<CutoverOp>() else {
                continue;
            };
            let c = &r.op.cutover;
            if r.finished() || !c.agent || !is_this_binary(me.as_deref(), &c.new_exe()) {
                continue;
            }
            match self_check(&self.settings) {
                Ok(()) => {
                    self.commit(r).await;
                }
                Err(e) => {
                    let msg = format!("the new agent failed its check: {e}");
                    self.revert(r, msg, Outcome::RolledBack).await;
                }
            }
        }
    }
}

/// Versions are installed as a package manager installs them: the
/// binary and the directories down to it (artifacts, target, version)
/// 0755, whatever the agent's umask (the unit's is 0077): the link is the
/// path users and units run.
fn install_modes(dirs: &[&Path], binary: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for p in dirs.iter().copied().chain([binary]) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Points the link back at the version recorded at the start (or removes
/// it, when there was none).
fn swap_back(c: &CutoverState) -> std::io::Result<()> {
    match &c.previous {
        Some(p) => swap_symlink(&c.link, p),
        None => match std::fs::remove_file(&c.link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => fsync_dir(c.link.parent().unwrap_or(Path::new("/"))),
        },
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
