//! Crash matrices of switch, rollback, sweep and restore: for every phase
//! of [`SwitchPhase::ALL`], [`RollbackPhase::ALL`], [`SweepPhase::ALL`]
//! and [`RestorePhase::ALL`]
//! windlassd is killed (SIGKILL, via the test-only fault hook) right after
//! the record for that phase is on disk, then started again. The host must
//! end on exactly one generation (running = selected) with every record
//! resolved. Expectations are exhaustive matches: a new phase does not
//! compile until its row is written. Built only with the
//! `fault-injection` feature (tools/test enables it).

mod common;
#[path = "../../net/tests/common/mod.rs"]
mod net;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use windlass_agent::record::{RestorePhase, RollbackPhase, SweepPhase, SwitchPhase};

/// How a switch from 1 to 2 (3, unhealthy, to reach `rolling-back`;
/// manual confirm, to reach `waiting-confirm`) ends after a kill there:
/// (trigger, expected result, expected generation).
fn switch_case(p: SwitchPhase) -> (Vec<&'static str>, &'static str, &'static str) {
    let to2 = vec!["switch", "2", "--no-wait"];
    match p {
        SwitchPhase::Recorded | SwitchPhase::Arming => (to2, "canceled", "1"),
        // The hook that was running runs again, then the switch goes back.
        SwitchPhase::HookPreActivate | SwitchPhase::HookPreCommit => (to2, "rolled-back", "1"),
        SwitchPhase::Activating | SwitchPhase::HealthGate => (to2, "rolled-back", "1"),
        SwitchPhase::WaitingConfirm => (
            vec!["switch", "2", "--confirm", "manual", "--no-wait"],
            "rolled-back",
            "1",
        ),
        SwitchPhase::Committing | SwitchPhase::HookPostCommit | SwitchPhase::Finished => {
            (to2, "committed", "2")
        }
        // 4 removes db, whose data 1 says to purge.
        SwitchPhase::PurgingData => (vec!["switch", "4", "--no-wait"], "committed", "4"),
        SwitchPhase::RollingBack | SwitchPhase::HookDown => (
            vec!["switch", "3", "--deadline", "1", "--no-wait"],
            "rolled-back",
            "1",
        ),
    }
}

/// A first switch (no generation ran before) to 1 (2, unhealthy, to
/// reach `rolling-back`): the way back is to no generation (`-`).
fn first_switch_case(p: SwitchPhase) -> Option<(Vec<&'static str>, &'static str, &'static str)> {
    let to1 = vec!["switch", "1", "--no-wait"];
    Some(match p {
        // No app is removed by a first switch: nothing to purge.
        SwitchPhase::PurgingData => return None,
        SwitchPhase::Recorded | SwitchPhase::Arming => (to1, "canceled", "-"),
        SwitchPhase::HookPreActivate | SwitchPhase::HookPreCommit => (to1, "rolled-back", "-"),
        SwitchPhase::Activating | SwitchPhase::HealthGate => (to1, "rolled-back", "-"),
        SwitchPhase::WaitingConfirm => (
            vec!["switch", "1", "--confirm", "manual", "--no-wait"],
            "rolled-back",
            "-",
        ),
        SwitchPhase::Committing | SwitchPhase::HookPostCommit | SwitchPhase::Finished => {
            (to1, "committed", "1")
        }
        SwitchPhase::RollingBack | SwitchPhase::HookDown => (
            vec!["switch", "2", "--deadline", "1", "--no-wait"],
            "rolled-back",
            "-",
        ),
    })
}

/// A rollback from 2 to 1.
fn rollback_case(p: RollbackPhase) -> (&'static str, &'static str) {
    match p {
        RollbackPhase::Recorded => ("canceled", "2"),
        RollbackPhase::HookDown
        | RollbackPhase::Activating
        | RollbackPhase::HealthGate
        | RollbackPhase::Committing
        | RollbackPhase::Finished => ("committed", "1"),
    }
}

