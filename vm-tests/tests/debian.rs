//! The Debian VM scenarios (see `windlass_vm_tests`): each test judges one
//! scenario's facts, collected in the guest by `debian/scenarios/<n>.sh`
//! during one shared boot.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use windlass::emit::{NixosBackend, Target};
use windlass::model::{Fleet, load_fleet};
use windlass::pipeline::{self, Options};
use windlass_vm_tests::{Run, install, repo_root, shared_run, vm_enabled};

fn generate(fleet: &Path, out: &Path) {
    let opts = Options {
        podman_version: None,
        templates: None,
        targets: [Target::Quadlet, Target::Systemd].into_iter().collect(),
        nixos_backend: NixosBackend::default(),
    };
    let built = pipeline::build(fleet, &opts)
        .unwrap_or_else(|e| panic!("generate {}: {e}", fleet.display()));
    windlass::output::write(out, &built.files).unwrap();
}

fn load(dir: &Path) -> Fleet {
    load_fleet(dir).unwrap().fleet.expect("fleet is valid")
}

fn torture_dir() -> std::path::PathBuf {
    repo_root().join("generator/tests/fleets/torture")
}

/// The agent's binaries, built for this run, and its unit, D-Bus policy
/// and systemd generator from `agent/`.
fn install_agent(share: &Path) {
    let root = repo_root();
    let st = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "windlass-agent", "--bins"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(st.success(), "building windlassd failed");
    // target/debug/deps/<test> → target/debug
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for b in ["windlassd", "windlassctl"] {
        install(&bin_dir.join(b), &share.join("bin").join(b));
    }
    for (from, to) in [
        ("agent/systemd/windlassd.service", "windlassd.service"),
        ("agent/systemd/windlass-generator", "windlass-generator"),
        (
            "agent/dbus/io.windlass.Agent1.conf",
            "io.windlass.Agent1.conf",
        ),
    ] {
        install(&root.join(from), &share.join("agent").join(to));
    }
}

/// Generation A: the basic fleet; B: web gets an env var; C: B with a
/// health check that never passes and a 25 s deadline.
fn agent_generations(share: &Path) {
    let basic = repo_root().join("vm-tests/fleets/basic");
    let variant = |name: &str, edit: &dyn Fn(&str) -> String| {
        let tmp = share.join("src").join(name);
        for sub in ["", "apps"] {
            fs::create_dir_all(tmp.join(sub)).unwrap();
        }
        fs::copy(basic.join("windlass.toml"), tmp.join("windlass.toml")).unwrap();
        fs::copy(basic.join("apps/db.toml"), tmp.join("apps/db.toml")).unwrap();
        let web = fs::read_to_string(basic.join("apps/web.toml")).unwrap();
        fs::write(tmp.join("apps/web.toml"), edit(&web)).unwrap();
        generate(&tmp, &share.join("data").join(name));
    };
    let b = |t: &str| {
        t.replace(
            "networks = [\"vmnet\"]\n",
            "networks = [\"vmnet\"]\nenv = { MARK = \"b\" }\n",
        )
    };
    variant("gen-a", &|t: &str| t.to_string());
    variant("gen-b", &b);
    variant("gen-c", &|t: &str| {
        let t = b(t);
        let start = t
            .find("cmd = [\"/bin/wget\"")
            .expect("web has a health cmd");
        let end = start + t[start..].find('\n').unwrap();
        format!(
            "{}cmd = [\"/bin/false\"]{}\n[update]\nhealth_deadline = \"25s\"\n",
            &t[..start],
            &t[end..]
        )
    });
    fs::remove_dir_all(share.join("src")).unwrap();
}

fn prepare(share: &Path) {
    let root = repo_root();
    let vm = root.join("vm-tests");
    install_agent(share);
    agent_generations(share);
    install(&vm.join("debian/guest-run.sh"), &share.join("guest-run.sh"));
    for e in fs::read_dir(vm.join("debian/scenarios")).unwrap() {
        let p = e.unwrap().path();
        install(&p, &share.join("scenarios").join(p.file_name().unwrap()));
    }
    generate(&vm.join("fleets/basic"), &share.join("data/basic"));
    generate(&torture_dir(), &share.join("data/torture"));
    self_upgrade_build(share);
}

fn run() -> Run {
    shared_run(prepare)
}

