//! The D-Bus API on a real dbus-daemon, with the real windlassd and
//! windlassctl: introspection matches SPEC §3.3, stage/switch/rollback run
//! through to their outcomes and exit codes, one operation at a time
//! (Busy names the one in flight), unprivileged callers are refused and
//! change nothing, operations survive an agent restart under the same path;
//! a request id makes a call idempotent, across restarts too, and
//! generations carry a digest that is the same on every host.

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

/// The operations recorded in `state` (their ids).
fn records(state: &std::path::Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("operations"))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

/// `OperationByRequest(request)` with dbus-send as `nobody` (any caller
/// may ask): Ok(object path) or Err(the error's name and message).
fn by_request(a: &Agent, request: &str) -> Result<String, String> {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "dbus-send",
            &format!("--bus={}", a.address),
            "--print-reply",
            "--dest=io.windlass.Agent1",
            AGENT,
            "io.windlass.Agent1.OperationByRequest",
            &format!("string:{request}"),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let text = stdout(&out);
    let path = text
        .split("object path \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no object path in {text}"));
    Ok(path.to_string())
}

fn status(a: &Agent) -> serde_json::Value {
    let out = a.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

fn wait_phase(a: &Agent, path: &str, phase: &str) {
    let start = std::time::Instant::now();
    while a.property(path, "io.windlass.Operation1", "Phase") != format!("s \"{phase}\"") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{path} never reached {phase}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_request_id_starts_one_operation_across_calls_and_restarts() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let mut a = agent(&bus, &state, &run, "nogroup-x", &[]);
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
    generation(&basic_fleet(), &g1, |t| t.to_string());
    generation(&basic_fleet(), &g2, |t| {
        t.replace("-p\", \"8080\"", "-p\", \"8081\"")
    });
    assert_eq!(stdout(&a.ctl(&["stage", g1.to_str().unwrap()])).trim(), "1");
    assert_eq!(stdout(&a.ctl(&["stage", g2.to_str().unwrap()])).trim(), "2");

    // A malformed request id is refused (InvalidArgument) and nothing is
    // recorded; OperationByRequest refuses it too.
    for bad in ["a b", "", &"r".repeat(129), "x;y"] {
        let out = a.ctl(&["switch", "1", "--request", bad, "--no-wait"]);
        assert_eq!(out.status.code(), Some(4), "{bad:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("io.windlass.Error.InvalidArgument")
                && stderr(&out).contains("not a request id"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let e = by_request(&a, "a b").unwrap_err();
    assert!(e.contains("io.windlass.Error.InvalidArgument"), "{e}");
    assert!(records(&state).is_empty(), "{:?}", records(&state));
    // Unknown: NotFound, for any caller.
    let e = by_request(&a, "order-1/1").unwrap_err();
    assert!(e.contains("io.windlass.Error.NotFound"), "{e}");

    // The same call twice: one operation, the same path.
    let out = a.ctl(&["switch", "1", "--request", "order-1/1", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p1 = stdout(&out).trim().to_string();
    let out = a.ctl(&["switch", "1", "--request", "order-1/1", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), p1);
    a.wait_idle();
    assert_eq!(records(&state).len(), 1);
    assert_eq!(
        a.property(&p1, "io.windlass.Operation1", "Request"),
        "s \"order-1/1\""
    );
    // Finished, the same call is answered with it again (a switch to the
    // running and selected generation would otherwise be refused), and
    // windlassctl follows it to its result.
    let out = a.ctl(&["switch", "1", "--request", "order-1/1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "committed");
    assert!(stderr(&out).contains(&p1), "{}", stderr(&out));
    assert_eq!(records(&state).len(), 1, "the host switched once");
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            state
                .join("operations")
                .join(format!("{}.json", records(&state)[0])),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["request"], "order-1/1");
    let activations = rec["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "activating")
        .count();
    assert_eq!(activations, 1, "{rec}");
    assert_eq!(by_request(&a, "order-1/1").unwrap(), p1);
    // Operations without a request keep their records as before.
    assert_eq!(a.property(AGENT, IFACE, "RunningGeneration"), "s \"1\"");

    // Status: the operation in flight and the last one, with requests.
    let st = status(&a);
    assert!(st["operation"].is_null(), "{st}");
    assert_eq!(st["last_operation"]["request"], "order-1/1", "{st}");
    assert_eq!(st["last_operation"]["result"], "committed", "{st}");
    assert_eq!(st["last_operation"]["kind"], "switch", "{st}");
    assert_eq!(st["last_operation"]["id"], records(&state)[0], "{st}");
    assert!(
        st["last_operation"]["finished_at"].as_u64().unwrap() > 0,
        "{st}"
    );
    let d1 = st["generations"][0]["digest"].as_str().unwrap().to_string();
    assert!(d1.starts_with("sha256:") && d1.len() == 7 + 64, "{d1}");
    assert_eq!(
        st["selected_ref"],
        serde_json::json!({"generation": "1", "digest": d1})
    );
    assert_eq!(st["running_ref"], st["selected_ref"]);

    let out = a.ctl(&[
        "switch",
        "2",
        "--confirm",
        "manual",
        "--deadline",
        "60",
        "--request",
        "order-1/2",
        "--no-wait",
    ]);
    let p2 = stdout(&out).trim().to_string();
    wait_phase(&a, &p2, "waiting-confirm");
    let st = status(&a);
    assert_eq!(
        st["operation"],
        serde_json::json!({
            "id": p2.rsplit('/').next().unwrap(),
            "kind": "switch",
            "phase": "waiting-confirm",
            "request": "order-1/2",
            "from": "1",
            "to": "2",
        }),
        "{st}"
    );
    assert_eq!(st["last_operation"]["request"], "order-1/1", "{st}");
    // A sweep asked for while busy is recorded as skipped, with its
    // request: asked again, it is that one (nothing new is started).
    let out = a.ctl(&["sweep", "--request", "order-1/s", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = stdout(&out).trim().to_string();
    let out = a.ctl(&["sweep", "--request", "order-1/s", "--no-wait"]);
    assert_eq!(stdout(&out).trim(), ps);
    assert_eq!(
        a.property(&ps, "io.windlass.Operation1", "Result"),
        "s \"skipped\""
    );
    assert_eq!(
        a.property(&ps, "io.windlass.Operation1", "Request"),
        "s \"order-1/s\""
    );
    assert_eq!(records(&state).len(), 3);
    // Confirmed; the same manual switch asked again is answered with it
    // (it does not wait for a second confirmation).
    assert!(a.ctl(&["confirm", &p2]).status.success());
    a.wait_idle();
    assert_eq!(
        a.property(&p2, "io.windlass.Operation1", "Result"),
        "s \"committed\""
    );
    let st = status(&a);
    assert_eq!(st["last_operation"]["request"], "order-1/2", "{st}");
    assert!(st["operation"].is_null(), "{st}");
    assert_eq!(st["selected_ref"]["generation"], "2", "{st}");
    assert_ne!(st["selected_ref"]["digest"], d1, "{st}");

    // Rollback takes a request too.
    let out = a.ctl(&["rollback", "--request", "order-1/3", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p3 = stdout(&out).trim().to_string();
    let out = a.ctl(&["rollback", "--request", "order-1/3", "--no-wait"]);
    assert_eq!(stdout(&out).trim(), p3);
    a.wait_idle();
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");
    assert_eq!(records(&state).len(), 4);

    // After a restart the index is rebuilt from the records: the same
    // calls are answered with the same operations, nothing is started.
    let _ = a.child.kill();
    let _ = a.child.wait();
    let a = agent(&bus, &state, &run, "nogroup-x", &[]);
    let out = a.ctl(&["switch", "1", "--request", "order-1/1", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), p1);
    let out = a.ctl(&["switch", "2", "--request", "order-1/2", "--no-wait"]);
    assert_eq!(stdout(&out).trim(), p2);
    assert_eq!(by_request(&a, "order-1/3").unwrap(), p3);
    assert_eq!(by_request(&a, "order-1/s").unwrap(), ps);
    assert!(by_request(&a, "order-1/4").is_err());
    assert_eq!(records(&state).len(), 4);
    assert_eq!(a.property(AGENT, IFACE, "SelectedGeneration"), "s \"1\"");
    assert_eq!(status(&a)["last_operation"]["request"], "order-1/3");
}

#[test]
fn the_same_tree_has_the_same_digest_on_two_hosts() {
    let bus = bus();
    let tmp = tempfile::tempdir().unwrap();
    let (g1, g2) = (tmp.path().join("g1"), tmp.path().join("g2"));
    generation(&basic_fleet(), &g1, |t| t.to_string());
    generation(&basic_fleet(), &g2, |t| {
        t.replace("-p\", \"8080\"", "-p\", \"8081\"")
    });
    let out = std::process::Command::new("sha256sum")
        .arg(g1.join("windlass-generation.json"))
        .output()
        .unwrap();
    let want = format!("sha256:{}", stdout(&out).split_whitespace().next().unwrap());
    let list = |a: &Agent| -> serde_json::Value {
        let out = a.ctl(&["generations", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    // Host A stages g1 as generation 1; host B stages g2 first, so g1
    // is its generation 2.
    let a = agent(
        &bus,
        &tmp.path().join("a"),
        &tmp.path().join("a-run"),
        "nogroup-x",
        &[],
    );
    assert_eq!(stdout(&a.ctl(&["stage", g1.to_str().unwrap()])).trim(), "1");
    let on_a = list(&a);
    drop(a);
    let b = agent(
        &bus,
        &tmp.path().join("b"),
        &tmp.path().join("b-run"),
        "nogroup-x",
        &[],
    );
    assert_eq!(stdout(&b.ctl(&["stage", g2.to_str().unwrap()])).trim(), "1");
    assert_eq!(stdout(&b.ctl(&["stage", g1.to_str().unwrap()])).trim(), "2");
    let on_b = list(&b);
    assert_eq!(on_a[0]["id"], "1", "{on_a}");
    assert_eq!(on_a[0]["digest"], want.as_str(), "{on_a}");
    assert_eq!(on_b[1]["id"], "2", "{on_b}");
    assert_eq!(on_b[1]["digest"], want.as_str(), "{on_b}");
    assert_ne!(on_b[0]["digest"], want.as_str(), "{on_b}");
    // Status lists the same, and no generation is selected or running.
    let st = status(&b);
    assert_eq!(st["generations"], on_b);
    assert!(
        st["selected_ref"].is_null() && st["running_ref"].is_null(),
        "{st}"
    );
    assert!(
        st["operation"].is_null() && st["last_operation"].is_null(),
        "{st}"
    );
}