/// A sweep on generation 1 that finds a new release of its app: (the
/// sweep's result, the generation the host ends on).
fn sweep_case(p: SweepPhase) -> (&'static str, &'static str) {
    match p {
        SweepPhase::Recorded => ("canceled", "1"),
        // Killed before its switch began: nothing moved.
        SweepPhase::Discovering | SweepPhase::Upgrading => ("failed", "1"),
        SweepPhase::Finished => ("committed", "2"),
    }
}

/// Gives web in the generation at `dir` a hook of every kind, each
/// appending `<kind>:web` to `markers` (a stand-in for a migration; the
/// agent runs hooks as child processes under `--systemd none`).
fn with_hooks(dir: &Path, markers: &Path) {
    let path = dir.join("windlass-generation.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let hook = |kind: &str| {
        serde_json::json!({
            "argv": ["/bin/sh", "-c", format!("echo {kind}:web >> {}", markers.display())],
            "retries": 0,
            "timeout_sec": 30,
        })
    };
    let apps = m["apps"].as_array_mut().unwrap();
    let web = apps.iter_mut().find(|a| a["name"] == "web").unwrap();
    web["hooks"] = serde_json::json!({
        "pre_activate": hook("pre-activate"),
        "pre_commit": hook("pre-commit"),
        "post_commit": hook("post-commit"),
        "down": hook("down"),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

/// A first switch to 1 with the fault armed at `p`: the agent must not
/// die of it, and the switch must commit without passing `p`.
fn first_switch_never_reaches(p: SwitchPhase) -> (String, bool) {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let g1 = tmp.path().join("g1");
    generation(&basic_fleet(), &g1, |t| t.to_string());
    let fault = format!("switch:{p}");
    let mut a = agent(
        &bus,
        &state,
        &run,
        "nogroup-x",
        &[("WINDLASS_FAULT", &fault)],
    );
    assert!(a.ctl(&["stage", g1.to_str().unwrap()]).status.success());
    let out = a.ctl(&["switch", "1"]);
    let alive = a.child.try_wait().unwrap().is_none();
    let records = windlass_agent::store::Store::new(&state).all();
    let passed = records
        .iter()
        .any(|r| r.history.iter().any(|(h, _)| h == p.as_str()));
    let ok = out.status.success() && alive && !passed;
    (
        format!(
            "(not reached: exit {:?}, agent alive {alive}, phase passed {passed})",
            out.status.code()
        ),
        ok,
    )
}

/// A crash in a hook phase: the hook that was running ran after the
/// restart (the kill came right after its phase was recorded, before it
/// ran). Returns why not.
fn hook_ran_again(phase: &str, markers: &Path) -> Option<String> {
    let kind = phase.strip_prefix("hook:")?;
    let seen = std::fs::read_to_string(markers).unwrap_or_default();
    let want = format!("{kind}:web");
    (!seen.lines().any(|l| l == want))
        .then(|| format!("{phase}: the hook did not run again: markers {seen:?}"))
}

fn link_name(p: &Path) -> String {
    std::fs::read_link(p)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "-".into())
}

/// Waits for the agent started with a fault to die of it.
fn killed(a: &mut Agent, what: &str) {
    let start = Instant::now();
    while a.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: windlassd was not killed at that phase"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After the restart: the last operation of `kind`, how the host stands,
/// and whether that is what was expected.
fn judge(
    state: &Path,
    run: &Path,
    kind: &str,
    want_result: &str,
    want_gen: &str,
) -> (String, bool) {
    let store = windlass_agent::store::Store::new(state);
    let records = store.all();
    let last = records
        .iter()
        .rev()
        .find(|r| r.kind().as_str() == kind)
        .unwrap();
    let result = last.result.map(|o| o.as_str()).unwrap_or("UNFINISHED");
    let running = link_name(&run.join("current"));
    let selected = link_name(&state.join("profiles/system"));
    let ok = result == want_result
        && running == want_gen
        && selected == want_gen
        && records.iter().all(|r| r.finished());
    (
        format!(
            "{result:<12} {running:<8} {selected:<8} {}",
            if ok { "ok" } else { "FAIL" }
        ),
        ok,
    )
}

#[test]
fn crash_matrix() {
    let mut table = vec![format!(
        "{:<9} {:<17} {:<12} {:<8} {:<8} ok",
        "kind", "killed after", "result", "running", "selected"
    )];
    let mut failures = Vec::new();
    let cases = SwitchPhase::ALL
        .iter()
        .map(|p| ("switch", p.as_str()))
        .chain(RollbackPhase::ALL.iter().map(|p| ("rollback", p.as_str())));
    for (kind, phase) in cases {
        let (trigger, want_result, want_gen) = match kind {
            "switch" => switch_case(
                *SwitchPhase::ALL
                    .iter()
                    .find(|p| p.as_str() == phase)
                    .unwrap(),
            ),
            _ => {
                let p = *RollbackPhase::ALL
                    .iter()
                    .find(|p| p.as_str() == phase)
                    .unwrap();
                let (r, g) = rollback_case(p);
                (vec!["rollback", "1", "--no-wait"], r, g)
            }
        };
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        let (g1, g2, g3) = (
            tmp.path().join("g1"),
            tmp.path().join("g2"),
            tmp.path().join("g3"),
        );
        let g4 = tmp.path().join("g4");
        generation(&basic_fleet(), &g1, |t| t.to_string());
        generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8081\""));
        unhealthy_generation(&basic_fleet(), &g3, |t| t.replace("\"8080\"", "\"8082\""));
        generation_without_db(&basic_fleet(), &g4, false);
        let markers = tmp.path().join("markers");
        for g in [&g1, &g2, &g3, &g4] {
            with_hooks(g, &markers);
        }
        common::purge_db_data(&g1);
        {
            let a = agent(&bus, &state, &run, "nogroup-x", &[]);
            for g in [&g1, &g2, &g3, &g4] {
                assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
            }
            assert!(a.ctl(&["switch", "1"]).status.success());
            if kind == "rollback" {
                assert!(a.ctl(&["switch", "2"]).status.success());
            }
        }
        // Only what runs from the trigger on counts.
        let _ = std::fs::remove_file(&markers);
        let fault = format!("{kind}:{phase}");
        let mut a = agent(
            &bus,
            &state,
            &run,
            "nogroup-x",
            &[("WINDLASS_FAULT", &fault)],
        );
        let _ = a.ctl(&trigger);
        killed(&mut a, &fault);
        drop(a);
        let a = agent(&bus, &state, &run, "nogroup-x", &[]);
        a.wait_idle();
        let (row, ok) = judge(&state, &run, kind, want_result, want_gen);
        table.push(format!("{kind:<9} {phase:<17} {row}"));
        if !ok {
            failures.push(format!(
                "{kind}/{phase}: expected {want_result} on {want_gen}"
            ));
        }
        failures.extend(hook_ran_again(phase, &markers));
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}

/// The switch matrix for a host's first switch: killed in any phase, the
/// host ends committed on 1 or on no generation at all, never running an
/// uncommitted one.
#[test]
fn first_switch_crash_matrix() {
    let mut table = vec![format!(
        "{:<9} {:<17} {:<12} {:<8} {:<8} ok",
        "kind", "killed after", "result", "running", "selected"
    )];
    let mut failures = Vec::new();
    for p in SwitchPhase::ALL {
        let Some((trigger, want_result, want_gen)) = first_switch_case(*p) else {
            // Never reached by a first switch: with the fault armed there,
            // the agent lives and the switch commits without that phase.
            let (row, ok) = first_switch_never_reaches(*p);
            table.push(format!("{:<9} {:<17} {row}", "first", p.as_str()));
            if !ok {
                failures.push(format!("first/{p}: reached, or did not commit"));
            }
            continue;
        };
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
        generation(&basic_fleet(), &g1, |t| t.to_string());
        unhealthy_generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8082\""));
        let markers = tmp.path().join("markers");
        for g in [&g1, &g2] {
            with_hooks(g, &markers);
        }
        {
            let a = agent(&bus, &state, &run, "nogroup-x", &[]);
            for g in [&g1, &g2] {
                assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
            }
        }
        let _ = std::fs::remove_file(&markers);
        let fault = format!("switch:{p}");
        let mut a = agent(
            &bus,
            &state,
            &run,
            "nogroup-x",
            &[("WINDLASS_FAULT", &fault)],
        );
        let _ = a.ctl(&trigger);
        killed(&mut a, &fault);
        drop(a);
        let a = agent(&bus, &state, &run, "nogroup-x", &[]);
        a.wait_idle();
        let (row, ok) = judge(&state, &run, "switch", want_result, want_gen);
        table.push(format!("{:<9} {:<17} {row}", "first", p.as_str()));
        if !ok {
            failures.push(format!("first/{p}: expected {want_result} on {want_gen}"));
        }
        failures.extend(hook_ran_again(p.as_str(), &markers));
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}

#[test]
fn sweep_crash_matrix() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(net::push_tags(reg.port, "fleet/web", &["1.0.0"]));
    let mut table = vec![format!(
        "{:<9} {:<17} {:<12} {:<8} {:<8} ok",
        "kind", "killed after", "result", "running", "selected"
    )];
    let mut failures = Vec::new();
    for (i, p) in SweepPhase::ALL.iter().enumerate() {
        let (want_result, want_gen) = sweep_case(*p);
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        // Each case has its own repository, so its tags are its own.
        let repo = format!("fleet/web{i}");
        rt.block_on(net::push_tags(reg.port, &repo, &["1.0.0"]));
        let g1 = tmp.path().join("g1");
        // Only web tracks releases.
        generation(&basic_fleet(), &g1, |t| {
            if !t.contains("8080") {
                return t.to_string();
            }
            t.replace(
                "image = \"localhost/windlass-test/busybox:1.0\"",
                &format!("image = \"{r0}/{repo}:1.0.0\""),
            ) + "\n[release]\ntrack = \"semver\"\n"
        });
        let extra = ["--insecure-registry", r0.as_str()];
        {
            let a = agent_with(&bus, &state, &run, "nogroup-x", &[], &extra);
            assert!(a.ctl(&["stage", g1.to_str().unwrap()]).status.success());
            assert!(a.ctl(&["switch", "1"]).status.success());
        }
        rt.block_on(net::push_tags(reg.port, &repo, &["1.1.0"]));
        let fault = format!("sweep:{p}");
        let env = [("WINDLASS_FAULT", fault.as_str())];
        let mut a = agent_with(&bus, &state, &run, "nogroup-x", &env, &extra);
        let _ = a.ctl(&["sweep", "--no-wait"]);
        killed(&mut a, &fault);
        drop(a);
        let a = agent_with(&bus, &state, &run, "nogroup-x", &[], &extra);
        a.wait_idle();
        let (row, ok) = judge(&state, &run, "sweep", want_result, want_gen);
        table.push(format!("{:<9} {:<17} {row}", "sweep", p.as_str()));
        if !ok {
            failures.push(format!("sweep/{p}: expected {want_result} on {want_gen}"));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}

/// How a restore of an edited Quadlet file ends after a kill there, and
/// whether the file is back as the generation has it.
fn restore_case(p: RestorePhase) -> (&'static str, bool) {
    match p {
        RestorePhase::Recorded => ("canceled", false),
        RestorePhase::Rewriting
        | RestorePhase::Reloading
        | RestorePhase::Restarting
        | RestorePhase::HealthGate
        | RestorePhase::Finished => ("committed", true),
    }
}

#[test]
fn restore_crash_matrix() {
    let mut table = vec![format!(
        "{:<9} {:<17} {:<12} {:<10} ok",
        "kind", "killed after", "result", "file"
    )];
    let mut failures = Vec::new();
    for p in RestorePhase::ALL {
        let (want_result, want_restored) = restore_case(*p);
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let extra = ["--drift-root", root.to_str().unwrap()];
        let g1 = tmp.path().join("g1");
        generation(&basic_fleet(), &g1, |t| t.to_string());
        {
            let a = agent_with(&bus, &state, &run, "nogroup-x", &[], &extra);
            assert!(a.ctl(&["stage", g1.to_str().unwrap()]).status.success());
            assert!(a.ctl(&["switch", "1"]).status.success());
        }
        let file = state.join("generations/1/quadlet/web.container");
        let pristine = std::fs::read(&file).unwrap();
        std::fs::write(&file, b"[Container]\nImage=edited\n").unwrap();
        let fault = format!("restore:{p}");
        let env = [("WINDLASS_FAULT", fault.as_str())];
        let mut a = agent_with(&bus, &state, &run, "nogroup-x", &env, &extra);
        // Killed at `recorded` before it answers: the reply is no matter.
        let _ = a.ctl(&["drift", "restore", "--no-wait"]);
        killed(&mut a, &fault);
        drop(a);
        let a = agent_with(&bus, &state, &run, "nogroup-x", &[], &extra);
        let start = Instant::now();
        while a.property("/io/windlass/Agent1", "io.windlass.Agent1", "State") != "s \"idle\"" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "restore/{p}: the agent stayed busy: {}",
                std::fs::read_to_string(&a.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let records = windlass_agent::store::Store::new(&state).all();
        let last = records
            .iter()
            .rev()
            .find(|r| r.kind().as_str() == "restore")
            .unwrap();
        let result = last.result.map(|o| o.as_str()).unwrap_or("UNFINISHED");
        let restored = std::fs::read(&file).unwrap() == pristine;
        let ok = result == want_result
            && restored == want_restored
            && records.iter().all(|r| r.finished());
        table.push(format!(
            "{:<9} {:<17} {result:<12} {:<10} {}",
            "restore",
            p.as_str(),
            if restored { "restored" } else { "edited" },
            if ok { "ok" } else { "FAIL" }
        ));
        if !ok {
            failures.push(format!(
                "restore/{p}: expected {want_result}, restored {want_restored}"
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}

/// A restarted agent takes its bus name before it resolves what the
/// restart interrupted (windlassd is a Type=dbus service: a recovery that
/// re-runs a long hook must not hold up its start, or systemd kills it),
/// and refuses new operations as busy until the recovery ends.
#[test]
fn a_restarted_agent_is_on_the_bus_before_a_long_recovery_and_busy_until_it_ends() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
    generation(&basic_fleet(), &g1, |t| t.to_string());
    generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8081\""));
    let markers = tmp.path().join("markers");
    for g in [&g1, &g2] {
        with_hooks(g, &markers);
    }
    // 2's pre-commit hook takes a while.
    let path = g2.join("windlass-generation.json");
    let slow = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"echo pre-commit:web", "\"sleep 4; echo pre-commit:web");
    assert!(slow.contains("sleep 4"));
    std::fs::write(&path, slow).unwrap();
    {
        let a = agent(&bus, &state, &run, "nogroup-x", &[]);
        for g in [&g1, &g2] {
            assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
        }
        assert!(a.ctl(&["switch", "1"]).status.success());
    }
    let _ = std::fs::remove_file(&markers);
    let fault = "switch:hook:pre-commit";
    let mut a = agent(
        &bus,
        &state,
        &run,
        "nogroup-x",
        &[("WINDLASS_FAULT", fault)],
    );
    let _ = a.ctl(&["switch", "2", "--no-wait"]);
    killed(&mut a, fault);
    drop(a);

    let started = Instant::now();
    let a = agent(&bus, &state, &run, "nogroup-x", &[]);
    let on_bus = started.elapsed();
    // On the bus while the hook still runs.
    let seen = std::fs::read_to_string(&markers).unwrap_or_default();
    assert!(
        !seen.contains("pre-commit:web"),
        "the agent took its name only after the hook ran ({on_bus:?}): {seen:?}"
    );
    assert_eq!(
        a.property("/io/windlass/Agent1", "io.windlass.Agent1", "State"),
        "s \"busy\""
    );
    let refused = a.ctl(&["switch", "1", "--no-wait"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("io.windlass.Error.Busy"),
        "{}",
        stderr(&refused)
    );
    a.wait_idle();
    let (row, ok) = judge(&state, &run, "switch", "rolled-back", "1");
    assert!(ok, "{row}");
    assert!(hook_ran_again("hook:pre-commit", &markers).is_none());
    // The refused switch left no record.
    let switches = windlass_agent::store::Store::new(&state)
        .all()
        .iter()
        .filter(|r| r.kind().as_str() == "switch")
        .count();
    assert_eq!(switches, 2, "switch 1, the interrupted switch 2");
    eprintln!("on the bus {on_bus:?} after the restart");
}