fn show(dir: &Path, unit: &str) -> BTreeMap<String, String> {
    fs::read_to_string(dir.join(format!("{unit}.show")))
        .unwrap_or_else(|_| panic!("no facts for {unit}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn generate_then_run() {
    if !vm_enabled("generate_then_run") {
        return;
    }
    let r = run();
    let dir = r.scenario("01-generate-run");
    let log = fs::read_to_string(dir.join("journal")).unwrap_or_default();
    let start_rc = fs::read_to_string(dir.join("start-rc")).unwrap();
    assert_eq!(
        start_rc.trim(),
        "0",
        "systemctl start web.service failed:\n{log}"
    );
    let generated = fs::read_to_string(dir.join("generated-units")).unwrap();
    for u in [
        "db.service",
        "web.service",
        "vmnet-network.service",
        "vmdata-volume.service",
    ] {
        assert!(
            generated.contains(u),
            "quadlet did not generate {u}: {generated}"
        );
    }
    let db = show(&dir, "db.service");
    let web = show(&dir, "web.service");
    for (name, s) in [("db", &db), ("web", &web)] {
        assert_eq!(s["ActiveState"], "active", "{name}: {s:?}\n{log}");
        assert_eq!(s["SubState"], "running", "{name}: {s:?}");
    }
    // Requires= + After=: web left "inactive" only once db was active
    // (which, with Notify=healthy, means healthy).
    let db_active: u64 = db["ActiveEnterTimestampMonotonic"].parse().unwrap();
    let web_start: u64 = web["InactiveExitTimestampMonotonic"].parse().unwrap();
    assert!(
        db_active > 0 && db_active <= web_start,
        "db active at {db_active}, web started at {web_start}"
    );
    let health = fs::read_to_string(dir.join("health")).unwrap();
    assert!(
        health.contains("db healthy") && health.contains("web healthy"),
        "{health}"
    );
    let http = fs::read_to_string(dir.join("http")).unwrap();
    assert_eq!(
        http.trim(),
        "windlass test page",
        "published port serves the page"
    );
    let timers = fs::read_to_string(dir.join("timers")).unwrap();
    assert!(timers.contains("web-stamp.timer"), "{timers}");
    let job = fs::read_to_string(dir.join("job")).unwrap();
    assert_eq!(
        job, "job ran: arg with space %n\n",
        "the job's argv reached its command"
    );
}

#[test]
fn argv_round_trip_through_quadlet_and_systemd() {
    if !vm_enabled("argv_round_trip_through_quadlet_and_systemd") {
        return;
    }
    let r = run();
    let dir = r.scenario("02-argv-roundtrip");
    let fleet = load(&torture_dir());
    let read = |name: &str| -> Vec<String> {
        let bytes = fs::read(dir.join("argv").join(name)).unwrap_or_else(|_| {
            panic!(
                "no argv recorded for {name}; recorded: {}",
                fs::read_to_string(dir.join("recorded")).unwrap_or_default()
            )
        });
        let mut v: Vec<String> = bytes
            .split(|b| *b == 0)
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        assert_eq!(v.pop().as_deref(), Some(""), "NUL-terminated");
        v
    };
    let flag = |argv: &[String], f: &str| -> Vec<String> {
        argv.windows(2)
            .filter(|w| w[0] == f)
            .map(|w| w[1].clone())
            .collect()
    };
    let mut checked = 0;
    for app in &fleet.apps {
        let argv = read(&app.service_name());
        assert_eq!(argv[0], "run", "{}", app.name);
        let c = &app.container;
        let env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(flag(&argv, "--env"), env, "{}: env", app.name);
        let labels = flag(&argv, "--label");
        for (k, v) in &c.labels {
            assert!(
                labels.contains(&format!("{k}={v}")),
                "{}: label {k}",
                app.name
            );
        }
        let at = argv
            .iter()
            .position(|a| a == &c.image.full)
            .expect("image in argv");
        let tail = argv[at + 1..].to_vec();
        let mut want = Vec::new();
        let mut got = Vec::new();
        if let Some(ep) = &c.entrypoint {
            want.extend(ep.clone());
            got.extend(
                serde_json::from_str::<Vec<String>>(&flag(&argv, "--entrypoint")[0]).unwrap(),
            );
        }
        want.extend(c.command.clone().unwrap_or_default());
        got.extend(tail);
        assert_eq!(got, want, "{}: entrypoint + command", app.name);
        if let Some(cmd) = app.health.as_ref().and_then(|h| h.cmd.as_ref()) {
            let got: Vec<String> = serde_json::from_str(&flag(&argv, "--health-cmd")[0]).unwrap();
            assert_eq!(&got, cmd, "{}: health command", app.name);
        }
        for job in &app.jobs {
            if job.command[0] == "/bin/echo" {
                let mut want = job.command.clone();
                want.remove(0);
                assert_eq!(read("echo"), want, "{}-{}: job argv", app.name, job.name);
                checked += 1;
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "checked {checked}");
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap_or_else(|_| panic!("no {f} in {}", dir.display()))
}

fn prop(show: &str, key: &str) -> String {
    show.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn switch_healthy_restarts_only_the_changed_app() {
    if !vm_enabled("switch_healthy_restarts_only_the_changed_app") {
        return;
    }
    let r = run();
    let dir = r.scenario("03-switch-healthy");
    assert_eq!(
        prop(&read(&dir, "windlassd.show"), "ActiveState"),
        "active",
        "windlassd runs under systemd"
    );
    let gens = read(&dir, "generations");
    assert_eq!(gens.trim(), "1 2", "content-addressed generations");
    for g in ["a", "b"] {
        let rc = read(&dir, &format!("switch-{g}.rc"));
        assert_eq!(
            rc.trim(),
            "0",
            "switch to {g}: {}{}",
            read(&dir, &format!("switch-{g}.out")),
            read(&dir, &format!("switch-{g}.err"))
        );
        assert_eq!(read(&dir, &format!("switch-{g}.out")).trim(), "committed");
    }
    let (db_a, db_b) = (read(&dir, "db-a.show"), read(&dir, "db-b.show"));
    let (web_a, web_b) = (read(&dir, "web-a.show"), read(&dir, "web-b.show"));
    for s in [&db_a, &db_b, &web_a, &web_b] {
        assert_eq!(prop(s, "ActiveState"), "active", "{s}");
    }
    assert_ne!(prop(&db_a, "MainPID"), "0");
    assert_eq!(
        prop(&db_a, "MainPID"),
        prop(&db_b, "MainPID"),
        "db was not restarted"
    );
    assert_ne!(
        prop(&web_a, "MainPID"),
        prop(&web_b, "MainPID"),
        "web was restarted"
    );
    assert!(
        read(&dir, "web-env-b").lines().any(|l| l == "MARK=b"),
        "web runs generation B"
    );
    let status: serde_json::Value = serde_json::from_str(&read(&dir, "status.json")).unwrap();
    assert_eq!(status["selected"], "2");
    assert_eq!(status["running"], "2");
}

#[test]
fn switch_unhealthy_rolls_back_on_its_own() {
    if !vm_enabled("switch_unhealthy_rolls_back_on_its_own") {
        return;
    }
    let r = run();
    let dir = r.scenario("04-switch-unhealthy");
    let rc = read(&dir, "switch-c.rc");
    let out = read(&dir, "switch-c.json");
    assert_eq!(
        rc.trim(),
        "3",
        "windlassctl exits with the rolled-back code: {out}{}",
        read(&dir, "switch-c.err")
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"], "rolled-back");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("not healthy within 25 s"), "{err}");
    assert!(err.contains("last journal lines of web.service"), "{err}");
    let elapsed: u64 = read(&dir, "elapsed").trim().parse().unwrap();
    // The gate gives up at 25 s; stopping the unhealthy container (10 s
    // stop timeout) and the previous one becoming healthy again follow.
    assert!(
        elapsed < 25 + 60,
        "rolled back {elapsed} s after the switch (deadline 25 s)"
    );
    let web = read(&dir, "web.show");
    assert_eq!(
        prop(&web, "ActiveState"),
        "active",
        "the previous generation runs again: {web}"
    );
    assert!(
        read(&dir, "web-env").lines().any(|l| l == "MARK=b"),
        "web runs generation B again"
    );
    let status: serde_json::Value = serde_json::from_str(&read(&dir, "status.json")).unwrap();
    assert_eq!(status["selected"], "2");
    assert_eq!(status["running"], "2");
    let journal = read(&dir, "journal-op");
    assert!(
        journal.contains("operation step"),
        "the journal tells the operation's story: {journal}"
    );
    assert!(
        journal.contains("web"),
        "and holds the failing unit's lines: {journal}"
    );
    let revert = read(&dir, "revert-units");
    assert!(
        !revert.contains("windlass-revert"),
        "the revert timer is disarmed: {revert}"
    );
}

fn status(dir: &Path, f: &str) -> serde_json::Value {
    serde_json::from_str(&read(dir, f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

#[test]
fn manual_confirm_reverts_unconfirmed_and_commits_confirmed() {
    if !vm_enabled("manual_confirm_reverts_unconfirmed_and_commits_confirmed") {
        return;
    }
    let r = run();
    let dir = r.scenario("05-manual-confirm");
    assert_eq!(
        read(&dir, "unconfirmed.rc").trim(),
        "3",
        "{}{}",
        read(&dir, "unconfirmed.out"),
        read(&dir, "unconfirmed.err")
    );
    assert!(read(&dir, "unconfirmed.err").contains("not confirmed within 30 s"));
    assert_eq!(status(&dir, "status-unconfirmed.json")["selected"], "2");
    assert_eq!(
        read(&dir, "confirmed.rc").trim(),
        "0",
        "{}",
        read(&dir, "confirmed.err")
    );
    assert_eq!(read(&dir, "confirmed.out").trim(), "committed");
    let s = status(&dir, "status-confirmed.json");
    assert_eq!(
        (s["selected"].as_str(), s["running"].as_str()),
        (Some("1"), Some("1"))
    );
}

#[test]
fn explicit_rollback_returns_to_an_older_generation() {
    if !vm_enabled("explicit_rollback_returns_to_an_older_generation") {
        return;
    }
    let r = run();
    let dir = r.scenario("06-explicit-rollback");
    assert_eq!(
        read(&dir, "switch-b.rc").trim(),
        "0",
        "{}",
        read(&dir, "switch-b.out")
    );
    assert_eq!(
        read(&dir, "rollback.rc").trim(),
        "0",
        "{}",
        read(&dir, "rollback.err")
    );
    assert_eq!(read(&dir, "rollback.out").trim(), "committed");
    assert!(
        !read(&dir, "web-env").contains("MARK=b"),
        "web runs generation A again"
    );
    let s = status(&dir, "status.json");
    assert_eq!(
        (s["selected"].as_str(), s["running"].as_str()),
        (Some("1"), Some("1"))
    );
}

#[test]
fn unauthorised_callers_are_refused_over_the_system_bus() {
    if !vm_enabled("unauthorised_callers_are_refused_over_the_system_bus") {
        return;
    }
    let r = run();
    let dir = r.scenario("07-unauthorised");
    let rcs = read(&dir, "rcs");
    let mut lines = rcs.lines();
    assert_eq!(lines.next(), Some("status 0"), "reading is open: {rcs}");
    for l in lines {
        let (cmd, rc) = l.split_once(' ').unwrap();
        assert_eq!(
            rc,
            "4",
            "{cmd} refused with exit 4: {}",
            read(&dir, &format!("err-{cmd}"))
        );
        assert!(
            read(&dir, &format!("err-{cmd}")).contains("AccessDenied"),
            "{cmd}"
        );
    }
    assert_eq!(
        status(&dir, "before.json"),
        status(&dir, "after.json"),
        "nothing changed"
    );
}

/// The version the self-upgrade scenario's second windlassd build reports.
const UPGRADE_VERSION: &str = "0.1.0+vm-upgrade";

/// A second windlassd, stamped with another version (`WINDLASS_VERSION`),
/// for scenario 21; built in its own target directory so the binaries the
/// other tests run stay as they are.
fn self_upgrade_build(share: &Path) {
    let root = repo_root();
    let target = root.join("target/vm-self-upgrade");
    let st = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "windlass-agent", "--bin", "windlassd"])
        .env("CARGO_TARGET_DIR", &target)
        .env("WINDLASS_VERSION", UPGRADE_VERSION)
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(st.success(), "building the second windlassd failed");
    install(
        &target.join("debug/windlassd"),
        &share.join("www/windlassd-2"),
    );
}

#[test]
fn cutover_commits_a_good_version_refuses_a_failing_self_test_and_reverts_a_sick_one() {
    if !vm_enabled(
        "cutover_commits_a_good_version_refuses_a_failing_self_test_and_reverts_a_sick_one",
    ) {
        return;
    }
    let r = run();
    let dir = r.scenario("20-cutover");
    let facts = |p: &str| {
        (
            read(&dir, &format!("{p}.link")),
            read(&dir, &format!("{p}.show")),
            read(&dir, &format!("{p}.health")),
            read(&dir, &format!("{p}.artifacts")),
        )
    };
    assert_eq!(facts("start").2.trim(), "1", "hello 1 runs and answers");
    // A good version commits: adopted, swapped, restarted, healthy.
    assert_eq!(
        read(&dir, "good.rc").trim(),
        "0",
        "{}{}",
        read(&dir, "good.out"),
        read(&dir, "good.err")
    );
    assert_eq!(read(&dir, "good.out").trim(), "committed");
    let good = facts("good");
    assert_eq!(
        good.0.trim(),
        "/var/lib/windlass/artifacts/hello/2/hello",
        "the link names version 2"
    );
    assert_eq!(good.2.trim(), "2", "hello 2 runs and answers");
    assert_eq!(prop(&good.1, "ActiveState"), "active");
    assert_ne!(
        prop(&facts("start").1, "MainPID"),
        prop(&good.1, "MainPID"),
        "the unit was restarted"
    );
    assert!(good.3.contains("artifacts/hello/adopted-"), "{}", good.3);
    // A failing self-test is refused and changes nothing.
    assert_eq!(
        read(&dir, "bad.rc").trim(),
        "1",
        "{}",
        read(&dir, "bad.err")
    );
    assert_eq!(read(&dir, "bad.out").trim(), "failed");
    assert!(
        read(&dir, "bad.err").contains("--self-test"),
        "{}",
        read(&dir, "bad.err")
    );
    assert_eq!(
        facts("bad"),
        good,
        "link, unit (same PID) and artifacts unchanged"
    );
    // A version that starts but never answers is reverted.
    assert_eq!(
        read(&dir, "sick.rc").trim(),
        "3",
        "{}{}",
        read(&dir, "sick.out"),
        read(&dir, "sick.err")
    );
    assert!(read(&dir, "sick.err").contains("not healthy within 15 s"));
    let elapsed: u64 = read(&dir, "sick.elapsed").trim().parse().unwrap();
    // The gate gives up at 15 s; the restart back and the download and
    // self-test before it are slow under TCG (54 s measured).
    assert!(elapsed < 15 + 105, "reverted {elapsed} s after the cutover");
    let sick = facts("sick");
    assert_eq!(sick.0, good.0, "the link is back on version 2");
    assert_eq!(sick.2.trim(), "2", "hello 2 answers again");
    assert_eq!(prop(&sick.1, "ActiveState"), "active");
    assert_eq!(sick.3, good.3, "the sick version was removed again");
    assert!(
        !read(&dir, "windlass-units").contains("windlass-revert"),
        "revert timers are disarmed: {}",
        read(&dir, "windlass-units")
    );
}

#[test]
fn agent_self_upgrade_commits_a_good_build_and_the_revert_timer_undoes_a_crashing_one() {
    if !vm_enabled(
        "agent_self_upgrade_commits_a_good_build_and_the_revert_timer_undoes_a_crashing_one",
    ) {
        return;
    }
    let r = run();
    let dir = r.scenario("21-self-upgrade");
    let journal = || read(&dir, "windlassd.journal");
    assert_eq!(read(&dir, "up.rc").trim(), "0", "{}", read(&dir, "up.err"));
    assert_eq!(
        read(&dir, "up.result").trim(),
        "s \"committed\"",
        "{}",
        journal()
    );
    assert_ne!(read(&dir, "version-before"), read(&dir, "version-after"));
    assert_eq!(
        read(&dir, "version-after").trim(),
        format!("s \"{UPGRADE_VERSION}\""),
        "Version on the bus is the new build's"
    );
    let new_exe = "/var/lib/windlass/artifacts/windlassd/2/windlassd";
    assert_eq!(read(&dir, "exe-after").trim(), new_exe);
    assert_eq!(read(&dir, "up.link").trim(), new_exe);
    assert!(
        !read(&dir, "up.revert-units").contains("windlass-revert"),
        "the new agent disarmed the revert timer: {}",
        read(&dir, "up.revert-units")
    );
    // The crashing build: the link named it, the agent did not come up,
    // the timer reverted.
    assert_eq!(
        read(&dir, "crash.rc").trim(),
        "0",
        "{}",
        read(&dir, "crash.err")
    );
    assert_eq!(
        read(&dir, "crash.during-link").trim(),
        "/var/lib/windlass/artifacts/windlassd/crash/windlassd"
    );
    assert_eq!(
        read(&dir, "crash.result").trim(),
        "s \"rolled-back\"",
        "{}\n{}",
        journal(),
        read(&dir, "revert.journal")
    );
    assert!(
        read(&dir, "crash.error").contains("did not come up"),
        "{}",
        read(&dir, "crash.error")
    );
    assert_eq!(read(&dir, "crash.link").trim(), new_exe);
    assert_eq!(read(&dir, "exe-final").trim(), new_exe);
    assert_eq!(
        read(&dir, "version-final").trim(),
        format!("s \"{UPGRADE_VERSION}\""),
        "the previous agent answers again"
    );
    let elapsed: u64 = read(&dir, "crash.elapsed").trim().parse().unwrap();
    assert!(
        elapsed <= 20 + 60 + 60,
        "reverted {elapsed} s after the cutover (timer at deadline 20 s + 60 s)"
    );
}
