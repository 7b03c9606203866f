//! The agent keeps its secrets and its footing: a credential in a cutover
//! URL reaches no signal, property, record or log; journal lines are for
//! authorised callers only; Cancel stops a download that trickles; a disk
//! that fills up during the health gate strands nothing; a state query
//! systemd never answers does not hold the health gate past its deadline.

mod common;
mod doubles;
mod support;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doubles::Fake;
use support::*;
use windlass_agent::contract::GenerationId;
use windlass_agent::ops::Engine;
use windlass_agent::platform::{Platform, native::Native};
use windlass_agent::record::Outcome;
use windlass_agent::store::Store;

/// Every file under `dir`, as text (lossy).
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in walk(dir) {
        if let Ok(b) = std::fs::read(&e) {
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            v.extend(walk(&e.path()));
        } else if t.is_file() {
            v.push(e.path());
        }
    }
    v
}

#[test]
fn credentials_in_a_cutover_url_reach_no_signal_property_record_or_log() {
    let f = fixture("deadline = 10\n");
    let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
    let body = script("tool-2", PASSES);
    std::fs::write(f.www.join("tool-2"), &body).unwrap();
    let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);
    let port = f.nginx.port;
    let good = format!(
        "https://agent:PASSWORDSECRET@127.0.0.1:{port}/tool-2?X-Amz-Signature=SIGNATURESECRET&X-Amz-Credential=KEYSECRET"
    );
    let missing =
        format!("https://127.0.0.1:{port}/missing?X-Amz-Signature=SIGNATURESECRET#FRAGSECRET");
    let mut seen = String::new();
    let ok = a.ctl(&["cutover", "tool", "2", &good, &sha256(&body)]);
    assert_eq!(ok.status.code(), Some(0), "{}", common::stderr(&ok));
    let bad = a.ctl(&["--json", "cutover", "tool", "3", &missing, &sha256(b"x")]);
    assert_eq!(bad.status.code(), Some(1), "{}", common::stderr(&bad));
    for out in [&ok, &bad] {
        // windlassctl prints every PhaseChanged detail and the Finished
        // error it receives: what any bus client could see.
        seen.push_str(&common::stdout(out));
        seen.push_str(&common::stderr(out));
    }
    assert!(seen.contains("***"), "the URLs are shown, redacted: {seen}");
    for r in Store::new(&state).all() {
        let path = format!("/io/windlass/Agent1/operation/{}", r.id);
        for p in ["Error", "Phase", "Result"] {
            seen.push_str(&a.property(&path, "io.windlass.Operation1", p));
        }
    }
    seen.push_str(&all_text(&state));
    seen.push_str(&std::fs::read_to_string(&a.log).unwrap());
    for secret in [
        "PASSWORDSECRET",
        "SIGNATURESECRET",
        "KEYSECRET",
        "FRAGSECRET",
    ] {
        assert!(!seen.contains(secret), "{secret} leaked:\n{seen}");
    }
    // The kept journal lines are for root and the group only.
    let id = Store::new(&state).all().pop().unwrap().id;
    let path = format!("/io/windlass/Agent1/operation/{id}");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["busctl", "--address", &f.bus.address, "call"])
        .args([
            "io.windlass.Agent1",
            &path,
            "io.windlass.Operation1",
            "Journal",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs root or membership"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = a.busctl(&[
        "call",
        "io.windlass.Agent1",
        &path,
        "io.windlass.Operation1",
        "Journal",
    ]);
    assert!(root.status.success(), "{}", common::stderr(&root));
}

/// Serves HTTP on loopback: headers announcing a large body, then one
/// byte every 20 s. Returns the port.
fn trickling_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: application/octet-stream\r\n\r\n",
                );
                for _ in 0..30 {
                    if s.write_all(b"#").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(20));
                }
            });
        }
    });
    port
}

