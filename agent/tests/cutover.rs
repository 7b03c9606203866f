//! Cutover against the real things: a real dbus-daemon, the real
//! windlassctl, nginx serving versions over HTTPS with a test CA on
//! loopback. The agent runs in this process (its systemd is the
//! recording stand-in, so the test can tell whether a unit was restarted)
//! for the refusal and revert cases, and as the real windlassd for the
//! zero-gap run. Every refusal must leave the link, the unit and the
//! artifacts directory exactly as they were.

mod common;
mod doubles;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doubles::Fake;
use support::*;
use windlass_agent::dbus::{self, Signals, access::Access};
use windlass_agent::ops::Engine;
use windlass_agent::ops::cutover::Settings;
use windlass_agent::ops::runner::Runner;
use windlass_agent::platform::native::Native;
use windlass_agent::store::Store;

struct InProcess {
    engine: Arc<Engine<Native, Fake>>,
    fake: Fake,
    _conn: zbus::Connection,
    address: String,
}

async fn agent_in_process(
    bus: &common::Bus,
    state: &Path,
    run: &Path,
    targets: &Path,
    ca: &Path,
) -> InProcess {
    let fake = Fake::default();
    let (signals, rx) = Signals::channel();
    let http = windlass_net::client(&windlass_net::ClientOptions {
        extra_roots_pem: vec![std::fs::read(ca).unwrap()],
        ..Default::default()
    })
    .unwrap();
    let mut rn = Runner::new(
        Store::new(state),
        Native::new(state, run),
        fake.clone(),
        http,
        Arc::new(signals),
    );
    rn.poll = Duration::from_millis(100);
    let engine = Arc::new(Engine::new(
        rn,
        Settings::new(state, targets),
        Default::default(),
    ));
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    dbus::export(&conn, engine.clone(), Access::for_group("nogroup-x"))
        .await
        .unwrap();
    tokio::spawn(dbus::run_signals(conn.clone(), engine.clone(), rx));
    conn.request_name(windlass_agent::BUS_NAME).await.unwrap();
    InProcess {
        engine,
        fake,
        _conn: conn,
        address: bus.address.clone(),
    }
}

