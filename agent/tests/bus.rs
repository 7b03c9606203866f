//! The D-Bus API on a real dbus-daemon, with the real windlassd and
//! windlassctl: introspection matches SPEC §3.3, stage/switch/rollback run
//! through to their outcomes and exit codes, one operation at a time
//! (Busy names the one in flight), unprivileged callers are refused and
//! change nothing, operations survive an agent restart under the same path.

mod common;

use common::*;

const AGENT: &str = "/io/windlass/Agent1";
const IFACE: &str = "io.windlass.Agent1";

fn introspect(a: &Agent, path: &str) -> String {
    let out = a.busctl(&["introspect", "--xml-interface", "io.windlass.Agent1", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `<method name="X">` … its `<arg>` types in order, as "X(in)->(out)".
fn members(xml: &str, iface: &str) -> Vec<String> {
    let start = xml
        .find(&format!("<interface name=\"{iface}\">"))
        .expect("interface present");
    let body = &xml[start..start + xml[start..].find("</interface>").unwrap()];
    let mut out = Vec::new();
    for (kind, close) in [
        ("method", "</method>"),
        ("signal", "</signal>"),
        ("property", "/>"),
    ] {
        let mut rest = body;
        let open = format!("<{kind} name=\"");
        while let Some(i) = rest.find(&open) {
            let after = &rest[i + open.len()..];
            let name = &after[..after.find('"').unwrap()];
            if kind == "property" {
                let t = after
                    .find("type=\"")
                    .map(|j| &after[j + 6..j + 6 + after[j + 6..].find('"').unwrap()])
                    .unwrap();
                out.push(format!("property {name}: {t}"));
                rest = &after[1..];
                continue;
            }
            let end = after.find(close).unwrap_or(0);
            let inner = &after[..end];
            let mut ins = String::new();
            let mut outs = String::new();
            let mut r = inner;
            while let Some(j) = r.find("<arg ") {
                let a = &r[j..r[j..].find("/>").map(|k| j + k).unwrap()];
                let t = a
                    .find("type=\"")
                    .map(|k| &a[k + 6..k + 6 + a[k + 6..].find('"').unwrap()])
                    .unwrap();
                if a.contains("direction=\"out\"") {
                    outs.push_str(t)
                } else {
                    ins.push_str(t)
                }
                r = &r[j + 4..];
            }
            out.push(format!("{kind} {name}({ins})->({outs})"));
            rest = &after[end.max(1)..];
        }
    }
    out.sort();
    out
}

#[test]
fn introspection_matches_the_spec() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let a = agent(
        &bus,
        &tmp.path().join("state"),
        &tmp.path().join("run"),
        "nogroup-x",
        &[],
    );
    let got = members(&introspect(&a, AGENT), IFACE);
    let mut want: Vec<String> = [
        "property Version: s",
        "property Platform: s",
        "property State: s",
        "property SelectedGeneration: s",
        "property RunningGeneration: s",
        "method Status()->(s)",
        "method ListGenerations()->(s)",
        "method Stage(s)->(s)",
        // The tree as a directory descriptor the caller opened (docs/agent.md#stage).
        "method StageFd(h)->(s)",
        "method Switch(sa{sv})->(o)",
        "method Rollback(sa{sv})->(o)",
        "method Confirm(o)->()",
        "method Cutover(ssssa{sv})->(o)",
        "method Sweep(a{sv})->(o)",
        "method Cancel(o)->()",
        "signal OperationStarted(o)->()",
        "signal GenerationChanged(s)->()",
        // Drift (docs/operations.md#drift): additions to SPEC §3.3.
        "property DriftCount: u",
        "method ScanDrift()->(s)",
        "method Restore(a{sv})->(o)",
        "signal DriftDetected(sa(sssss))->()",
        // For the fleet layer (docs/decisions.md#additions-for-the-fleet-layer).
        "method OperationByRequest(s)->(o)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        a.property(AGENT, IFACE, "Version"),
        format!("s \"{}\"", windlass_agent::VERSION)
    );
    assert_eq!(a.property(AGENT, IFACE, "Platform"), "s \"native\"");
    assert_eq!(a.property(AGENT, IFACE, "State"), "s \"idle\"");

    // An operation object has the Operation1 interface of the spec.
    let g1 = tmp.path().join("g1");
    generation(&basic_fleet(), &g1, |t| t.to_string());
    let out = a.ctl(&["stage", g1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = a.ctl(&["switch", "1", "--no-wait"]);
    let path = stdout(&out).trim().to_string();
    assert!(path.starts_with("/io/windlass/Agent1/operation/"), "{path}");
    let ops = members(&introspect(&a, &path), "io.windlass.Operation1");
    let mut want: Vec<String> = [
        "property Kind: s",
        "property Phase: s",
        "property Result: s",
        "property Error: s",
        "property StartedAt: t",
        "property FinishedAt: t",
        // windlass extensions: a sweep's per-app results, the enclosing
        // sweep, the journal lines kept of a failed unit and the
        // diagnostics bundle (authorised callers only).
        "property Results: s",
        "property Parent: s",
        // The caller's request id (the fleet layer's order), or "".
        "property Request: s",
        "method Bundle()->(h)",
        "method Journal()->(as)",
        "signal PhaseChanged(ss)->()",
        "signal Finished(ss)->()",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    assert_eq!(ops, want);
    a.wait_idle();
}

#[test]
fn stage_switch_rollback_busy_and_restart() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let mut a = agent(&bus, &state, &run, "nogroup-x", &[]);
    let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
    generation(&basic_fleet(), &g1, |t| t.to_string());
    generation(&basic_fleet(), &g2, |t| {
        t.replace("-p\", \"8080\"", "-p\", \"8081\"")
    });

    // Stage is content-addressed: the same tree stages once.
    assert_eq!(stdout(&a.ctl(&["stage", g1.to_str().unwrap()])).trim(), "1");
    assert_eq!(stdout(&a.ctl(&["stage", g1.to_str().unwrap()])).trim(), "1");
    assert_eq!(stdout(&a.ctl(&["stage", g2.to_str().unwrap()])).trim(), "2");
    // A tree whose files do not match its manifest is refused (exit 4).
    let bad = tmp.path().join("bad");
    generation(&basic_fleet(), &bad, |t| t.to_string());
    std::fs::write(bad.join("quadlet/web.container"), "tampered\n").unwrap();
    let out = a.ctl(&["stage", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("InvalidArgument") && stderr(&out).contains("sha256"),
        "{}",
        stderr(&out)
    );

    let out = a.ctl(&["switch", "1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), "committed");
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");
    assert_eq!(a.property(AGENT, IFACE, "RunningGeneration"), "s \"1\"");

    // Busy: a manual-confirm switch holds the slot until confirmed.
    let path = stdout(&a.ctl(&[
        "switch",
        "2",
        "--confirm",
        "manual",
        "--deadline",
        "60",
        "--no-wait",
    ]))
    .trim()
    .to_string();
    let out = a.ctl(&["rollback", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("io.windlass.Error.Busy") && stderr(&out).contains(&path),
        "{}",
        stderr(&out)
    );
    let id = path.rsplit('/').next().unwrap();
    // Wait until it waits for the confirmation, then confirm.
    let start = std::time::Instant::now();
    while a.property(&path, "io.windlass.Operation1", "Phase") != "s \"waiting-confirm\"" {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A watcher started before the confirmation sees the phases live.
    let watcher = std::process::Command::new(windlassctl_bin())
        .args(["--bus", &a.address, "watch", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(a.ctl(&["confirm", id]).status.success());
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "committed");
    assert!(
        stderr(&out).contains("committing"),
        "phases are shown live: {}",
        stderr(&out)
    );
    let out = a.ctl(&["watch", id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["result"], "committed");
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"2\"");

    // Unhealthy: web's health.http probe gets no answer within 2 s.
    let g3 = tmp.path().join("g3");
    unhealthy_generation(&basic_fleet(), &g3, |t| t.to_string());
    assert_eq!(stdout(&a.ctl(&["stage", g3.to_str().unwrap()])).trim(), "3");
    let out = a.ctl(&["switch", "3", "--deadline", "2"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "rolled back: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), "rolled-back");
    assert!(
        stderr(&out).contains("not healthy within 2 s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"2\"");
    assert_eq!(a.property(AGENT, IFACE, "RunningGeneration"), "s \"2\"");

    // Rollback to the previous committed generation (1).
    let out = a.ctl(&["rollback"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");

    // A restart re-exports every operation under the same path.
    // The records (a rolled-back switch also left its bundle, `<id>.d`).
    let ops: Vec<String> = std::fs::read_dir(state.join("operations"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    assert_eq!(ops.len(), 4);
    let _ = a.child.kill();
    let _ = a.child.wait();
    let a = agent(&bus, &state, &run, "nogroup-x", &[]);
    for id in &ops {
        let p = format!("/io/windlass/Agent1/operation/{id}");
        let r = a.property(&p, "io.windlass.Operation1", "Result");
        assert!(
            r == "s \"committed\"" || r == "s \"rolled-back\"",
            "{id}: {r}"
        );
    }
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");
}

#[test]
fn unprivileged_callers_are_refused_and_change_nothing() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let a = agent(
        &bus,
        &tmp.path().join("state"),
        &tmp.path().join("run"),
        "nogroup-x",
        &[],
    );
    let g1 = tmp.path().join("g1");
    generation(&basic_fleet(), &g1, |t| t.to_string());
    // Readable from anywhere; nobody may read it.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert!(
        a.ctl_as_nobody(&["status"]).status.success(),
        "reading is open"
    );
    let calls: &[&[&str]] = &[
        &["stage", g1.to_str().unwrap()],
        &["switch", "1"],
        &["rollback", "1"],
        &["confirm", "000000000001x000"],
        &["cancel", "000000000001x000"],
    ];
    for c in calls {
        let out = a.ctl_as_nobody(c);
        assert_eq!(out.status.code(), Some(4), "{c:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("io.windlass.Error.AccessDenied"),
            "{c:?}: {}",
            stderr(&out)
        );
    }
    // Cutover and Sweep are checked the same way (raw calls).
    for (m, sig, args) in [
        (
            "Cutover",
            "ssssa{sv}",
            vec!["t", "1", "https://x/y", "00", "0"],
        ),
        ("Sweep", "a{sv}", vec!["0"]),
    ] {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "busctl",
                "--address",
                &a.address,
                "call",
                "io.windlass.Agent1",
                AGENT,
                IFACE,
                m,
                sig,
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            !out.status.success() && stderr(&out).contains("needs root or membership"),
            "{m}: {}",
            stderr(&out)
        );
    }
    assert!(!a.state.join("generations").exists(), "nothing was staged");
    assert!(
        !a.state.join("operations").exists(),
        "no operation was started"
    );
    // The same call as root succeeds.
    assert!(a.ctl(&["stage", g1.to_str().unwrap()]).status.success());
}
