//! Drift detection and restore in process, on the native platform with
//! a recording systemd (`doubles::Fake`) and a temporary root for the
//! systemd admin directories: hand edits, removals, drop-ins and masks
//! are found within 2 s by inotify; a lost event (an overflow) is made up
//! by the full scan; nothing wakes the task while nothing happens; the
//! `restore` policy rewrites the file byte for byte and restarts only the
//! app concerned, after the operation in flight.

mod common;
mod doubles;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doubles::Fake;
use windlass_agent::contract::GenerationId;
use windlass_agent::drift::{DriftKind, Finding};
use windlass_agent::ops::Engine;
use windlass_agent::ops::cutover::Settings;
use windlass_agent::ops::drift_task::{self, Config, WatchEvent};
use windlass_agent::ops::restore::RestoreOptions;
use windlass_agent::ops::runner::Notify;
use windlass_agent::platform::{Platform, native::Native};
use windlass_agent::record::{Op, OpId, Outcome};

/// What the task announced: (added findings, count).
#[derive(Default)]
struct Seen(Mutex<Vec<(Vec<Finding>, u32)>>);

impl Notify for Seen {
    fn started(&self, _: &OpId) {}
    fn phase(&self, _: &OpId, _: &str, _: &str) {}
    fn finished(&self, _: &OpId, _: Outcome, _: &str) {}
    fn generation_changed(&self, _: GenerationId) {}
    fn drift(&self, _: Option<GenerationId>, added: &[Finding], count: u32) {
        self.0.lock().unwrap().push((added.to_vec(), count));
    }
}

struct Host {
    tmp: tempfile::TempDir,
    engine: Arc<Engine<Native, Fake>>,
    fake: Fake,
    seen: Arc<Seen>,
    root: PathBuf,
    inject: tokio::sync::mpsc::Sender<WatchEvent>,
}

