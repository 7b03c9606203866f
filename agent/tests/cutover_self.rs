//! Self-upgrade without systemd: the real windlassd runs from a link
//! (`--systemd none`), so the test plays systemd's part — after the old
//! agent swapped its link and queued its restart, the test stops it and
//! starts whatever the link names. A good build commits once it is on the
//! bus; a build that dies at start is undone by what the external revert
//! timer runs (`<old windlassd> --revert OP`), and the old agent answers
//! again. The Debian VM scenarios do the same under real systemd.

mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;
use windlass_agent::record::Outcome;
use windlass_agent::store::Store;

fn wait_for_phase(state: &Path, phase: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(r) = Store::new(state).all().last()
            && r.phase_str() == phase
        {
            return r.id.to_string();
        }
        assert!(
            // A debug windlassd is ~130 MB to download, hash and test.
            start.elapsed() < Duration::from_secs(180),
            "no operation reached {phase}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut a: common::Agent) {
    // SIGTERM, as systemd's restart job sends.
    // SAFETY: signalling a child we started and still own.
    unsafe {
        libc::kill(a.child.id() as i32, libc::SIGTERM);
    }
    let _ = a.child.wait();
}

fn exe_of(a: &common::Agent) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{}/exe", a.child.id())).unwrap()
}

struct Setup {
    f: Fixture,
    state: std::path::PathBuf,
    run: std::path::PathBuf,
    link: std::path::PathBuf,
}

fn setup() -> Setup {
    let f = fixture("");
    let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
    let link = f.tmp.path().join("bin/windlassd");
    target(
        &f.targets,
        "windlassd",
        &format!(
            "link = \"{}\"\nunit = \"windlassd.service\"\nagent = true\ndeadline = 20\n",
            link.display()
        ),
    );
    // The installed agent: a plain file at the link (adopted on first use).
    std::fs::copy(common::windlassd(), &link).unwrap();
    Setup {
        f,
        state,
        run,
        link,
    }
}

#[test]
fn a_good_new_agent_commits_its_own_upgrade_once_on_the_bus() {
    let s = setup();
    // The "new build": the same program with different bytes.
    let mut new = std::fs::read(common::windlassd()).unwrap();
    new.extend_from_slice(b"\n# windlassd build 2\n");
    std::fs::write(s.f.www.join("windlassd-2"), &new).unwrap();
    let old = windlassd_at(
        &s.link,
        &s.f.bus,
        &s.state,
        &s.run,
        &s.f.targets,
        &s.f.ca,
        &[],
    );
    let url = format!("https://127.0.0.1:{}/windlassd-2", s.f.nginx.port);
    let out = old.ctl(&[
        "cutover",
        "windlassd",
        "2",
        &url,
        &sha256(&new),
        "--no-wait",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let id = wait_for_phase(&s.state, "confirming");
    // The old agent swapped its own link and waits to be restarted.
    let new_exe = s.state.join("artifacts/windlassd/2/windlassd");
    assert_eq!(std::fs::read_link(&s.link).unwrap(), new_exe);
    assert_eq!(
        old.property("/io/windlass/Agent1", "io.windlass.Agent1", "State"),
        "s \"busy\""
    );
    stop(old);
    // "systemd" starts the unit again: the link now names the new build.
    let a = windlassd_at(
        &s.link,
        &s.f.bus,
        &s.state,
        &s.run,
        &s.f.targets,
        &s.f.ca,
        &[],
    );
    assert_eq!(exe_of(&a), new_exe);
    a.wait_idle();
    let r = Store::new(&s.state).load(&id.parse().unwrap()).unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{}", r.error);
    let path = format!("/io/windlass/Agent1/operation/{id}");
    assert_eq!(
        a.property(&path, "io.windlass.Operation1", "Result"),
        "s \"committed\""
    );
    // The old agent is kept (adopted), the way back for the next cutover.
    let kept: Vec<String> = std::fs::read_dir(s.state.join("artifacts/windlassd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(kept.iter().any(|k| k.starts_with("adopted-")), "{kept:?}");
}

#[test]
fn a_new_agent_that_dies_at_start_is_reverted_by_the_external_revert() {
    let s = setup();
    // Passes its self-test, dies at every start.
    let bad = b"#!/bin/sh\ncase \"$1\" in --self-test) exit 0;; esac\necho crashing >&2\nexit 1\n"
        .to_vec();
    std::fs::write(s.f.www.join("windlassd-bad"), &bad).unwrap();
    let old = windlassd_at(
        &s.link,
        &s.f.bus,
        &s.state,
        &s.run,
        &s.f.targets,
        &s.f.ca,
        &[],
    );
    let old_exe_bytes = std::fs::read(&s.link).unwrap();
    let url = format!("https://127.0.0.1:{}/windlassd-bad", s.f.nginx.port);
    let out = old.ctl(&[
        "cutover",
        "windlassd",
        "bad",
        &url,
        &sha256(&bad),
        "--no-wait",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let id = wait_for_phase(&s.state, "confirming");
    let r = Store::new(&s.state).load(&id.parse().unwrap()).unwrap();
    let previous = match &r.op {
        windlass_agent::record::Op::Cutover(c) => c.cutover.previous.clone().unwrap(),
        other => panic!("not a cutover: {other:?}"),
    };
    assert!(
        previous.starts_with(s.state.join("artifacts/windlassd")),
        "the old agent was adopted: {}",
        previous.display()
    );
    stop(old);
    // The new build never comes up.
    let st = std::process::Command::new(&s.link)
        .args(["--bus", &s.f.bus.address])
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert_eq!(
        Store::new(&s.state)
            .load(&id.parse().unwrap())
            .unwrap()
            .result,
        None,
        "nothing resolved it yet"
    );
    // The revert timer fires: the old binary, --revert OP.
    let out = std::process::Command::new(&previous)
        .args([
            "--bus",
            &s.f.bus.address,
            "--systemd",
            "none",
            "--platform",
            "native",
        ])
        .arg("--state-dir")
        .arg(&s.state)
        .arg("--run-dir")
        .arg(&s.run)
        .arg("--targets")
        .arg(&s.f.targets)
        .args(["--revert", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert!(
        common::stdout(&out).contains("rolled-back"),
        "{}",
        common::stdout(&out)
    );
    assert_eq!(std::fs::read_link(&s.link).unwrap(), previous);
    assert_eq!(std::fs::read(&s.link).unwrap(), old_exe_bytes);
    assert!(
        !s.state.join("artifacts/windlassd/bad").exists(),
        "the bad build is gone"
    );
    // "systemd" starts the unit again: the old agent answers.
    let a = windlassd_at(
        &s.link,
        &s.f.bus,
        &s.state,
        &s.run,
        &s.f.targets,
        &s.f.ca,
        &[],
    );
    assert_eq!(exe_of(&a), previous);
    assert_eq!(
        a.property("/io/windlass/Agent1", "io.windlass.Agent1", "Version"),
        format!("s \"{}\"", windlass_agent::VERSION)
    );
    let r = Store::new(&s.state).load(&id.parse().unwrap()).unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack));
    assert!(r.error.contains("did not come up"), "{}", r.error);
}
