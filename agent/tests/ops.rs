//! The operations' state machines in process, on the native platform with
//! a recording systemd (`doubles::Fake`): how each ends, what recovery
//! makes of a record left in each phase, and the order of the last two
//! things every operation does (finish its record, then disarm its
//! external revert).

mod common;
mod doubles;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use doubles::Fake;
use windlass_agent::contract::GenerationId;
use windlass_agent::durable::swap_symlink;
use windlass_agent::ops::Engine;
use windlass_agent::ops::cutover::{Request, Settings};
use windlass_agent::platform::{Platform, native::Native};
use windlass_agent::record::{Outcome, Record, RollbackOp, RollbackPhase, SwitchOp, SwitchPhase};
use windlass_agent::store::Store;

struct Host {
    tmp: tempfile::TempDir,
    state: PathBuf,
    engine: Arc<Engine<Native, Fake>>,
    fake: Fake,
    /// (revert unit stopped, its record was finished then)
    disarms: Arc<Mutex<Vec<(String, bool)>>>,
}

/// A native host with `gens` generations of the basic fleet staged (the
/// n-th listens on port 8080 + n), generation 1 committed; the external
/// revert is "armed" (recorded by the fake systemd).
async fn host(gens: u64) -> Host {
    host_with(gens, true).await
}

/// [`host`], with generation 1 committed only if `commit_first`: else
/// the host has never run a windlass generation.
async fn host_with(gens: u64, commit_first: bool) -> Host {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let targets = tmp.path().join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    let fake = Fake::default();
    let disarms: Arc<Mutex<Vec<(String, bool)>>> = Default::default();
    let (st, seen) = (state.clone(), disarms.clone());
    *fake.on_stop_transient.lock().unwrap() = Some(Box::new(move |unit: &str| {
        let id = unit
            .trim_start_matches("windlass-revert-")
            .trim_end_matches("-gate");
        let finished = Store::new(&st)
            .load(&id.parse().unwrap())
            .map(|r| r.finished())
            .unwrap_or(false);
        seen.lock().unwrap().push((unit.to_string(), finished));
    }));
    let mut native = Native::new(&state, &tmp.path().join("run"));
    // Others' unit and Quadlet files are looked for under `root/`.
    native.foreign_root = Some(tmp.path().join("root"));
    let mut rn = doubles::runner(&state, native, &fake);
    rn.revert_argv = Some(vec!["windlassd".into(), "--revert".into()]);
    let engine = Arc::new(Engine::new(
        rn,
        Settings::new(&state, &targets),
        Default::default(),
    ));
    for n in 1..=gens {
        let out = tmp.path().join(format!("g{n}"));
        let port = format!("\"{}\"", 8080 + n);
        common::generation(&common::basic_fleet(), &out, |t| {
            t.replace("\"8080\"", &port)
        });
        assert_eq!(engine.runner.platform.stage(&out).unwrap(), GenerationId(n));
    }
    if gens > 0 && commit_first {
        engine.switch(GenerationId(1), Default::default()).unwrap();
        engine.idle().await;
    }
    disarms.lock().unwrap().clear();
    Host {
        tmp,
        state,
        engine,
        fake,
        disarms,
    }
}

fn g(n: u64) -> Option<GenerationId> {
    Some(GenerationId(n))
}