/// A native host running generation 1 of the basic fleet (with `edit`
/// applied to web's manifest), and generation 2 staged; the drift task
/// runs with a short debounce (and without inotify if `inotify` is off).
async fn host(edit: impl Fn(&str) -> String, inotify: bool) -> Host {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let root = tmp.path().join("root");
    for d in ["etc/systemd/system", "run/systemd/system"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let targets = tmp.path().join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    let fake = Fake::default();
    let native = Native::new(&state, &tmp.path().join("run"));
    let mut rn = doubles::runner(&state, native, &fake);
    let seen = Arc::new(Seen::default());
    rn.notify = seen.clone();
    let engine = Arc::new(Engine::new(
        rn,
        Settings::new(&state, &targets),
        Default::default(),
    ));
    for n in 1..=2u64 {
        let out = tmp.path().join(format!("g{n}"));
        let port = format!("\"{}\"", 8080 + n);
        common::generation(&common::basic_fleet(), &out, |t| {
            edit(&t.replace("\"8080\"", &port))
        });
        assert_eq!(engine.runner.platform.stage(&out).unwrap(), GenerationId(n));
    }
    engine.switch(GenerationId(1), Default::default()).unwrap();
    engine.idle().await;
    let (inject, rx) = tokio::sync::mpsc::channel(8);
    drift_task::spawn(
        engine.clone(),
        Config {
            root: root.clone(),
            quiet: Duration::from_millis(50),
            inotify,
            ..Default::default()
        },
        Some(rx),
    );
    let h = Host {
        tmp,
        engine,
        fake,
        seen,
        root,
        inject,
    };
    h.wait_for("the first full scan", |r| r.full_scan_at > 0)
        .await;
    h
}

const RESTORE: &str = "[update]\ndrift = \"restore\"\n";

impl Host {
    fn gen_file(&self, rel: &str) -> PathBuf {
        self.tmp.path().join("state/generations/1").join(rel)
    }

    fn findings(&self) -> Vec<Finding> {
        self.engine.drift.report().findings
    }

    async fn wait_for(
        &self,
        what: &str,
        ok: impl Fn(&windlass_agent::drift::DriftReport) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if ok(&self.engine.drift.report()) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not seen; report: {:?}",
                self.engine.drift.report()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `systemctl edit UNIT`: its `.d` directory, then the drop-in at
    /// once (before a watch on the new directory can exist); reported
    /// within 2 s. Returns the directory.
    async fn edit_unit(&self, unit: &str) -> PathBuf {
        let d = self.root.join(format!("etc/systemd/system/{unit}.d"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("override.conf"), "[Service]\nEnvironment=X=1\n").unwrap();
        let took = self
            .wait_kind(DriftKind::DropInAdded, &d.join("override.conf"))
            .await;
        assert!(took < Duration::from_secs(2), "took {took:?}");
        d
    }

    async fn wait_kind(&self, kind: DriftKind, path: &Path) -> Duration {
        self.wait_for(&format!("{kind:?} {}", path.display()), |r| {
            r.findings
                .iter()
                .any(|f| f.kind == kind && f.path.as_deref() == Some(path))
        })
        .await
    }
}

fn has(findings: &[Finding], kind: DriftKind, unit: &str) -> bool {
    findings
        .iter()
        .any(|f| f.kind == kind && f.unit.as_deref() == Some(unit))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_or_removed_owned_file_is_reported_within_two_seconds() {
    let h = host(|t| t.to_string(), true).await;
    assert!(h.findings().is_empty(), "{:?}", h.findings());
    let f = h.gen_file("quadlet/web.container");
    let pristine = std::fs::read(&f).unwrap();
    let mut text = pristine.clone();
    text.extend_from_slice(b"Environment=EDITED=1\n");
    // Written in place, as an editor without backup files does.
    std::fs::write(&f, &text).unwrap();
    let took = h.wait_kind(DriftKind::Modified, &f).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let fnd = h.findings();
    let web = fnd.iter().find(|x| x.path.as_deref() == Some(&*f)).unwrap();
    assert_eq!(web.app.as_deref(), Some("web"));
    assert_eq!(web.unit.as_deref(), Some("web.service"));
    // Announced once, with the count.
    let seen = h.seen.0.lock().unwrap().clone();
    assert_eq!(seen.last().unwrap().0, vec![web.clone()]);
    assert_eq!(seen.last().unwrap().1, 1);

    std::fs::remove_file(&f).unwrap();
    let took = h.wait_kind(DriftKind::Removed, &f).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Put back as it was: the drift clears (and DriftCount goes to 0).
    std::fs::write(&f, &pristine).unwrap();
    h.wait_for("cleared", |r| r.findings.is_empty()).await;
    assert_eq!(h.seen.0.lock().unwrap().last().unwrap().1, 0);
    // Report only (the default policy): nothing was restarted.
    assert!(
        !h.fake.calls().iter().any(|c| c.starts_with("restart")),
        "{:?}",
        h.fake.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_ins_and_masks_in_the_admin_directories_are_reported() {
    let h = host(|t| t.to_string(), true).await;
    let d = h.edit_unit("web.service").await;
    // A second drop-in, now watched in its directory.
    std::fs::write(d.join("zz.conf"), "[Service]\n").unwrap();
    h.wait_kind(DriftKind::DropInAdded, &d.join("zz.conf"))
        .await;
    // `systemctl mask --runtime db.service`.
    let m = h.root.join("run/systemd/system/db.service");
    std::os::unix::fs::symlink("/dev/null", &m).unwrap();
    let took = h.wait_kind(DriftKind::Masked, &m).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(has(&h.findings(), DriftKind::Masked, "db.service"));
    // A file of another unit's name is none of ours.
    std::fs::write(h.root.join("etc/systemd/system/other.service"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.findings()
            .iter()
            .any(|f| f.unit.as_deref() == Some("other.service"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_event_is_made_up_by_the_full_scan_an_overflow_brings() {
    // No inotify: the edit below raises no event, as when the kernel's
    // queue overflowed.
    let h = host(|t| t.to_string(), false).await;
    assert!(!h.engine.drift.report().watching);
    let f = h.gen_file("systemd/web-stamp.timer");
    let mut text = std::fs::read(&f).unwrap();
    text.extend_from_slice(b"# edited\n");
    std::fs::write(&f, &text).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.findings().is_empty(), "{:?}", h.findings());
    let before = h.engine.drift.report().full_scan_at;
    h.inject.send(WatchEvent::Overflow).await.unwrap();
    let took = h.wait_kind(DriftKind::Modified, &f).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(h.engine.drift.report().full_scan_at >= before);
    assert!(has(&h.findings(), DriftKind::Modified, "web-stamp.timer"));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_wakes_the_task_while_nothing_happens() {
    let h = host(|t| t.to_string(), true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = h.engine.drift.report().wakeups;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.engine.drift.report().wakeups, before);
    // ... and an event does.
    std::fs::write(h.gen_file("quadlet/db.container"), "x").unwrap();
    h.wait_kind(DriftKind::Modified, &h.gen_file("quadlet/db.container"))
        .await;
    assert!(h.engine.drift.report().wakeups > before);
}

fn restores(h: &Host) -> Vec<windlass_agent::record::Record> {
    h.engine
        .runner
        .store
        .all()
        .into_iter()
        .filter(|r| matches!(r.op, Op::Restore(_)))
        .collect()
}

async fn wait_restore_finished(h: &Host, n: usize) -> windlass_agent::record::Record {
    let start = Instant::now();
    loop {
        let r = restores(h);
        if r.len() >= n && r[n - 1].finished() {
            return r[n - 1].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no finished restore #{n}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_restore_policy_rewrites_the_file_and_restarts_only_that_app() {
    let h = host(|t| format!("{t}\n{RESTORE}"), true).await;
    let f = h.gen_file("quadlet/web.container");
    let pristine = std::fs::read(&f).unwrap();
    h.fake.calls.lock().unwrap().clear();
    std::fs::write(&f, b"[Container]\nImage=evil\n").unwrap();
    let r = wait_restore_finished(&h, 1).await;
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(std::fs::read(&f).unwrap(), pristine, "not byte-identical");
    let calls = h.fake.calls();
    assert!(calls.contains(&"reload".to_string()), "{calls:?}");
    let restarts: Vec<&String> = calls.iter().filter(|c| c.starts_with("restart")).collect();
    assert_eq!(restarts, ["restart web.service"], "{calls:?}");
    // The scan after the restore finds nothing left.
    h.wait_for("clean after the restore", |r| {
        r.findings.is_empty() && r.restoring.is_none()
    })
    .await;
    let Op::Restore(op) = &r.op else {
        unreachable!()
    };
    assert!(op.automatic);
    assert_eq!(op.plan.apps, ["web"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_waits_for_the_operation_in_flight() {
    let h = host(|t| format!("{t}\n{RESTORE}"), true).await;
    // A switch waiting for its confirmation holds the slot.
    let sw = h
        .engine
        .switch(
            GenerationId(2),
            windlass_agent::ops::switch::SwitchOptions {
                confirm: windlass_agent::record::Confirm::Manual,
                ..Default::default()
            },
        )
        .unwrap();
    let start = Instant::now();
    while h.engine.runner.store.load(&sw.id).unwrap().phase_str() != "waiting-confirm" {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let f = h
        .tmp
        .path()
        .join("state/generations/2/quadlet/web.container");
    let pristine = std::fs::read(&f).unwrap();
    std::fs::write(&f, b"edited during the switch\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(restores(&h).is_empty(), "a restore ran during the switch");
    h.engine.confirm(&sw.id).unwrap();
    let r = wait_restore_finished(&h, 1).await;
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let sw = h.engine.runner.store.load(&sw.id).unwrap();
    assert!(r.started_at >= sw.finished_at.unwrap());
    assert_eq!(std::fs::read(&f).unwrap(), pristine);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_only_app_is_restored_when_asked() {
    let h = host(|t| t.to_string(), true).await;
    let f = h.gen_file("quadlet/db.container");
    let pristine = std::fs::read(&f).unwrap();
    std::fs::remove_file(&f).unwrap();
    h.wait_kind(DriftKind::Removed, &f).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(restores(&h).is_empty(), "report only, yet restored");
    // Only another app's drift: nothing to do.
    let e = h
        .engine
        .restore(RestoreOptions {
            app: Some("web".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing to restore"), "{e}");
    h.fake.calls.lock().unwrap().clear();
    h.engine
        .restore(RestoreOptions {
            app: Some("db".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = wait_restore_finished(&h, 1).await;
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(std::fs::read(&f).unwrap(), pristine);
    let restarts: Vec<String> = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("restart"))
        .collect();
    assert_eq!(restarts, ["restart db.service"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_in_is_set_aside_and_kept_by_a_restore() {
    let h = host(|t| format!("{t}\n{RESTORE}"), true).await;
    let d = h.root.join("etc/systemd/system/web.service.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("override.conf"), "[Service]\nEnvironment=X=1\n").unwrap();
    let r = wait_restore_finished(&h, 1).await;
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert!(!d.join("override.conf").exists());
    // Kept, under the operation's id.
    let kept = h
        .tmp
        .path()
        .join("state/taken-over")
        .join(r.id.as_str())
        .join(d.join("override.conf").strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        "[Service]\nEnvironment=X=1\n"
    );
}

/// The bus side, with the real windlassd and windlassctl: `DriftDetected`
/// carries the finding, `DriftCount` and `Status` follow it, `drift
/// --check` exits 5 while the host has drifted, `drift scan` and `drift
/// restore` are refused to an unauthorised caller, and a restore asked
/// for puts the file back.
#[test]
fn drift_on_the_bus() {
    use common::*;
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let g1 = tmp.path().join("g1");
    generation(&basic_fleet(), &g1, |t| t.to_string());
    let extra = [
        "--drift-root",
        root.to_str().unwrap(),
        "--drift-debounce-ms",
        "50",
    ];
    let a = agent_with(&bus, &state, &run, "nogroup-x", &[], &extra);
    assert!(a.ctl(&["stage", g1.to_str().unwrap()]).status.success());
    assert!(a.ctl(&["switch", "1"]).status.success());
    let clean = a.ctl(&["drift", "--check"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let mut monitor = std::process::Command::new("busctl")
        .args([
            "--address",
            &bus.address,
            "monitor",
            "--match",
            "type='signal',interface='io.windlass.Agent1',member='DriftDetected'",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let file = state.join("generations/1/quadlet/web.container");
    let pristine = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"[Container]\nImage=edited\n").unwrap();
    let start = Instant::now();
    loop {
        let o = a.ctl(&["drift", "--check"]);
        if o.status.code() == Some(5) {
            assert!(stdout(&o).contains("modified"), "{}", stdout(&o));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no drift reported: {}",
            stdout(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.property("/io/windlass/Agent1", "io.windlass.Agent1", "DriftCount"),
        "u 1"
    );
    std::thread::sleep(Duration::from_millis(300));
    let _ = monitor.kill();
    let out = monitor.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DriftDetected"), "{text}");
    assert!(text.contains("\"modified\""), "{text}");
    assert!(text.contains(file.to_str().unwrap()), "{text}");
    // Unauthorised: refused, nothing done.
    for args in [&["drift", "scan"][..], &["drift", "restore"]] {
        let o = a.ctl_as_nobody(args);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
    }
    assert_ne!(std::fs::read(&file).unwrap(), pristine);
    // A scan asked for reports the same.
    let o = a.ctl(&["drift", "scan", "--check"]);
    assert_eq!(o.status.code(), Some(5), "{}", stdout(&o));
    // Restored when asked (the policy is report).
    let o = a.ctl(&["drift", "restore"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), pristine);
    let start = Instant::now();
    while a.ctl(&["drift", "--check"]).status.code() != Some(0) {
        assert!(start.elapsed() < Duration::from_secs(5), "drift stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.property("/io/windlass/Agent1", "io.windlass.Agent1", "DriftCount"),
        "u 0"
    );
}

/// What each platform covers (the table in docs/operations.md#drift):
/// native everything, restore included; NixOS units and images only,
/// without `/etc/systemd/system` (a link into the store) among the admin
/// directories, report only; Guix the files windlass put in `/etc`.
#[test]
fn what_each_platform_covers() {
    use windlass_agent::platform::{guix::Guix, nixos::Nixos};
    let tmp = tempfile::tempdir().unwrap();
    let native = Native::new(&tmp.path().join("s"), &tmp.path().join("r")).drift_coverage();
    assert_eq!(native.kinds, DriftKind::ALL.to_vec());
    assert!(native.restore && native.files && native.units && native.images);
    assert!(native.admin_dirs.contains(&"etc/systemd/system"));

    let nixos = Nixos::new(Box::new(doubles::Recorder::default())).drift_coverage();
    assert!(!nixos.restore && nixos.files && nixos.follow_links && nixos.units && nixos.images);
    assert!(nixos.kinds.contains(&DriftKind::Removed));
    assert!(!nixos.admin_dirs.contains(&"etc/systemd/system"));
    assert!(nixos.admin_dirs.contains(&"run/systemd/system"));

    let guix = Guix::new(Box::new(doubles::Recorder::default())).drift_coverage();
    assert_eq!(guix.kinds, [DriftKind::Modified, DriftKind::Removed]);
    assert!(!guix.restore && !guix.units && !guix.images && guix.files && guix.follow_links);
}

/// systemd's side, through its signals: after a reload a unit that no
/// longer loads, or is defined by another file, is reported; a container
/// on another image than the generation's, or on another image id than
/// it ran when the generation was first seen, is reported at the next
/// full scan.
#[tokio::test(flavor = "multi_thread")]
async fn units_systemd_reports_and_containers_images_are_checked() {
    use windlass_agent::drift::compare::UnitProps;
    use windlass_agent::systemd::SysEvent;
    let h = host(|t| t.to_string(), true).await;
    // Seen healthy at the first full scan: that id is the baseline.
    h.fake
        .set_image("db", "localhost/windlass-test/busybox:1.0", "id-db-1");
    h.engine.drift.scan().await.unwrap();
    assert!(h.findings().is_empty(), "{:?}", h.findings());

    h.fake.set_props(
        "web.service",
        UnitProps {
            load_state: "not-found".into(),
            ..Default::default()
        },
    );
    h.fake.set_props(
        "db.service",
        UnitProps {
            load_state: "loaded".into(),
            fragment_path: "/etc/systemd/system/db.service".into(),
            ..Default::default()
        },
    );
    h.fake.push_event(SysEvent::Reloaded);
    h.wait_for("not loaded and redefined", |r| {
        has(&r.findings, DriftKind::NotLoaded, "web.service")
            && has(&r.findings, DriftKind::Modified, "db.service")
    })
    .await;

    // The image: same reference, another id (a `podman pull` and a
    // restart by hand); another reference.
    h.fake
        .set_image("db", "localhost/windlass-test/busybox:1.0", "id-db-2");
    h.fake
        .set_image("web", "docker.io/library/other:9", "id-web");
    let r = h.engine.drift.scan().await.unwrap();
    let images: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.kind == DriftKind::Image)
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        images
            .iter()
            .any(|f| f.app.as_deref() == Some("web") && f.detail.contains("other:9"))
    );
    assert!(
        images
            .iter()
            .any(|f| f.app.as_deref() == Some("db") && f.detail.contains("when it was healthy"))
    );
}

/// A full scan's slow half (each container inspected, seconds apiece on
/// a loaded host; one comes after every operation) does not hold up what
/// an event shows: a drop-in written while it runs is reported within
/// the usual 2 s, and the scan asked for answers only once its slow half
/// has ended, with the drop-in in its report.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_is_reported_while_a_full_scan_inspects_containers() {
    use std::sync::atomic::Ordering;
    let h = host(|t| t.to_string(), true).await;
    h.fake
        .set_image("db", "localhost/windlass-test/busybox:1.0", "id-db-1");
    *h.fake.inspect_delay.lock().unwrap() = Duration::from_millis(1500);
    let engine = h.engine.clone();
    let scan = tokio::spawn(async move { engine.drift.scan().await.unwrap() });
    let start = Instant::now();
    while h.fake.inspecting.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no inspection began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.edit_unit("db.service").await;
    assert!(
        h.fake.inspecting.load(Ordering::SeqCst) > 0 && !scan.is_finished(),
        "the full scan ended before the drop-in was reported"
    );
    let r = scan.await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert!(
        has(&r.findings, DriftKind::DropInAdded, "db.service"),
        "{:?}",
        r.findings
    );
    assert_eq!(h.fake.inspecting.load(Ordering::SeqCst), 0);
}

/// Scans asked for closer together than one takes (a timer and an
/// operator at once, a fleet tool polling) do not restart the one under
/// way: the first is answered when its own slow half ends, the others
/// after the next one.
#[tokio::test(flavor = "multi_thread")]
async fn scans_asked_for_in_a_row_are_each_answered() {
    let h = host(|t| t.to_string(), true).await;
    // Two apps with images: each full scan's slow half takes 2 s.
    *h.fake.inspect_delay.lock().unwrap() = Duration::from_secs(1);
    let start = Instant::now();
    let mut asked = Vec::new();
    for _ in 0..8 {
        let engine = h.engine.clone();
        asked.push(tokio::spawn(async move {
            engine.drift.scan().await.unwrap();
            Instant::now()
        }));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut answered = Vec::new();
    for a in asked {
        answered.push(a.await.unwrap().duration_since(start));
    }
    // Restarting the scan at each request would answer none before the
    // last request (2.8 s) plus a whole scan (2 s); the first comes after
    // its own (2 s).
    assert!(answered[0] < Duration::from_secs(4), "{answered:?}");
    assert!(
        answered.iter().all(|t| *t < Duration::from_secs(12)),
        "{answered:?}"
    );
}

/// A systemd or Podman that does not answer holds a scan no longer than
/// its time allows (one deadline for all the questions, not one each):
/// what was not answered is neither a finding nor its absence, so the
/// last scan's findings for it stand.
#[tokio::test(flavor = "multi_thread")]
async fn probes_that_hang_are_given_up_together_and_decide_nothing() {
    use windlass_agent::drift::owned::{Owned, OwnedImage, OwnedUnit};
    use windlass_agent::drift::scan;
    let fake = Fake::default();
    // Answered, these would be findings: web on another image, db not
    // loaded.
    fake.set_image("web", "docker.io/library/other:9", "id-web");
    fake.set_props(
        "db.service",
        windlass_agent::drift::compare::UnitProps {
            load_state: "not-found".into(),
            ..Default::default()
        },
    );
    let owned = Owned {
        units: ["web.service", "db.service", "cache.service"]
            .iter()
            .map(|u| OwnedUnit {
                unit: u.to_string(),
                app: Some(u.trim_end_matches(".service").to_string()),
            })
            .collect(),
        images: ["web", "db", "cache"]
            .iter()
            .map(|a| OwnedImage {
                app: a.to_string(),
                unit: format!("{a}.service"),
                image: format!("localhost/{a}:1"),
            })
            .collect(),
        ..Default::default()
    };
    let within = Duration::from_millis(300);
    let (cov, root) = (Default::default(), Path::new("/"));

    // Answered in time: the findings.
    let p = scan::props(&fake, &owned, &cov, root, within).await;
    assert!(p.unanswered.is_empty());
    assert!(
        has(&p.findings, DriftKind::NotLoaded, "db.service"),
        "{:?}",
        p.findings
    );
    let (found, _) = scan::images(&fake, &owned, &Default::default(), None, within).await;
    assert!(found.get("web").is_some_and(Option::is_some), "{found:?}");

    // Hanging: given up after `within` for all three together.
    *fake.props_delay.lock().unwrap() = Duration::from_secs(3600);
    *fake.inspect_delay.lock().unwrap() = Duration::from_secs(3600);
    let start = Instant::now();
    let p = scan::props(&fake, &owned, &cov, root, within).await;
    assert!(p.findings.is_empty(), "{:?}", p.findings);
    assert_eq!(p.unanswered.len(), 3, "{:?}", p.unanswered);
    let (found, ids) = scan::images(&fake, &owned, &Default::default(), None, within).await;
    assert!(found.is_empty() && ids.is_empty(), "{found:?} {ids:?}");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}
