//! The drift task: waits for events (inotify on the owned and admin
//! directories, systemd's `Reloading` and `UnitFilesChanged`, the
//! operation slot), debounces them, scans what they touch, and reports
//! what changed. Between events nothing runs: no timer exists unless an
//! event is pending, and full scans come at start, after every
//! operation, on `ScanDrift` (the drift-scan timer) and when inotify lost
//! events.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::drift::owned::{self, Owned};
use crate::drift::scan::{self, Baseline, Findings, Scope};
use crate::drift::{Coverage, DriftReport, Finding, Request, compare};
use crate::durable::now;
use crate::ops::Engine;
use crate::ops::runner::OpError;
use crate::platform::Platform;
use crate::systemd::{SysEvent, Systemd};

/// How the task runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The root the admin directories are under (`/`; a temp root in
    /// tests).
    pub root: PathBuf,
    /// Quiet time after the last event before a scan...
    pub quiet: Duration,
    /// ...but no later than this after the first.
    pub cap: Duration,
    /// Whether apps with the `restore` policy are restored on their own
    /// (`windlassd --drift report` reports only).
    pub restore: bool,
    /// Whether inotify is used (tests turn it off to feed events).
    pub inotify: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/"),
            quiet: Duration::from_millis(250),
            cap: Duration::from_secs(1),
            restore: true,
            inotify: true,
        }
    }
}

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// An entry of `dir` changed (`name`; `dir_created`: a directory was
    /// made there).
    Changed {
        dir: PathBuf,
        name: Option<OsString>,
        dir_created: bool,
    },
    /// The kernel's event queue overflowed: events were lost.
    Overflow,
    /// A watched directory went away.
    Lost(PathBuf),
}

/// inotify watches on a set of directories.
struct Watcher {
    stream: inotify::EventStream<Vec<u8>>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::ONLYDIR);

impl Watcher {
    fn new() -> std::io::Result<Watcher> {
        let stream = Inotify::init()?.into_event_stream(vec![0u8; 16 * 1024])?;
        Ok(Watcher {
            stream,
            dirs: HashMap::new(),
        })
    }

    /// Watches exactly `want` (those that exist). Returns whether every
    /// existing one could be watched.
    fn set(&mut self, want: &BTreeSet<PathBuf>) -> bool {
        let mut w = self.stream.watches();
        let stale: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, d)| !want.contains(*d))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in stale {
            self.dirs.remove(&wd);
            let _ = w.remove(wd);
        }
        let have: BTreeSet<PathBuf> = self.dirs.values().cloned().collect();
        let mut ok = true;
        for d in want.difference(&have) {
            if !d.is_dir() {
                continue;
            }
            match w.add(d, DIR_MASK) {
                Ok(wd) => {
                    self.dirs.insert(wd, d.clone());
                }
                Err(e) => {
                    tracing::warn!("drift: cannot watch {}: {e}", d.display());
                    ok = false;
                }
            }
        }
        ok
    }

    async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            let ev = match self.stream.next().await? {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!("drift: reading inotify events: {e}");
                    return Some(WatchEvent::Overflow);
                }
            };
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                return Some(WatchEvent::Overflow);
            }
            let Some(dir) = self.dirs.get(&ev.wd).cloned() else {
                // A watch removed on purpose (its IN_IGNORED).
                continue;
            };
            if ev
                .mask
                .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
            {
                self.dirs.remove(&ev.wd);
                return Some(WatchEvent::Lost(dir));
            }
            return Some(WatchEvent::Changed {
                dir,
                dir_created: ev.mask.contains(EventMask::ISDIR)
                    && ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO),
                name: ev.name,
            });
        }
    }
}

/// Where events matter, for the running generation.
#[derive(Debug, Default)]
struct Places {
    /// Directories holding owned files or links.
    files: BTreeSet<PathBuf>,
    /// Admin directories (events for an owned unit's name count).
    admin: BTreeSet<PathBuf>,
    /// `<unit>.d` directories in them.
    dropins: BTreeSet<PathBuf>,
    /// Parents of the admin directories (one being made counts).
    parents: BTreeSet<PathBuf>,
    /// Owned unit names, and their `.d` directory names.
    names: BTreeSet<OsString>,
}