struct Ctl {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn ctl(address: &str, args: &[&str]) -> Ctl {
    let out = tokio::process::Command::new(common::windlassctl_bin())
        .args(["--bus", address])
        .args(args)
        .output()
        .await
        .unwrap();
    Ctl {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn restarts(fake: &Fake, unit: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| *c == &format!("restart {unit}"))
        .count()
}

fn run_link(link: &Path) -> String {
    let out = std::process::Command::new(link).output().unwrap();
    assert!(out.status.success(), "{} failed", link.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutover_over_https_commits_and_every_refusal_changes_nothing() {
    let bus = common::bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let (ca, cert, key) = test_ca(&{
        let d = tmp.path().join("tls");
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let files: &[(&str, Vec<u8>)] = &[
        ("svc-2", script("svc-2", PASSES)),
        ("svc-3", script("svc-3", PASSES)),
        ("self-test-fails", script("bad", FAILS)),
        ("self-test-hangs", script("hangs", HANGS)),
        ("too-big", vec![b'#'; 100_000]),
    ];
    for (n, b) in files {
        std::fs::write(www.join(n), b).unwrap();
    }
    std::fs::write(www.join("healthz"), b"ok").unwrap();
    let sha = |n: &str| sha256(&files.iter().find(|f| f.0 == n).unwrap().1);
    let nginx = nginx_https(&www, &cert, &key);
    let url = |p: &str| format!("https://127.0.0.1:{}/{p}", nginx.port);

    // The target: a plain file at the link (adopted on first use), a unit,
    // an HTTP health check.
    let targets = tmp.path().join("targets");
    let link = tmp.path().join("bin/svc");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::write(&link, script("svc-1", PASSES)).unwrap();
    std::fs::set_permissions(&link, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    target(
        &targets,
        "svc",
        &format!(
            "link = \"{}\"\nunit = \"svc.service\"\nhealth_http = \"{}\"\ndeadline = 10\nkeep = 2\nmax_bytes = 65536\nself_test_timeout = 2\n",
            link.display(),
            url("healthz")
        ),
    );
    let a = agent_in_process(&bus, &state, &run, &targets, &ca).await;
    let artifacts = state.join("artifacts");
    let staging = state.join("staging");

    // Refusals: at the call (exit 4, typed error) or as a failed operation
    // (exit 1); either way nothing changes.
    let zeros = "0".repeat(64);
    let http_url = format!("http://127.0.0.1:{}/svc-2", nginx.port);
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "unknown target",
            vec!["nope".into(), "2".into(), url("svc-2"), sha("svc-2")],
            4,
            "io.windlass.Error.NotFound",
        ),
        (
            "version with a slash",
            vec!["svc".into(), "../2".into(), url("svc-2"), sha("svc-2")],
            4,
            "io.windlass.Error.InvalidArgument",
        ),
        (
            "malformed sha256",
            vec!["svc".into(), "2".into(), url("svc-2"), "abc".into()],
            4,
            "expected 64 hex digits",
        ),
        (
            "plain http",
            vec!["svc".into(), "2".into(), http_url, sha("svc-2")],
            4,
            "refusing plain http",
        ),
        (
            "wrong sha256",
            vec!["svc".into(), "2".into(), url("svc-2"), zeros],
            1,
            "sha256 mismatch",
        ),
        (
            "truncated download",
            vec!["svc".into(), "2".into(), url("truncated"), sha("svc-2")],
            1,
            "staging failed",
        ),
        (
            "over the size cap",
            vec!["svc".into(), "2".into(), url("too-big"), sha("too-big")],
            1,
            "larger than the 65536 byte limit",
        ),
        (
            "missing file",
            vec!["svc".into(), "2".into(), url("nope"), sha("svc-2")],
            1,
            "answered 404",
        ),
        (
            "self-test fails",
            vec![
                "svc".into(),
                "2".into(),
                url("self-test-fails"),
                sha("self-test-fails"),
            ],
            1,
            "--self-test: exit status: 3",
        ),
        (
            "self-test hangs",
            vec![
                "svc".into(),
                "2".into(),
                url("self-test-hangs"),
                sha("self-test-hangs"),
            ],
            1,
            "did not finish within 2 s",
        ),
    ];
    let before = snapshot(&link, &artifacts);
    assert_eq!(
        before.len(),
        1,
        "a plain file and no artifacts yet: {before:?}"
    );
    for (what, args, code, needle) in &cases {
        let mut argv = vec!["cutover"];
        argv.extend(args.iter().map(String::as_str));
        let started = Instant::now();
        let out = ctl(&a.address, &argv).await;
        assert_eq!(
            out.code,
            Some(*code),
            "{what}: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
        if *code == 1 {
            assert_eq!(out.stdout.trim(), "failed", "{what}");
        }
        if *what == "self-test hangs" {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the timeout held"
            );
        }
        assert_eq!(
            snapshot(&link, &artifacts),
            before,
            "{what} changed the link or the artifacts"
        );
        assert_eq!(
            restarts(&a.fake, "svc.service"),
            0,
            "{what} restarted the unit"
        );
        assert!(
            std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0,
            "{what} left a download behind"
        );
    }
    // The hanging self-test was killed, not left behind.
    let ps = std::process::Command::new("pgrep")
        .args(["-fx", "sleep 6061"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "self-test still running"
    );

    // Success: adopted, swapped, restarted, healthy, committed; progress
    // shown live.
    let out = ctl(
        &a.address,
        &["cutover", "svc", "2", &url("svc-2"), &sha("svc-2")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "committed");
    for phase in [
        "staging",
        "received",
        "verifying",
        "cutover",
        "confirming",
        "committing",
    ] {
        assert!(
            out.stderr.contains(phase),
            "{phase} not shown: {}",
            out.stderr
        );
    }
    assert_eq!(run_link(&link), "svc-2");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        artifacts.join("svc/2/svc")
    );
    let adopted: Vec<String> = std::fs::read_dir(artifacts.join("svc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("adopted-"))
        .collect();
    assert_eq!(adopted.len(), 1, "the plain file was adopted");
    assert_eq!(
        std::fs::read(artifacts.join("svc").join(&adopted[0]).join("svc")).unwrap(),
        script("svc-1", PASSES)
    );
    assert_eq!(restarts(&a.fake, "svc.service"), 1);

    // The version already running is refused, and changes nothing.
    let before = snapshot(&link, &artifacts);
    let out = ctl(
        &a.address,
        &["cutover", "svc", "2", &url("svc-2"), &sha("svc-2")],
    )
    .await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("already running"), "{}", out.stderr);
    // A version on disk under another digest is a verification failure.
    let out = ctl(
        &a.address,
        &["cutover", "svc", "2", &url("svc-3"), &sha("svc-3")],
    )
    .await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(snapshot(&link, &artifacts), before);
    assert_eq!(restarts(&a.fake, "svc.service"), 1);

    // Never healthy: version 3 starts but the health check fails within
    // the deadline → swapped back to 2, unit restarted, 3 removed again.
    std::fs::remove_file(www.join("healthz")).unwrap();
    let out = ctl(
        &a.address,
        &[
            "cutover",
            "svc",
            "3",
            &url("svc-3"),
            &sha("svc-3"),
            "--deadline",
            "2",
        ],
    )
    .await;
    assert_eq!(out.code, Some(3), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "rolled-back");
    assert!(
        out.stderr.contains("not healthy within 2 s"),
        "{}",
        out.stderr
    );
    assert_eq!(run_link(&link), "svc-2");
    assert_eq!(
        snapshot(&link, &artifacts),
        before,
        "back to exactly as before"
    );
    assert_eq!(
        restarts(&a.fake, "svc.service"),
        3,
        "restarted into 3, then back into 2"
    );

    // Back to the adopted original (kept: it is the previous version).
    std::fs::write(www.join("healthz"), b"ok").unwrap();
    let adopted_sha = sha256(&script("svc-1", PASSES));
    std::fs::write(www.join("svc-1"), script("svc-1", PASSES)).unwrap();
    let out = ctl(
        &a.address,
        &["cutover", "svc", &adopted[0], &url("svc-1"), &adopted_sha],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("already on disk"), "{}", out.stderr);
    assert_eq!(run_link(&link), "svc-1");

    // Then 3 (healthy now): with keep = 2, the oldest version not in use
    // and not previous goes.
    let out = ctl(
        &a.address,
        &["cutover", "svc", "3", &url("svc-3"), &sha("svc-3")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let mut versions: Vec<String> = std::fs::read_dir(artifacts.join("svc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        vec!["3".to_string(), adopted[0].clone()],
        "kept: running and previous"
    );
    assert!(a.engine.active().is_none());
}

/// Zero-gap: a tight loop execs the linked binary while 100 cutovers go
/// back and forth through the real windlassd; not one exec may fail.
#[test]
fn execs_of_the_link_never_fail_during_100_cutovers() {
    let f = fixture("");
    let (state, run) = (f.tmp.path().join("state"), f.tmp.path().join("run"));
    let versions: Vec<(String, Vec<u8>)> = ["1", "2"]
        .iter()
        .map(|v| (v.to_string(), script(&format!("tool-{v}"), PASSES)))
        .collect();
    for (v, b) in &versions {
        std::fs::write(f.www.join(format!("tool-{v}")), b).unwrap();
    }
    std::fs::write(&f.link, script("tool-0", PASSES)).unwrap();
    std::fs::set_permissions(&f.link, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let a = windlassd_for_cutover(&f.bus, &state, &run, &f.targets, &f.ca, &[]);

    // Two exec loops (as many as cores), counting every exec; the 100
    // cutovers are spread over the first 10,000 execs (cutover i waits
    // for exec 100·i), so every one of them happens mid-loop.
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let loopers: Vec<_> = (0..2)
        .map(|_| {
            let (link, stop, count) = (f.link.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut failed = Vec::new();
                let mut seen = std::collections::BTreeMap::new();
                while !stop.load(Ordering::SeqCst) {
                    match std::process::Command::new(&link).output() {
                        Ok(o) if o.status.success() => {
                            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                            if !s.starts_with("tool-") {
                                failed.push(format!("unexpected output {s:?}"));
                            }
                            *seen.entry(s).or_insert(0u64) += 1;
                        }
                        Ok(o) => failed.push(format!("{}", o.status)),
                        Err(e) => failed.push(e.to_string()),
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                }
                (failed, seen)
            })
        })
        .collect();

    let start = Instant::now();
    let mut took = Vec::new();
    let mut execs_during = 0;
    for i in 0..100u64 {
        while count.load(Ordering::SeqCst) < i * 100 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = count.load(Ordering::SeqCst);
        let (v, b) = &versions[(i % 2) as usize];
        let url = format!("https://127.0.0.1:{}/tool-{v}", f.nginx.port);
        let t = Instant::now();
        let out = a.ctl(&["cutover", "tool", v, &url, &sha256(b)]);
        took.push(t.elapsed());
        execs_during += count.load(Ordering::SeqCst) - before;
        assert_eq!(
            out.status.code(),
            Some(0),
            "cutover {i} to {v}: {}{}",
            common::stdout(&out),
            common::stderr(&out)
        );
    }
    let window = start.elapsed();
    let in_window = count.load(Ordering::SeqCst);
    while count.load(Ordering::SeqCst) < 10_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let mut failed = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for l in loopers {
        let (f, s) = l.join().unwrap();
        failed.extend(f);
        for (k, v) in s {
            *seen.entry(k).or_insert(0u64) += v;
        }
    }
    let total = count.load(Ordering::SeqCst);
    took.sort();
    eprintln!(
        "zero-gap: 100 cutovers in {:.1} s (median {} ms, slowest {} ms); {total} execs in all, {in_window} before the last cutover ended, {execs_during} while a cutover was in flight; {} failed; outputs {seen:?}",
        window.as_secs_f64(),
        took[50].as_millis(),
        took[99].as_millis(),
        failed.len(),
    );
    assert!(
        failed.is_empty(),
        "{} execs failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    assert!(in_window >= 9_900, "the cutovers were spread over the loop");
    assert!(total >= 10_000);
    assert!(
        seen.contains_key("tool-1") && seen.contains_key("tool-2"),
        "{seen:?}"
    );
    assert_eq!(
        std::fs::read_link(&f.link).unwrap(),
        state.join("artifacts/tool/2/tool")
    );
    let ops = Store::new(&state).all();
    assert_eq!(ops.len(), 100);
    assert!(
        ops.iter()
            .all(|r| r.result == Some(windlass_agent::record::Outcome::Committed))
    );
}