impl Host {
    fn running(&self) -> Option<GenerationId> {
        self.engine.runner.platform.running()
    }
    fn selected(&self) -> Option<GenerationId> {
        self.engine.runner.platform.selected()
    }
    fn last(&self) -> Record {
        self.engine.runner.store.all().pop().unwrap()
    }
    /// The last stop of each revert unit (its disarm) came after its
    /// record was finished. (The first unit is also stopped earlier, by
    /// the agent itself, when it re-arms for the gate.)
    fn assert_disarmed_after_finishing(&self) {
        let seen = self.disarms.lock().unwrap().clone();
        assert!(!seen.is_empty(), "the external revert was never disarmed");
        for (unit, _) in &seen {
            let last = seen.iter().rev().find(|(u, _)| u == unit).unwrap();
            assert!(
                last.1,
                "{unit} was stopped before its record was finished: {seen:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cutover_commit_finishes_record_before_disarming() {
    let h = host(0).await;
    let targets = h.tmp.path().join("targets");
    let link = h.tmp.path().join("bin/tool");
    std::fs::write(
        targets.join("tool.toml"),
        format!("link = {:?}\n", link.to_str().unwrap()),
    )
    .unwrap();
    // Version 2 is on disk already: no download, only the checks.
    let body = b"#!/bin/sh\nexit 0\n";
    let exe = h.state.join("artifacts/tool/2/tool");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(&exe, body).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&exe).unwrap().permissions(),
        0o755,
    );
    assert!(
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&exe)
            .status()
            .unwrap()
            .success()
    );
    let sha = windlass_agent::durable::sha256_file(&exe).unwrap();
    let r = h
        .engine
        .cutover(Request {
            target: "tool".into(),
            version: "2".into(),
            url: "https://127.0.0.1:1/tool".into(),
            sha256: sha,
            deadline_sec: Some(5),
            request: None,
        })
        .unwrap();
    h.engine.idle().await;
    // idle() returns once the record is finished; the disarm follows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rec = h.engine.runner.store.load(&r.id).unwrap();
    assert_eq!(rec.result, Some(Outcome::Committed), "{rec:?}");
    assert_eq!(std::fs::read_link(&link).unwrap(), exe);
    h.assert_disarmed_after_finishing();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_commits_once_healthy_and_disarms_after_finishing() {
    let h = host(2).await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = h.last();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(r.changed_units, ["web.service"]);
    assert_eq!((h.running(), h.selected()), (g(2), g(2)));
    let phases: Vec<&str> = r.history.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        phases,
        [
            "recorded",
            "arming",
            "activating",
            "health-gate",
            "committing",
            "finished"
        ]
    );
    h.assert_disarmed_after_finishing();
}

/// A unit that fails on the new generation and again on the way back:
/// the switch ends failed (not rolled back), naming both, with the
/// unit's journal.
#[tokio::test(flavor = "multi_thread")]
async fn a_unit_failing_both_ways_ends_the_switch_failed_with_its_journal() {
    let h = host(2).await;
    h.fake
        .failing_jobs
        .lock()
        .unwrap()
        .push("web.service".into());
    h.fake.set("web.service", "failed", "failed");
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.last();
    assert_eq!(r.result, Some(Outcome::Failed), "{r:?}");
    assert!(r.error.starts_with("web.service failed"), "{}", r.error);
    assert!(r.error.contains("rolling back to 1 failed"), "{}", r.error);
    // The unit's journal lines are kept apart from the error (which every
    // bus client may read).
    assert!(!r.error.contains("stand-in journal"), "{}", r.error);
    assert_eq!(r.journal[0], "--- last journal lines of web.service ---");
    assert!(r.journal[1].contains("stand-in journal"), "{:?}", r.journal);
    assert_eq!(h.selected(), g(1), "never committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_switch_waits_for_confirm_and_cancel_rolls_it_back() {
    let h = host(3).await;
    let opts = windlass_agent::ops::switch::SwitchOptions {
        confirm: windlass_agent::record::Confirm::Manual,
        deadline_sec: Some(30),
        take_over: false,
        request: None,
    };
    let r = h.engine.switch(GenerationId(2), opts.clone()).unwrap();
    wait_phase(&h, &r, "waiting-confirm").await;
    assert_eq!(h.selected(), g(1), "nothing is committed before Confirm");
    h.engine.confirm(&r.id).unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Committed));
    assert_eq!(h.selected(), g(2));

    let r = h.engine.switch(GenerationId(3), opts).unwrap();
    wait_phase(&h, &r, "waiting-confirm").await;
    h.engine.cancel(&r.id).unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Canceled));
    assert_eq!((h.running(), h.selected()), (g(2), g(2)));
    assert!(
        h.engine.confirm(&r.id).is_err(),
        "a finished operation takes no Confirm"
    );
}