impl Places {
    fn of(owned: &Owned, cov: &Coverage, root: &Path) -> Places {
        let mut p = Places::default();
        for f in &owned.files {
            if let Some(d) = f.path.parent() {
                p.files.insert(d.to_path_buf());
            }
        }
        for l in &owned.links {
            if let Some(d) = l.path.parent() {
                p.files.insert(d.to_path_buf());
            }
        }
        if !owned.units.is_empty() {
            for a in &cov.admin_dirs {
                let d = root.join(a);
                if let Some(parent) = d.parent() {
                    p.parents.insert(parent.to_path_buf());
                }
                for u in &owned.units {
                    p.dropins.insert(d.join(format!("{}.d", u.unit)));
                }
                p.admin.insert(d);
            }
            for u in &owned.units {
                p.names.insert(OsString::from(&u.unit));
                p.names.insert(OsString::from(format!("{}.d", u.unit)));
            }
        }
        p
    }

    fn all(&self) -> BTreeSet<PathBuf> {
        let mut v = self.files.clone();
        v.extend(self.admin.iter().cloned());
        v.extend(self.dropins.iter().filter(|d| d.is_dir()).cloned());
        v.extend(self.parents.iter().cloned());
        v
    }

    /// What an event calls for: the scope to scan, and whether the
    /// watches must be set again.
    fn classify(&self, ev: &WatchEvent) -> (Scope, bool) {
        let files = Scope {
            files: true,
            ..Default::default()
        };
        // Only the listing: asking systemd about every unit waits while
        // it reloads (`systemctl edit` and `mask` reload right after
        // writing), and what a reload changes comes with its own event.
        let admin = Scope {
            admin: true,
            ..Default::default()
        };
        match ev {
            WatchEvent::Overflow => (Scope::full(), true),
            WatchEvent::Lost(_) => (Scope::full(), true),
            WatchEvent::Changed {
                dir,
                name,
                dir_created,
            } => {
                if self.files.contains(dir) {
                    (files, *dir_created)
                } else if self.dropins.contains(dir) {
                    (admin, false)
                } else if self.admin.contains(dir) {
                    match name {
                        Some(n) if self.names.contains(n) => (admin, *dir_created),
                        _ => (Scope::default(), false),
                    }
                } else if self.parents.contains(dir) {
                    let made = name.as_ref().is_some_and(|n| {
                        self.admin
                            .iter()
                            .any(|a| a.file_name() == Some(n.as_os_str()))
                    });
                    if made {
                        (admin, true)
                    } else {
                        (Scope::default(), false)
                    }
                } else {
                    (Scope::default(), false)
                }
            }
        }
    }
}

struct Task<P, S> {
    engine: Arc<Engine<P, S>>,
    cfg: Config,
    cov: Coverage,
    owned: Owned,
    places: Places,
    findings: Findings,
    reported: Vec<Finding>,
    baseline: Baseline,
    watcher: Option<Watcher>,
    /// The drift an automatic restore was last started (or refused) for:
    /// the same drift is not tried again until something changes.
    tried: Option<Vec<Finding>>,
    /// The slow half of a scan in flight.
    slow: Option<Slow>,
    /// The slow half asked for while one was in flight (and whether it
    /// ends a full scan).
    slow_pending: Scope,
    slow_pending_full: bool,
    /// Who asked for a full scan (`ScanDrift`), answered when a full
    /// slow half numbered at least this ends.
    waiters: Vec<(u64, tokio::sync::oneshot::Sender<DriftReport>)>,
    /// How many slow halves were started.
    slow_seq: u64,
    /// How many times the operation slot changed (an operation began or
    /// ended).
    ops: u64,
}

/// The slow half of a scan (systemd's view of the units, the containers'
/// images), running beside the event loop.
struct Slow {
    handle: tokio::task::JoinHandle<SlowFound>,
    /// The generation it was started for.
    generation: Option<crate::contract::GenerationId>,
    /// Whether it ends a full scan.
    full: bool,
    /// Its number, and the slot's changes when it began.
    seq: u64,
    ops: u64,
}

/// What the slow half found: for each scope it scanned.
struct SlowFound {
    props: Option<scan::PropsFound>,
    images: Option<scan::ImagesFound>,
}

