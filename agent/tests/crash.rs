//! Crash matrix: for every persisted step of Switch and Rollback, windlassd
//! is killed (SIGKILL, via the test-only fault hook) right after the
//! record for that step is on disk, then started again. The host must end
//! on exactly one generation (running = selected) with the record
//! resolved. Needs the `fault-injection` feature (tools/test enables it):
//! without it this test fails rather than skip.

mod common;

#[cfg(not(feature = "fault-injection"))]
#[test]
fn crash_matrix() {
    panic!(
        "the crash matrix needs windlassd built with the fault-injection feature: \
         cargo nextest run --workspace --features windlass-agent/fault-injection (tools/test does)"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn crash_matrix() {
    use std::time::{Duration, Instant};

    use common::*;

    let cases: &[(&str, &str, &str, &str)] = &[
        // (kind, step, expected result, expected generation)
        ("switch", "recorded", "canceled", "1"),
        ("switch", "arming", "canceled", "1"),
        ("switch", "activating", "rolled-back", "1"),
        ("switch", "health-gate", "rolled-back", "1"),
        ("switch", "committing", "committed", "2"),
        ("switch", "rolling-back", "rolled-back", "1"),
        ("rollback", "recorded", "canceled", "2"),
        ("rollback", "activating", "committed", "1"),
        ("rollback", "health-gate", "committed", "1"),
        ("rollback", "committing", "committed", "1"),
    ];
    let mut table = vec![format!(
        "{:<9} {:<13} {:<12} {:<8} {:<8} {}",
        "kind", "killed at", "result", "running", "selected", "ok"
    )];
    let mut failures = Vec::new();
    for (kind, step, want_result, want_gen) in cases {
        let bus = bus();
        let tmp = tempfile::tempdir().unwrap();
        let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
        let (g1, g2, g3) = (
            tmp.path().join("g1"),
            tmp.path().join("g2"),
            tmp.path().join("g3"),
        );
        generation(&basic_fleet(), &g1, |t| t.to_string());
        generation(&basic_fleet(), &g2, |t| t.replace("\"8080\"", "\"8081\""));
        unhealthy_generation(&basic_fleet(), &g3, |t| t.replace("\"8080\"", "\"8082\""));
        {
            let a = agent(&bus, &state, &run, "nogroup-x", &[]);
            for g in [&g1, &g2, &g3] {
                assert!(a.ctl(&["stage", g.to_str().unwrap()]).status.success());
            }
            assert!(a.ctl(&["switch", "1"]).status.success());
            if *kind == "rollback" {
                assert!(a.ctl(&["switch", "2"]).status.success());
            }
        }
        let mut a = agent(&bus, &state, &run, "nogroup-x", &[("WINDLASS_FAULT", step)]);
        let trigger: Vec<&str> = match (*kind, *step) {
            ("rollback", _) => vec!["rollback", "1", "--no-wait"],
            (_, "rolling-back") => vec!["switch", "3", "--deadline", "1", "--no-wait"],
            _ => vec!["switch", "2", "--no-wait"],
        };
        let _ = a.ctl(&trigger);
        let start = Instant::now();
        let died = loop {
            if let Some(st) = a.child.try_wait().unwrap() {
                break Some(st);
            }
            if start.elapsed() > Duration::from_secs(20) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            died.is_some(),
            "{kind}/{step}: windlassd was not killed at that step"
        );
        drop(a);
        let a = agent(&bus, &state, &run, "nogroup-x", &[]);
        a.wait_idle();
        let store = windlass_agent::store::Store::new(&state);
        let records = store.all();
        let last = records.last().unwrap();
        let result = last.result.map(|o| o.as_str()).unwrap_or("UNFINISHED");
        let running = std::fs::read_link(run.join("current"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "-".into());
        let selected = std::fs::read_link(state.join("profiles/system"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "-".into());
        let ok = result == *want_result
            && running == *want_gen
            && selected == *want_gen
            && records.iter().all(|r| r.finished());
        table.push(format!(
            "{kind:<9} {step:<13} {result:<12} {running:<8} {selected:<8} {}",
            if ok { "ok" } else { "FAIL" }
        ));
        if !ok {
            failures.push(format!(
                "{kind}/{step}: expected {want_result} on {want_gen}"
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}