async fn wait_phase(h: &Host, r: &Record, phase: &str) {
    let start = std::time::Instant::now();
    while h.engine.runner.store.load(&r.id).unwrap().phase_str() != phase {
        assert!(start.elapsed() < Duration::from_secs(10), "never {phase}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A switch from 1 to 2 left in `phase` (as a crash leaves it: for the
/// phases after activation began, generation 2 runs).
fn leave_switch(h: &Host, phase: SwitchPhase) {
    let mut r = h.engine.runner.record(SwitchOp {
        phase,
        from_generation: g(1),
        to_generation: GenerationId(2),
        taken_over: Vec::new(),
        hooks: Default::default(),
    });
    r.deadline_sec = 5;
    r.history.push(("arming".into(), 0));
    h.engine.runner.store.save(&r).unwrap();
    if !matches!(phase, SwitchPhase::Recorded | SwitchPhase::Arming) {
        let run = h.tmp.path().join("run/current");
        swap_symlink(&run, &h.state.join("generations/2")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_resolves_a_switch_left_in_any_phase() {
    for phase in SwitchPhase::ALL {
        let h = host(2).await;
        leave_switch(&h, *phase);
        let want = match phase {
            SwitchPhase::Recorded | SwitchPhase::Arming => (Outcome::Canceled, 1),
            SwitchPhase::HookPreActivate
            | SwitchPhase::HookPreCommit
            | SwitchPhase::Activating
            | SwitchPhase::HealthGate
            | SwitchPhase::WaitingConfirm
            | SwitchPhase::RollingBack
            | SwitchPhase::HookDown => (Outcome::RolledBack, 1),
            SwitchPhase::Committing | SwitchPhase::HookPostCommit | SwitchPhase::PurgingData => {
                (Outcome::Committed, 2)
            }
            // Finished without a result: a damaged record, ended as
            // failed; then the host, running 2 with 1 selected, is
            // returned to 1 by a rollback of its own.
            SwitchPhase::Finished => (Outcome::Failed, 1),
        };
        let done = h.engine.recover().await;
        let restored = *phase == SwitchPhase::Finished;
        assert_eq!(done.len(), 1 + restored as usize, "{phase}: {done:?}");
        if restored {
            assert_eq!(done[1].result, Some(Outcome::Committed), "{done:?}");
            assert_eq!(done[1].kind(), windlass_agent::record::Kind::Rollback);
        }
        assert_eq!(done[0].result, Some(want.0), "{phase}: {:?}", done[0]);
        assert_eq!(
            (h.running(), h.selected()),
            (g(want.1), g(want.1)),
            "{phase}"
        );
        assert!(h.engine.active().is_none(), "{phase}: the slot is free");
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.assert_disarmed_after_finishing();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_resolves_a_rollback_left_in_any_phase() {
    for phase in RollbackPhase::ALL {
        let h = host(2).await;
        h.engine
            .switch(GenerationId(2), Default::default())
            .unwrap();
        h.engine.idle().await;
        let r = h.engine.runner.record(RollbackOp {
            phase: *phase,
            from_generation: g(2),
            to_generation: GenerationId(1),
            hooks: Default::default(),
        });
        h.engine.runner.store.save(&r).unwrap();
        if *phase == RollbackPhase::Committing {
            // Its activation was done.
            let run = h.tmp.path().join("run/current");
            swap_symlink(&run, &h.state.join("generations/1")).unwrap();
        }
        let want = match phase {
            RollbackPhase::Recorded => (Outcome::Canceled, 2),
            RollbackPhase::HookDown
            | RollbackPhase::Activating
            | RollbackPhase::HealthGate
            | RollbackPhase::Committing => (Outcome::Committed, 1),
            RollbackPhase::Finished => (Outcome::Failed, 2),
        };
        let done = h.engine.recover().await;
        assert_eq!(done[0].result, Some(want.0), "{phase}: {:?}", done[0]);
        assert_eq!(
            (h.running(), h.selected()),
            (g(want.1), g(want.1)),
            "{phase}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_operation_runs_at_a_time() {
    let h = host(3).await;
    let opts = windlass_agent::ops::switch::SwitchOptions {
        confirm: windlass_agent::record::Confirm::Manual,
        deadline_sec: Some(30),
        take_over: false,
        request: None,
    };
    let r = h.engine.switch(GenerationId(2), opts).unwrap();
    let busy = h.engine.switch(GenerationId(3), Default::default());
    assert!(
        matches!(&busy, Err(windlass_agent::ops::runner::OpError::Busy(id)) if *id == r.id),
        "{busy:?}"
    );
    assert!(h.engine.rollback(None).is_err());
    h.engine.cancel(&r.id).unwrap();
    h.engine.idle().await;
}

/// A target that fails its verification is refused before anything
/// changes: the switch ends failed, and the way back restarts nothing
/// (there is nothing to go back from).
#[tokio::test(flavor = "multi_thread")]
async fn a_switch_to_a_damaged_generation_changes_nothing_and_restarts_nothing() {
    let h = host(2).await;
    let unit = h.state.join("generations/2/quadlet/web.container");
    let mut text = std::fs::read(&unit).unwrap();
    text.extend_from_slice(b"# changed after staging\n");
    std::fs::write(&unit, text).unwrap();
    let before = h.fake.calls().len();
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.last();
    assert_eq!(r.result, Some(Outcome::Failed), "{r:?}");
    assert!(r.error.contains("nothing was changed"), "{}", r.error);
    assert!(r.error.contains("web.container"), "{}", r.error);
    assert_eq!((h.running(), h.selected()), (g(1), g(1)));
    let units_touched: Vec<String> = h.fake.calls()[before..]
        .iter()
        .filter(|c| !c.starts_with("transient") && !c.starts_with("stop-transient"))
        .cloned()
        .collect();
    assert!(units_touched.is_empty(), "{units_touched:?}");
}

/// The state a host is in before its first switch: no running or
/// selected generation, no `current` link.
fn assert_no_generation(h: &Host, what: &str) {
    assert_eq!((h.running(), h.selected()), (None, None), "{what}");
    assert!(
        std::fs::symlink_metadata(h.tmp.path().join("run/current")).is_err(),
        "{what}: the running link is still there"
    );
}

/// What the way back from a first switch did to units after `before`
/// calls: every unit of generation 1 stopped (timers first, networks and
/// volumes last), then one daemon-reload (the generator finds nothing),
/// failed states reset, the generation's network removed.
fn assert_taken_down(h: &Host, before: usize) {
    let calls: Vec<String> = h.fake.calls()[before..]
        .iter()
        .filter(|c| !c.contains("transient"))
        .cloned()
        .collect();
    let stops: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.strip_prefix("stop "))
        .collect();
    let at = |unit: &str| {
        stops
            .iter()
            .position(|u| *u == unit)
            .unwrap_or_else(|| panic!("{unit} was not stopped: {calls:?}"))
    };
    let (stamp, web, net) = (
        at("web-stamp.timer"),
        at("web.service"),
        at("vmnet-network.service"),
    );
    assert!(
        stamp < web
            && web < net
            && stops.contains(&"db.service")
            && stops.contains(&"vmdata-volume.service"),
        "{calls:?}"
    );
    let last_stop = calls.iter().rposition(|c| c.starts_with("stop ")).unwrap();
    let reload = calls.iter().rposition(|c| c == "reload").unwrap();
    assert!(reload > last_stop, "reload after the stops: {calls:?}");
    assert!(
        calls.contains(&"reset-failed web.service".to_string()),
        "{calls:?}"
    );
    let net = calls.iter().position(|c| c == "network-rm vmnet");
    let left = calls.iter().position(|c| c == "container-rm web");
    assert!(
        left.is_some() && left < net,
        "leftover containers go before their network: {calls:?}"
    );
}

/// A first switch whose gate fails returns the host to no generation:
/// nothing of generation 1 keeps running, and the outcome says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_red_first_switch_leaves_no_generation_running() {
    let h = host_with(1, false).await;
    assert_no_generation(&h, "before");
    h.fake
        .failing_jobs
        .lock()
        .unwrap()
        .push("web.service".into());
    h.fake.set("web.service", "failed", "failed");
    let before = h.fake.calls().len();
    h.engine
        .switch(GenerationId(1), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.last();
    assert_eq!(r.result, Some(Outcome::RolledBack), "{r:?}");
    assert!(r.error.starts_with("web.service failed"), "{}", r.error);
    assert!(
        r.error.contains("no windlass generation runs now"),
        "{}",
        r.error
    );
    assert_no_generation(&h, "after");
    assert_taken_down(&h, before);
    // Nothing to roll back to, said as such.
    let e = h.engine.rollback(None).unwrap_err().to_string();
    assert!(e.contains("no generation has been committed"), "{e}");
}

/// Cancel of a first switch waiting for its Confirm: the same way back.
#[tokio::test(flavor = "multi_thread")]
async fn a_canceled_first_switch_leaves_no_generation_running() {
    let h = host_with(1, false).await;
    let opts = windlass_agent::ops::switch::SwitchOptions {
        confirm: windlass_agent::record::Confirm::Manual,
        deadline_sec: Some(30),
        take_over: false,
        request: None,
    };
    let r = h.engine.switch(GenerationId(1), opts).unwrap();
    wait_phase(&h, &r, "waiting-confirm").await;
    assert_eq!(h.running(), g(1));
    let before = h.fake.calls().len();
    h.engine.cancel(&r.id).unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Canceled));
    assert_no_generation(&h, "after cancel");
    assert_taken_down(&h, before);
}

/// A first switch left in any phase by a crash: before activation,
/// nothing changed; after it, the host goes back to no generation;
/// `committing` finishes.
#[tokio::test(flavor = "multi_thread")]
async fn recovery_resolves_a_first_switch_left_in_any_phase() {
    for phase in SwitchPhase::ALL {
        let h = host_with(1, false).await;
        let mut r = h.engine.runner.record(SwitchOp {
            phase: *phase,
            from_generation: None,
            to_generation: GenerationId(1),
            taken_over: Vec::new(),
            hooks: Default::default(),
        });
        r.deadline_sec = 5;
        h.engine.runner.store.save(&r).unwrap();
        if !matches!(phase, SwitchPhase::Recorded | SwitchPhase::Arming) {
            let run = h.tmp.path().join("run/current");
            swap_symlink(&run, &h.state.join("generations/1")).unwrap();
        }
        let want = match phase {
            SwitchPhase::Recorded | SwitchPhase::Arming => (Outcome::Canceled, None),
            SwitchPhase::HookPreActivate
            | SwitchPhase::HookPreCommit
            | SwitchPhase::Activating
            | SwitchPhase::HealthGate
            | SwitchPhase::WaitingConfirm
            | SwitchPhase::RollingBack
            | SwitchPhase::HookDown => (Outcome::RolledBack, None),
            // (Not reached by a first switch; resolved as the commit.)
            SwitchPhase::Committing | SwitchPhase::HookPostCommit | SwitchPhase::PurgingData => {
                (Outcome::Committed, g(1))
            }
            // A damaged record (finished without a result) ends failed,
            // and the running generation, selected by nothing, is left
            // running: see the note in `rollback::restore_selected`.
            SwitchPhase::Finished => (Outcome::Failed, g(1)),
        };
        let done = h.engine.recover().await;
        assert_eq!(done[0].result, Some(want.0), "{phase}: {:?}", done[0]);
        assert_eq!(h.running(), want.1, "{phase}");
        if want.1.is_none() {
            assert_no_generation(&h, phase.as_str());
        }
    }
}

/// An empty generation (no apps) is a valid target: switching to it
/// stops every unit of the previous one and removes its network; the
/// gate has nothing to wait for, and it commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_switch_to_an_empty_generation_stops_every_app() {
    let h = host(1).await;
    let src = h.tmp.path().join("empty-src");
    std::fs::create_dir_all(src.join("apps")).unwrap();
    std::fs::write(src.join("windlass.toml"), "[host]\npodman = \"5.4\"\n").unwrap();
    let out = h.tmp.path().join("empty");
    common::generate(&src, &out);
    assert_eq!(
        h.engine.runner.platform.stage(&out).unwrap(),
        GenerationId(2)
    );
    let before = h.fake.calls().len();
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.last();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert!(r.changed_units.is_empty(), "{r:?}");
    assert_eq!((h.running(), h.selected()), (g(2), g(2)));
    let calls: Vec<String> = h.fake.calls()[before..].to_vec();
    for u in [
        "db.service",
        "web.service",
        "web-stamp.timer",
        "vmnet-network.service",
    ] {
        // Stopped while its definition is loaded: after the reload its
        // file is gone and systemd would stop it with no ExecStop (the
        // container would outlive the unit; seen in the VM). Then its
        // failed state, if the stop ended so, is cleared.
        let stop = calls.iter().position(|c| *c == format!("stop {u}"));
        let reload = calls.iter().position(|c| c == "reload");
        let reset = calls.iter().position(|c| *c == format!("reset-failed {u}"));
        assert!(
            stop.is_some() && stop < reload && reload < reset,
            "{u}: {calls:?}"
        );
    }
    assert!(calls.contains(&"network-rm vmnet".to_string()), "{calls:?}");
    assert!(calls.contains(&"container-rm db".to_string()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("start ")), "{calls:?}");
}

/// A switch that would add a unit something else already defines (a
/// hand-written unit file, a Quadlet file of Podman's own generator) is
/// refused before anything is recorded or changed, naming each file.
#[tokio::test(flavor = "multi_thread")]
async fn a_switch_onto_units_windlass_does_not_own_is_refused_naming_them() {
    let h = host_with(2, false).await;
    let root = h.tmp.path().join("root");
    let unit = root.join("etc/systemd/system/web.service");
    let quadlet = root.join("etc/containers/systemd/hand/db.container");
    let net = root.join("usr/share/containers/systemd/vmnet.network");
    for f in [&unit, &quadlet, &net] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "[Unit]\n").unwrap();
    }
    // Not a conflict: another name, and a drop-in directory.
    std::fs::write(root.join("etc/containers/systemd/hand/dbx.container"), "").unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system/db.service.d")).unwrap();
    let records = h.engine.runner.store.all().len();
    let e = h
        .engine
        .switch(GenerationId(1), Default::default())
        .unwrap_err()
        .to_string();
    for f in [&unit, &quadlet, &net] {
        assert!(e.contains(&f.display().to_string()), "{f:?} not named: {e}");
    }
    assert!(e.contains("nothing was changed"), "{e}");
    assert!(!e.contains("dbx"), "{e}");
    assert_eq!(
        h.engine.runner.store.all().len(),
        records,
        "nothing recorded"
    );
    assert!(h.fake.calls().is_empty(), "{:?}", h.fake.calls());
    assert_no_generation(&h, "refused");
    // Gone: the switch goes ahead; then the same files beside units
    // windlass already runs are not its business here (drift is).
    for f in [&unit, &quadlet, &net] {
        std::fs::remove_file(f).unwrap();
    }
    h.engine
        .switch(GenerationId(1), Default::default())
        .unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Committed));
    std::fs::write(&unit, "[Unit]\n").unwrap();
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Committed));
}