impl<P: Platform, S: Systemd + 'static> Task<P, S> {
    fn state_dir(&self) -> PathBuf {
        self.engine.runner.store.state_dir()
    }

    /// What the running generation owns, and the watches for it.
    fn rebuild(&mut self) {
        let p = &self.engine.runner.platform;
        let before = self.owned.generation;
        self.owned = match p.running().and_then(|g| p.manifest(g).map(|m| (g, m))) {
            Some((g, m)) => owned::build(g, &m, &self.cov, p.drift_files(g), p.drift_links(g)),
            None => Owned::default(),
        };
        if self.owned.generation != self.baseline.generation {
            self.baseline = Baseline {
                generation: self.owned.generation,
                ids: Default::default(),
            };
        }
        // The full scan that follows replaces every scope's findings;
        // until its slow half ends, systemd's and Podman's last word on
        // the same generation stands (no "cleared" then "found" again).
        self.cancel_slow();
        if self.owned.generation != before {
            self.findings = Findings::default();
        }
        self.rewatch();
    }

    fn rewatch(&mut self) {
        self.places = Places::of(&self.owned, &self.cov, &self.cfg.root);
        let watching = match &mut self.watcher {
            Some(w) => w.set(&self.places.all()),
            None => false,
        };
        self.engine.drift.update(|r| r.watching = watching);
    }

    /// Scans `scope`: the file system at once (owned files, the admin
    /// directories), and what systemd and Podman say (the slow half) in a
    /// task of its own, so that an event during it is still reported
    /// within the debounce: under load one `podman container inspect`
    /// takes seconds, and a full scan comes after every operation.
    async fn scan(&mut self, scope: Scope) {
        if scope.files && self.cov.files {
            let owned = self.owned.clone();
            self.findings.files = tokio::task::spawn_blocking(move || scan::files(&owned))
                .await
                .unwrap_or_default();
        }
        if scope.admin && self.cov.units {
            let (owned, cov, root) = (self.owned.clone(), self.cov.clone(), self.cfg.root.clone());
            self.findings.admin =
                tokio::task::spawn_blocking(move || scan::admin(&owned, &cov, &root))
                    .await
                    .unwrap_or_default();
        }
        let slow = self.slow_part(&scope);
        if slow.is_empty() {
            self.publish(scope.is_full());
            // While a full scan's slow half runs, systemd's and Podman's
            // findings may be the last operation's: its end decides.
            if !self.slow.as_ref().is_some_and(|s| s.full) {
                self.maybe_restore().await;
            }
            return;
        }
        // What the file system showed is reported before systemd is
        // asked: systemd answers only once a reload in progress is done
        // (seconds, on a slow host), and `systemctl edit` or `mask`
        // reload right after they write.
        if scope.files || scope.admin {
            self.publish(false);
        }
        self.start_slow(slow, scope.is_full());
    }

    /// What of `scope` is the slow half, on this platform.
    fn slow_part(&self, scope: &Scope) -> Scope {
        Scope {
            props: scope.props && self.cov.units,
            images: scope.images.clone().filter(|_| self.cov.images),
            ..Default::default()
        }
    }

    /// Starts the slow half of a scan, or, while one runs, keeps it for
    /// when that one ends.
    fn start_slow(&mut self, scope: Scope, full: bool) {
        if self.slow.is_some() {
            self.slow_pending.widen(scope);
            self.slow_pending_full |= full;
            return;
        }
        let engine = self.engine.clone();
        let (owned, cov, root, baseline) = (
            self.owned.clone(),
            self.cov.clone(),
            self.cfg.root.clone(),
            self.baseline.clone(),
        );
        let handle = tokio::spawn(async move {
            let systemd = &engine.runner.systemd;
            let props = if scope.props {
                Some(scan::props(systemd, &owned, &cov, &root, scan::PROBE_TIMEOUT).await)
            } else {
                None
            };
            let images = match &scope.images {
                Some(apps) => Some(
                    scan::images(
                        systemd,
                        &owned,
                        &baseline,
                        apps.as_ref(),
                        scan::PROBE_TIMEOUT,
                    )
                    .await,
                ),
                None => None,
            };
            SlowFound { props, images }
        });
        self.slow_seq += 1;
        self.slow = Some(Slow {
            handle,
            generation: self.owned.generation,
            full,
            seq: self.slow_seq,
            ops: self.ops,
        });
    }

    /// The slow half ended: its findings join the file system's (unless
    /// an operation began meanwhile, even one already over: `settled` is
    /// false while the slot has a change not yet seen; an operation's end
    /// brings a full scan), the report goes out, and whoever asked for
    /// the full scan gets it.
    async fn end_slow(&mut self, slow: Slow, found: Option<SlowFound>, settled: bool) {
        let apply = settled
            && self.free()
            && slow.ops == self.ops
            && slow.generation == self.owned.generation;
        if apply {
            if let Some(found) = found {
                self.apply_slow(found);
                self.publish(slow.full);
            }
            // (A slow half that failed leaves the file system to decide.)
            self.maybe_restore().await;
        }
        if slow.full {
            let report = self.engine.drift.report();
            let (done, wait) = std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|(need, _)| *need <= slow.seq);
            self.waiters = wait;
            for (_, w) in done {
                let _ = w.send(report.clone());
            }
        }
        if self.free() && !self.slow_pending.is_empty() {
            let scope = std::mem::take(&mut self.slow_pending);
            let full = std::mem::take(&mut self.slow_pending_full);
            self.start_slow(scope, full);
        }
    }

    /// Joins what a slow half found to the findings (and keeps the image
    /// ids first seen for the generation).
    fn apply_slow(&mut self, found: SlowFound) {
        if let Some(props) = found.props {
            // What systemd did not answer for stays as it was.
            let kept = std::mem::take(&mut self.findings.props)
                .into_iter()
                .filter(|f| {
                    f.unit
                        .as_ref()
                        .is_some_and(|u| props.unanswered.contains(u))
                });
            let mut all = props.findings;
            all.extend(kept);
            self.findings.props = all;
        }
        if let Some((found, ids)) = found.images {
            for (app, f) in found {
                match f {
                    Some(f) => self.findings.images.insert(app, f),
                    None => self.findings.images.remove(&app),
                };
            }
            let mut changed = false;
            for (app, id) in ids {
                if let std::collections::btree_map::Entry::Vacant(e) = self.baseline.ids.entry(app)
                {
                    e.insert(id);
                    changed = true;
                }
            }
            if changed && let Err(e) = self.baseline.save(&self.state_dir()) {
                tracing::warn!("drift: cannot keep the image baseline: {e}");
            }
        }
    }

    /// Drops the slow half in flight and the one kept for after it (a
    /// full scan follows and answers whoever waits; if an operation comes
    /// first, the loop answers them).
    fn cancel_slow(&mut self) {
        if let Some(s) = self.slow.take() {
            s.handle.abort();
        }
        self.slow_pending = Scope::default();
        self.slow_pending_full = false;
    }

    /// Restores on its own what apps with the `restore` policy drifted:
    /// once per distinct drift; when the agent is busy, after the
    /// operation (its end brings a full scan, and this again).
    async fn maybe_restore(&mut self) {
        if !(self.cfg.restore && self.cov.restore && self.free()) {
            return;
        }
        let want: Vec<Finding> = self
            .reported
            .iter()
            .filter(|f| self.owned.policy_for(f.app.as_deref()).restore)
            .cloned()
            .collect();
        if want.is_empty() {
            self.tried = None;
            self.engine.drift.update(|r| r.pending_restore.clear());
            return;
        }
        if self.tried.as_ref() == Some(&want) {
            return;
        }
        let apps: Vec<String> = {
            let mut a: Vec<String> = want.iter().filter_map(|f| f.app.clone()).collect();
            a.dedup();
            a
        };
        let o = crate::ops::restore::RestoreOptions {
            app: None,
            automatic: true,
        };
        match self.engine.restore(o).await {
            Ok(r) => {
                self.tried = Some(want);
                self.engine.drift.update(|d| {
                    d.restoring = Some(r.id.clone());
                    d.pending_restore.clear();
                });
            }
            Err(OpError::Busy(_) | OpError::Recovering) => {
                self.engine.drift.update(|d| d.pending_restore = apps);
            }
            Err(e) => {
                self.tried = Some(want);
                tracing::warn!("drift: cannot restore {}: {e}", apps.join(", "));
            }
        }
    }

    /// Reports what changed since the last report.
    fn publish(&mut self, full: bool) {
        let all = self.owned.unignored(self.findings.all());
        let (added, cleared) = compare::diff(&self.reported, &all);
        for f in &added {
            tracing::warn!(
                WINDLASS_DRIFT = f.kind.as_str(),
                WINDLASS_APP = f.app.as_deref().unwrap_or(""),
                WINDLASS_UNIT = f.unit.as_deref().unwrap_or(""),
                path = f
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                "drift: {}{}: {}",
                f.kind.as_str(),
                f.unit
                    .as_deref()
                    .or(f.app.as_deref())
                    .map(|u| format!(" of {u}"))
                    .unwrap_or_default(),
                f.detail
            );
        }
        for f in &cleared {
            tracing::info!(
                WINDLASS_DRIFT = "cleared",
                WINDLASS_APP = f.app.as_deref().unwrap_or(""),
                WINDLASS_UNIT = f.unit.as_deref().unwrap_or(""),
                "drift cleared: {} ({})",
                f.kind.as_str(),
                f.detail
            );
        }
        let t = now();
        let generation = self.owned.generation;
        let count = all.len() as u32;
        let coverage = self.cov.clone();
        self.engine.drift.update(|r| {
            r.enabled = true;
            r.coverage = coverage;
            r.generation = generation;
            r.findings = all.clone();
            r.scanned_at = t;
            if full {
                r.full_scan_at = t;
            }
        });
        if !added.is_empty() || !cleared.is_empty() {
            self.engine.runner.notify.drift(generation, &added, count);
        }
        self.reported = all;
    }

    fn free(&self) -> bool {
        self.engine.runner.free()
    }
}

