//! Crash matrix over the cutover phases: windlassd is killed (SIGKILL,
//! via the test-only fault hook) right after the record for each phase is
//! on disk, then started again. The link must end on exactly one version
//! — the old one unless the commit had begun — with the record resolved,
//! no download left in staging, and no half-installed version in the
//! artifacts. One row per phase of [`CutoverPhase::ALL`]: a new phase
//! does not compile until its expected outcome is written here. Built
//! only with the `fault-injection` feature (tools/test enables it).

mod common;
mod support;

use std::time::{Duration, Instant};

use support::*;
use windlass_agent::record::CutoverPhase;

/// (expected result, expected version, the new version is unhealthy)
fn expected(p: CutoverPhase) -> (&'static str, &'static str, bool) {
    match p {
        CutoverPhase::Recorded | CutoverPhase::Staging | CutoverPhase::Verifying => {
            ("canceled", "1", false)
        }
        CutoverPhase::Cutover | CutoverPhase::Confirming => ("rolled-back", "1", false),
        CutoverPhase::Committing | CutoverPhase::Finished => ("committed", "2", false),
        CutoverPhase::RollingBack => ("rolled-back", "1", true),
    }
}

#[test]
fn cutover_crash_matrix() {
    let cases: Vec<(&str, &str, &str, bool)> = CutoverPhase::ALL
        .iter()
        .map(|p| {
            let (r, v, u) = expected(*p);
            (p.as_str(), r, v, u)
        })
        .collect();
    let mut table = vec![format!(
        "{:<13} {:<12} {:<8} {:<10} {}",
        "killed at", "result", "link", "artifacts", "ok"
    )];
    let mut failures = Vec::new();
    for (step, want_result, want_version, unhealthy) in &cases {
        let f = fixture("deadline = 10\n");
        let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
        let scripts: Vec<Vec<u8>> = (1..=2)
            .map(|v| script(&format!("tool-{v}"), PASSES))
            .collect();
        for (i, b) in scripts.iter().enumerate() {
            std::fs::write(f.www.join(format!("tool-{}", i + 1)), b).unwrap();
        }
        let url = |v: usize| format!("https://127.0.0.1:{}/tool-{v}", f.nginx.port);
        {
            let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);
            let out = a.ctl(&["cutover", "tool", "1", &url(1), &sha256(&scripts[0])]);
            assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        }
        if *unhealthy {
            std::fs::remove_file(f.www.join("healthz")).unwrap();
        }
        let mut a = windlassd_for_cutover(
            &f.bus,
            &state,
            &run,
            &f.targets,
            &f.ca,
            &[("WINDLASS_FAULT", &format!("cutover:{step}"))],
        );
        let sha2 = sha256(&scripts[1]);
        let mut trigger = vec!["cutover", "tool", "2"];
        let u2 = url(2);
        trigger.extend([u2.as_str(), sha2.as_str(), "--no-wait"]);
        if *unhealthy {
            trigger.extend(["--deadline", "1"]);
        }
        let _ = a.ctl(&trigger);
        let start = Instant::now();
        let died = loop {
            if let Some(st) = a.child.try_wait().unwrap() {
                break Some(st);
            }
            if start.elapsed() > Duration::from_secs(30) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            died.is_some(),
            "{step}: windlassd was not killed at that step"
        );
        drop(a);
        let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);
        a.wait_idle();
        let records = windlass_agent::store::Store::new(&state).all();
        let last = records.last().unwrap();
        let result = last.result.map(|o| o.as_str()).unwrap_or("UNFINISHED");
        let link = std::fs::read_link(&f.link)
            .ok()
            .and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().to_string())
            })
            .unwrap_or_else(|| "-".into());
        let runs = std::process::Command::new(&f.link)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let mut versions: Vec<String> = std::fs::read_dir(state.join("artifacts/tool"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        versions.sort();
        let staged = std::fs::read_dir(state.join("staging"))
            .map(|d| d.count())
            .unwrap_or(0);
        let want_versions: Vec<String> = if *want_version == "2" {
            vec!["1".into(), "2".into()]
        } else {
            vec!["1".into()]
        };
        let ok = result == *want_result
            && link == *want_version
            && runs == format!("tool-{want_version}")
            && versions == want_versions
            && staged == 0
            && records.iter().all(|r| r.finished());
        table.push(format!(
            "{step:<13} {result:<12} {link:<8} {:<10} {}",
            versions.join(","),
            if ok { "ok" } else { "FAIL" }
        ));
        if !ok {
            failures.push(format!(
                "{step}: expected {want_result} on {want_version}, got {result} on {link} \
                 (runs {runs:?}, versions {versions:?}, {staged} staged): {}",
                last.error
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}\n{}", table.join("\n"));
}