/// A hand-written Quadlet file of web's name, under the test's root.
fn hand_written_web(h: &Host) -> PathBuf {
    let f = h
        .tmp
        .path()
        .join("root/etc/containers/systemd/hand/web.container");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, "[Container]\nImage=hand-made\n").unwrap();
    f
}

fn take_over(
    confirm: windlass_agent::record::Confirm,
) -> windlass_agent::ops::switch::SwitchOptions {
    windlass_agent::ops::switch::SwitchOptions {
        confirm,
        deadline_sec: Some(30),
        take_over: true,
        request: None,
    }
}

/// With take-over, the file is set aside (kept in the state directory)
/// after the unit it defined, which was running, is stopped; the switch
/// commits and the file stays aside.
#[tokio::test(flavor = "multi_thread")]
async fn a_switch_that_takes_over_sets_the_file_aside_and_commits() {
    let h = host_with(1, false).await;
    let f = hand_written_web(&h);
    h.fake.set("web.service", "active", "running");
    let before = h.fake.calls().len();
    let r = h
        .engine
        .switch(GenerationId(1), take_over(Default::default()))
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.load(&r.id).unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let rec: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(
        rec["taken_over"][0]["path"],
        f.display().to_string(),
        "{rec}"
    );
    assert_eq!(rec["taken_over"][0]["was_active"], true, "{rec}");
    assert!(!f.exists(), "the file was not set aside");
    let aside = h
        .state
        .join("taken-over")
        .join(r.id.as_str())
        .join(f.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(&aside).unwrap(),
        "[Container]\nImage=hand-made\n"
    );
    let calls = h.fake.calls()[before..].to_vec();
    let stop = calls.iter().position(|c| c == "stop web.service").unwrap();
    let reload = calls.iter().position(|c| c == "reload").unwrap();
    assert!(stop < reload, "stopped under its own definition: {calls:?}");
}