/// Starts the drift task for `engine`. `injected` feeds it watch events
/// as if inotify had delivered them (tests: an overflow).
pub fn spawn<P: Platform, S: Systemd + 'static>(
    engine: Arc<Engine<P, S>>,
    cfg: Config,
    injected: Option<mpsc::Receiver<WatchEvent>>,
) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    engine.drift.connect(tx, cfg.root.clone());
    engine.drift.update(|r| {
        *r = DriftReport {
            enabled: true,
            coverage: engine.runner.platform.drift_coverage(),
            ..Default::default()
        }
    });
    tokio::spawn(run(engine, cfg, rx, injected))
}

async fn run<P: Platform, S: Systemd + 'static>(
    engine: Arc<Engine<P, S>>,
    cfg: Config,
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut injected: Option<mpsc::Receiver<WatchEvent>>,
) {
    let cov = engine.runner.platform.drift_coverage();
    let e = engine.clone();
    if let Ok(done) = tokio::task::spawn_blocking(move || e.runner.platform.drift_prepare()).await
        && !done.is_empty()
    {
        tracing::info!("drift: {done}");
    }
    let watcher = match Watcher::new().and_then(|w| {
        if cfg.inotify {
            Ok(w)
        } else {
            Err(std::io::Error::other("turned off"))
        }
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("drift: inotify unavailable ({e}); only scans will find drift");
            None
        }
    };
    let mut sys = if cov.units {
        engine.runner.systemd.events().await
    } else {
        None
    };
    let mut slot = engine.runner.slot_changes();
    let baseline = Baseline::load(&engine.runner.store.state_dir());
    let mut t = Task {
        engine,
        cfg,
        cov,
        owned: Owned::default(),
        places: Places::default(),
        findings: Findings::default(),
        reported: Vec::new(),
        baseline,
        watcher,
        tried: None,
        slow: None,
        slow_pending: Scope::default(),
        slow_pending_full: false,
        waiters: Vec::new(),
        slow_seq: 0,
        ops: 0,
    };
    // The first scan once the agent is free (after recovery).
    let mut pending = Scope::full();
    let mut rebuild = true;
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    loop {
        if t.free() && rebuild {
            t.rebuild();
            rebuild = false;
            pending = Scope::full();
        }
        if t.free() && !pending.is_empty() && first.is_none() {
            // Due now (a full scan after an operation, or at start).
            let scope = std::mem::take(&mut pending);
            t.scan(scope).await;
            continue;
        }
        if t.slow.is_none() && !t.waiters.is_empty() {
            // No full scan is under way (an operation came first): the
            // last report, as when one is asked for while busy.
            let report = t.engine.drift.report();
            for (_, w) in t.waiters.drain(..) {
                let _ = w.send(report.clone());
            }
        }
        let deadline = match (first, last) {
            (Some(f), Some(l)) => Some((f + t.cfg.cap).min(l + t.cfg.quiet)),
            _ => None,
        };
        let event = tokio::select! {
            ev = async {
                match &mut t.watcher {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(ev) => Some(ev),
                None => {
                    t.watcher = None;
                    t.engine.drift.update(|r| r.watching = false);
                    None
                }
            },
            ev = async {
                match &mut injected {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if ev.is_none() {
                    injected = None;
                }
                ev
            }
            ev = async {
                match &mut sys {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match ev {
                    Some(SysEvent::Reloaded) | Some(SysEvent::UnitFilesChanged) => {
                        if t.free() {
                            pending.widen(Scope { admin: true, props: true, ..Default::default() });
                            let n = Instant::now();
                            first.get_or_insert(n);
                            last = Some(n);
                        }
                    }
                    Some(SysEvent::JobDone(_)) => {}
                    None => sys = None,
                }
                None
            }
            changed = slot.changed() => {
                if changed.is_err() {
                    return;
                }
                t.ops += 1;
                if t.free() {
                    // An operation ended: what it changed is the new
                    // normal; look at everything again.
                    t.engine.drift.update(|r| r.restoring = None);
                    rebuild = true;
                    first = None;
                    last = None;
                }
                None
            }
            req = requests.recv() => {
                match req {
                    Some(Request::Scan(reply)) => {
                        let need = if t.free() {
                            let running = t.engine.runner.platform.running();
                            let under_way = t.slow.as_ref().is_some_and(|s| {
                                s.full && s.generation == running && running == t.owned.generation
                            });
                            let need = if under_way {
                                // Not restarted (scans asked for closer
                                // together than one takes would never
                                // end): the file system now, the slow
                                // half again once this one has ended.
                                t.scan(Scope { files: true, admin: true, ..Default::default() })
                                    .await;
                                let slow = t.slow_part(&Scope::full());
                                t.start_slow(slow, true);
                                t.slow_seq + 1
                            } else {
                                t.rebuild();
                                t.scan(Scope::full()).await;
                                t.slow_seq
                            };
                            pending = Scope::default();
                            first = None;
                            last = None;
                            t.slow.is_some().then_some(need)
                        } else {
                            None
                        };
                        match need {
                            Some(need) => t.waiters.push((need, reply)),
                            None => {
                                let _ = reply.send(t.engine.drift.report());
                            }
                        }
                    }
                    None => return,
                }
                None
            }
            found = async {
                match &mut t.slow {
                    Some(s) => (&mut s.handle).await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                if let Some(slow) = t.slow.take() {
                    let settled = !slot.has_changed().unwrap_or(true);
                    t.end_slow(slow, found, settled).await;
                }
                None
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                first = None;
                last = None;
                if t.free() {
                    let scope = std::mem::take(&mut pending);
                    t.scan(scope).await;
                } else {
                    // The operation's end brings a full scan.
                    pending = Scope::default();
                }
                None
            }
        };
        t.engine.drift.update(|r| r.wakeups += 1);
        if let Some(ev) = event {
            if !t.free() {
                continue;
            }
            let (scope, rewatch) = t.places.classify(&ev);
            if rewatch {
                t.rewatch();
            }
            if let WatchEvent::Changed {
                dir, name: Some(n), ..
            } = &ev
                && t.places.admin.contains(dir)
                && t.places.dropins.contains(&dir.join(n))
            {
                // A drop-in directory just made: watch it (what was
                // written before the watch is found by the scan).
                t.rewatch();
            }
            if !scope.is_empty() {
                pending.widen(scope);
                let n = Instant::now();
                first.get_or_insert(n);
                last = Some(n);
            }
        }
    }
}