#[test]
fn cancel_stops_a_download_that_trickles_within_a_second() {
    let f = fixture("deadline = 10\nallow_http = true\n");
    let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
    let port = trickling_server();
    let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);
    let url = format!("http://127.0.0.1:{port}/tool-2");
    let out = a.ctl(&["cutover", "tool", "2", &url, &sha256(b"x"), "--no-wait"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let path = common::stdout(&out).trim().to_string();
    let start = Instant::now();
    while a.property(&path, "io.windlass.Operation1", "Phase") != "s \"staging\"" {
        assert!(start.elapsed() < Duration::from_secs(10), "never staging");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let out = a.ctl(&["cancel", &path]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    while a.property(&path, "io.windlass.Operation1", "Result") == "s \"\"" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the download was not interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    assert_eq!(
        a.property(&path, "io.windlass.Operation1", "Result"),
        "s \"canceled\""
    );
    assert!(took < Duration::from_secs(2), "canceled after {took:?}");
    assert_eq!(
        std::fs::read_dir(state.join("staging"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing left in staging"
    );
    assert!(!f.link.exists(), "the link was never touched");
    assert_eq!(
        a.property("/io/windlass/Agent1", "io.windlass.Agent1", "State"),
        "s \"idle\""
    );
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` on `dir` (created), until dropped.
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (tests run as root)"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` (a file of whatever fits).
fn fill(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_that_fills_during_the_gate_strands_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _mount = Tmpfs::mount(&state, "size=1m");
    let fake = Fake::default();
    let mut rn = doubles::runner(&state, Native::new(&state, &tmp.path().join("run")), &fake);
    rn.revert_argv = Some(vec!["windlassd".into(), "--revert".into()]);
    let e = Arc::new(Engine::new(rn, Default::default(), Default::default()));
    for n in 1..=2u64 {
        let out = tmp.path().join(format!("g{n}"));
        let port = format!("\"{}\"", 8080 + n);
        common::generation(&common::basic_fleet(), &out, |t| {
            t.replace("\"8080\"", &port)
        });
        e.runner.platform.stage(&out).unwrap();
    }
    e.switch(GenerationId(1), Default::default()).unwrap();
    e.idle().await;
    // Generation 2's web is slow to become healthy; meanwhile the disk
    // fills up.
    fake.set("web.service", "activating", "start");
    // (Its jobs leave its state to the test.)
    fake.failing_jobs.lock().unwrap().push("web.service".into());
    let r = e.switch(GenerationId(2), Default::default()).unwrap();
    let start = Instant::now();
    while e.runner.store.load(&r.id).unwrap().phase_str() != "health-gate" {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let filler = fill(&state);
    fake.set("web.service", "active", "running");
    // The commit cannot be recorded: the host goes back, and the end of
    // the operation waits for the disk.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(e.active().as_ref(), Some(&r.id), "still in flight");
    let gate_unit = format!("stop-transient windlass-revert-{}-gate", r.id);
    assert!(
        !fake.calls().contains(&gate_unit),
        "the revert stays armed: {:?}",
        fake.calls()
    );
    std::fs::remove_file(&filler).unwrap();
    e.idle().await;
    let rec = e.runner.store.load(&r.id).unwrap();
    assert_eq!(rec.result, Some(Outcome::RolledBack), "{rec:?}");
    assert!(rec.error.contains("cannot persist"), "{}", rec.error);
    let p = &e.runner.platform;
    assert_eq!(
        (p.running(), p.selected()),
        (Some(GenerationId(1)), Some(GenerationId(1)))
    );
    let temps: Vec<_> = walk(&state.join("operations"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    // Disarmed once the record was durable.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.calls().contains(&gate_unit), "{:?}", fake.calls());
}

/// The record of operation `id` in `state`, as JSON (None while it cannot
/// be read).
fn record_json(state: &Path) -> Vec<serde_json::Value> {
    let Ok(rd) = std::fs::read_dir(state.join("operations")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

/// Answers every connection on `l` with 200 (web's probe, once "healthy").
fn serve_ok(l: std::net::TcpListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
}

/// The same as above, end to end with the real windlassd (`--systemd
/// none`) and windlassctl, as the audit of c5888f6 did: the state
/// directory on a small tmpfs fills while the gate waits for web's HTTP
/// probe, then the probe answers. Whatever the agent does (roll back or
/// commit once space returns), the switch must end with a result, the host
/// running what it has selected, and no temporary file left behind.
#[test]
fn a_disk_that_fills_during_the_gate_strands_nothing_end_to_end() {
    use common::*;
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let run = tmp.path().join("run");
    let _mount = Tmpfs::mount(&state, "size=2m,mode=0700");
    // web's probe port: free now, served later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = agent(&bus, &state, &run, "nogroup-x", &[]);
    let g1 = tmp.path().join("g1");
    let g2 = tmp.path().join("g2");
    generation(&basic_fleet(), &g1, |t| t.to_string());
    unhealthy_generation(&basic_fleet(), &g2, |t| {
        t.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
    });
    for (g, want) in [(&g1, "1"), (&g2, "2")] {
        let out = a.ctl(&["stage", g.to_str().unwrap()]);
        assert_eq!(stdout(&out).trim(), want, "{}", stderr(&out));
    }
    let out = a.ctl(&["switch", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut sw = std::process::Command::new(windlassctl_bin())
        .args(["--bus", &a.address, "switch", "2", "--deadline", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !record_json(&state)
        .iter()
        .any(|r| r["phase"] == "health-gate" && r["to_generation"] == "2")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no gate: {:?}",
            record_json(&state)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let filler = fill(&state);
    serve_ok(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    let ended = loop {
        if let Some(st) = sw.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = sw.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    let records = record_json(&state);
    let switch2 = records
        .iter()
        .find(|r| r["kind"] == "switch" && r["to_generation"] == "2")
        .unwrap_or_else(|| panic!("no record of the switch: {records:?}"));
    assert!(
        ended.is_some() && !switch2["result"].is_null(),
        "the switch never ended once space returned: {switch2}\nagent log:\n{log}"
    );
    let running = std::fs::read_link(run.join("current")).unwrap();
    let selected = std::fs::read_link(state.join("profiles/system")).unwrap();
    assert_eq!(
        running.file_name(),
        selected.file_name(),
        "running {running:?}, selected {selected:?}: {switch2}"
    );
    let temps: Vec<_> = walk(&state.join("operations"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    assert!(
        log.contains("cannot persist") || log.contains("No space left"),
        "the full disk was not reported:\n{log}"
    );
}

/// A bus call to systemd that never returns (seen once in CI under heavy
/// load: a switch stayed at the health gate for 15 minutes) ends the
/// gate at its deadline, blaming the unit, instead of holding the switch.
#[tokio::test]
async fn a_state_query_systemd_never_answers_ends_the_gate_at_its_deadline() {
    let fake = Fake::default();
    fake.set("web.service", "active", "running");
    fake.silent.lock().unwrap().push("db.service".into());
    let gate = windlass_agent::health::Gate {
        units: vec!["web.service".into(), "db.service".into()],
        http: Vec::new(),
        deadline: Duration::from_secs(2),
        poll: Duration::from_millis(50),
    };
    let http = windlass_net::client(&Default::default()).unwrap();
    let started = Instant::now();
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        windlass_agent::health::wait(&fake, &gate, &http, || false, |_, _| {}),
    )
    .await
    .expect("the gate must end by itself");
    let elapsed = started.elapsed();
    match waited {
        Err(windlass_agent::health::GateFailure::Unhealthy { unit, reason }) => {
            assert_eq!(unit.as_deref(), Some("db.service"));
            assert!(reason.contains("did not answer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}
