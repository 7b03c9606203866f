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
    let mut rn = doubles::runner(&state, Native::new(&state, &tmp.path().join("run")), &fake);
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
    if gens > 0 {
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
            SwitchPhase::Activating
            | SwitchPhase::HealthGate
            | SwitchPhase::WaitingConfirm
            | SwitchPhase::RollingBack => (Outcome::RolledBack, 1),
            SwitchPhase::Committing => (Outcome::Committed, 2),
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
        });
        h.engine.runner.store.save(&r).unwrap();
        if *phase == RollbackPhase::Committing {
            // Its activation was done.
            let run = h.tmp.path().join("run/current");
            swap_symlink(&run, &h.state.join("generations/1")).unwrap();
        }
        let want = match phase {
            RollbackPhase::Recorded => (Outcome::Canceled, 2),
            RollbackPhase::Activating | RollbackPhase::HealthGate | RollbackPhase::Committing => {
                (Outcome::Committed, 1)
            }
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