/// A hand-written unit whose process ignores SIGTERM ends its stop
/// `failed` (killed at the stop timeout; seen with busybox httpd as a
/// container's PID 1). That state is the old definition's: the
/// generation's unit of the same name starts and the switch commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_over_unit_that_ends_its_stop_failed_does_not_fail_the_gate() {
    let h = host_with(1, false).await;
    hand_written_web(&h);
    h.fake.set("web.service", "active", "running");
    h.fake
        .killed_on_stop
        .lock()
        .unwrap()
        .push("web.service".into());
    let r = h
        .engine
        .switch(GenerationId(1), take_over(Default::default()))
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.load(&r.id).unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let calls = h.fake.calls();
    let stop = calls.iter().position(|c| c == "stop web.service").unwrap();
    let reset = calls
        .iter()
        .position(|c| c == "reset-failed web.service")
        .unwrap();
    let start = calls
        .iter()
        .rposition(|c| c == "start web.service")
        .unwrap();
    assert!(stop < reset && reset < start, "{calls:?}");
}

/// A switch that took over and does not commit puts the file back and
/// starts the unit again under its own definition.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_over_file_is_put_back_when_the_switch_is_rolled_back() {
    let h = host_with(1, false).await;
    let f = hand_written_web(&h);
    h.fake.set("web.service", "active", "running");
    let r = h
        .engine
        .switch(
            GenerationId(1),
            take_over(windlass_agent::record::Confirm::Manual),
        )
        .unwrap();
    wait_phase(&h, &r, "waiting-confirm").await;
    assert!(!f.exists());
    let before = h.fake.calls().len();
    h.engine.cancel(&r.id).unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.load(&r.id).unwrap();
    assert_eq!(r.result, Some(Outcome::Canceled), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "[Container]\nImage=hand-made\n"
    );
    assert_no_generation(&h, "after cancel");
    let calls = h.fake.calls()[before..].to_vec();
    let last_reload = calls.iter().rposition(|c| c == "reload").unwrap();
    let started = calls
        .iter()
        .rposition(|c| c == "start web.service")
        .unwrap();
    assert!(
        started > last_reload,
        "started again after the reload: {calls:?}"
    );
    // Without take-over the same switch is refused.
    let e = h
        .engine
        .switch(GenerationId(1), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&f.display().to_string()), "{e}");
}

/// A crash after the file was set aside: recovery puts it back.
#[tokio::test(flavor = "multi_thread")]
async fn recovery_puts_back_what_an_interrupted_switch_took_over() {
    let h = host_with(1, false).await;
    let f = hand_written_web(&h);
    let mut r = h.engine.runner.record(SwitchOp {
        phase: SwitchPhase::Activating,
        from_generation: None,
        to_generation: GenerationId(1),
        taken_over: vec![windlass_agent::record::TakenOver {
            unit: "web.service".into(),
            path: f.clone(),
            was_active: true,
        }],
        hooks: Default::default(),
    });
    r.deadline_sec = 5;
    h.engine.runner.store.save(&r).unwrap();
    h.engine
        .runner
        .platform
        .set_aside(r.id.as_str(), std::slice::from_ref(&f))
        .unwrap();
    assert!(!f.exists());
    let done = h.engine.recover().await;
    assert_eq!(done[0].result, Some(Outcome::RolledBack), "{:?}", done[0]);
    assert!(f.exists(), "not put back");
    assert!(
        h.fake.calls().contains(&"start web.service".to_string()),
        "{:?}",
        h.fake.calls()
    );
}

/// `update.rollback = "manual"` on an app: a switch that changes it waits
/// for Confirm even when the caller asked for automatic confirmation; one
/// that leaves it unchanged commits on its own.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_with_manual_rollback_makes_its_switch_wait_for_confirm() {
    let h = host(1).await;
    let out = h.tmp.path().join("g-manual");
    common::generation(&common::basic_fleet(), &out, |t| {
        t.replace("\"8080\"", "\"8090\"") + "\n[update]\nrollback = \"manual\"\n"
    });
    assert_eq!(
        h.engine.runner.platform.stage(&out).unwrap(),
        GenerationId(2)
    );
    let r = h
        .engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    wait_phase(&h, &r, "waiting-confirm").await;
    let rec = h.engine.runner.store.load(&r.id).unwrap();
    let gate = &rec.history.iter().rev().find(|(p, _)| p == "health-gate");
    assert!(gate.is_some(), "{rec:?}");
    assert_eq!(h.selected(), g(1), "nothing is committed before Confirm");
    h.engine.confirm(&r.id).unwrap();
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Committed));
    assert_eq!(h.selected(), g(2));
}

/// A removed app's data is removed only when its manifest (in the
/// generation that had it) said `purge-data`, and only once a switch
/// that removes it has committed: never by a switch that rolls back,
/// never by a rollback, never when the app stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_apps_data_is_purged_only_after_a_committed_switch() {
    let h = host(0).await;
    let fleet = common::basic_fleet();
    // 1: no db; 2: db, purge-data; 3: no db, red. (Generations are
    // content-addressed: going back to "no db" is a switch to 1.)
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|n| h.tmp.path().join(format!("g{n}")))
        .collect();
    common::generation_without_db(&fleet, &dirs[0], false);
    common::generation(&fleet, &dirs[1], |t| t.to_string());
    common::purge_db_data(&dirs[1]);
    common::generation_without_db(&fleet, &dirs[2], true);
    for (n, d) in dirs.iter().enumerate() {
        let got = h.engine.runner.platform.stage(d).unwrap();
        assert_eq!(got, GenerationId(n as u64 + 1));
    }
    let purges = |h: &Host| -> Vec<String> {
        h.fake
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("volume-rm"))
            .collect()
    };
    let switch = |n: u64| {
        h.engine
            .switch(GenerationId(n), Default::default())
            .unwrap();
    };
    switch(1);
    h.engine.idle().await;
    switch(2);
    h.engine.idle().await;
    assert_eq!(h.last().result, Some(Outcome::Committed));
    // A rollback from 2 to 1 removes db: its data stays.
    h.engine.rollback(None).unwrap();
    h.engine.idle().await;
    assert_eq!(
        (h.last().result, h.running()),
        (Some(Outcome::Committed), g(1))
    );
    assert!(purges(&h).is_empty(), "{:?}", purges(&h));
    switch(2);
    h.engine.idle().await;
    // A switch that removes db and rolls back: its data stays.
    h.engine
        .switch(
            GenerationId(3),
            windlass_agent::ops::switch::SwitchOptions {
                deadline_sec: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    h.engine.idle().await;
    assert_eq!(
        (h.last().result, h.running()),
        (Some(Outcome::RolledBack), g(2))
    );
    assert!(purges(&h).is_empty(), "{:?}", purges(&h));
    // Committed: db's volume goes, after the commit, in a phase of its own.
    switch(1);
    h.engine.idle().await;
    let r = h.last();
    assert_eq!(
        (r.result, h.running()),
        (Some(Outcome::Committed), g(1)),
        "{r:?}"
    );
    assert_eq!(purges(&h), vec!["volume-rm systemd-vmdata".to_string()]);
    let phases: Vec<&str> = r.history.iter().map(|(p, _)| p.as_str()).collect();
    let at = |p: &str| phases.iter().position(|x| *x == p).unwrap();
    assert!(at("committing") < at("purging-data"), "{phases:?}");
}

/// Which volumes a committed switch purges: those of the removed apps
/// that asked for it, never one an app of the new generation mounts (an
/// app renamed, keeping its data) or lists.
#[test]
fn volumes_to_purge_keeps_what_the_new_generation_mounts() {
    use windlass_agent::contract::Manifest;
    use windlass_agent::ops::switch::volumes_to_purge;
    let m = |apps: serde_json::Value| -> Manifest {
        serde_json::from_value(serde_json::json!({"format": 1, "apps": apps})).unwrap()
    };
    let from = m(serde_json::json!([
        {"name": "db", "unit": "db.service", "volumes": ["pgdata", "pgwal"],
         "purge_on_remove": ["pgdata", "pgwal"]},
        {"name": "cache", "unit": "cache.service", "volumes": ["cache"],
         "purge_on_remove": ["cache"]},
        {"name": "web", "unit": "web.service", "volumes": ["uploads"]},
    ]));
    // db renamed postgres, keeping pgdata; cache and web removed.
    let to = m(serde_json::json!([
        {"name": "postgres", "unit": "postgres.service", "volumes": ["pgdata"]},
    ]));
    assert_eq!(volumes_to_purge(&from, &to), vec!["cache", "pgwal"]);
    // Nothing removed: nothing purged.
    assert!(volumes_to_purge(&from, &from).is_empty());
}

/// Calls racing with the same request id start one operation, and each
/// is answered with it; a request is answered with its operation also
/// after that operation changed what a new call would be checked against.
#[tokio::test(flavor = "multi_thread")]
async fn racing_calls_with_one_request_start_one_operation() {
    let h = host(3).await;
    let before = h.engine.runner.store.all().len();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (engine, barrier) = (h.engine.clone(), barrier.clone());
            tokio::task::spawn_blocking(move || {
                barrier.wait();
                let opts = windlass_agent::ops::switch::SwitchOptions {
                    request: Some("race/1".into()),
                    ..Default::default()
                };
                engine.switch(GenerationId(2), opts).map(|r| r.id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for c in calls {
        ids.push(c.await.unwrap().expect("every call is answered"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    h.engine.idle().await;
    let all = h.engine.runner.store.all();
    assert_eq!(all.len(), before + 1);
    assert_eq!(all.last().unwrap().request.as_deref(), Some("race/1"));
    assert_eq!(h.selected(), g(2));
    // Generation 2 runs and is selected now (a new switch to it would be
    // refused): the request is still answered with its operation.
    let opts = windlass_agent::ops::switch::SwitchOptions {
        request: Some("race/1".into()),
        ..Default::default()
    };
    assert_eq!(h.engine.switch(GenerationId(2), opts).unwrap().id, ids[0]);
    // A malformed one is refused before anything is looked at.
    let opts = windlass_agent::ops::switch::SwitchOptions {
        request: Some("race 1".into()),
        ..Default::default()
    };
    let e = h.engine.switch(GenerationId(3), opts).unwrap_err();
    assert!(e.to_string().contains("not a request id"), "{e}");
    assert_eq!(h.engine.runner.store.all().len(), before + 1);
}
