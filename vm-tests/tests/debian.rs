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
            "agent/systemd/windlass-sweep.service",
            "windlass-sweep.service",
        ),
        ("agent/systemd/windlass-sweep.timer", "windlass-sweep.timer"),
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
    // S: A plus `rel`, on release 1.0.0 from the guest's registry.
    variant("gen-s", &|t: &str| t.to_string());
    fs::write(
        share.join("src/gen-s/apps/rel.toml"),
        "description = \"VM test: an app that follows its releases\"\n\n\
         [container]\nimage = \"localhost:5000/windlass-test/rel:1.0.0\"\n\
         entrypoint = [\"/bin/httpd\"]\ncommand = [\"-f\", \"-p\", \"8090\", \"-h\", \"/www\"]\n\n\
         [health]\ncmd = [\"/bin/wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8090/\"]\n\
         interval = \"2s\"\nretries = 5\n\n[release]\ntrack = \"semver\"\n",
    )
    .unwrap();
    generate(&share.join("src/gen-s"), &share.join("data/gen-s"));
    fs::remove_dir_all(share.join("src")).unwrap();
}

fn prepare(share: &Path) {
    let root = repo_root();
    let vm = root.join("vm-tests");
    install_agent(share);
    agent_generations(share);
    install(&vm.join("debian/guest-run.sh"), &share.join("guest-run.sh"));
    // WINDLASS_VM_ONLY=03,15 boots with only those scenarios (while
    // working on one; the other tests then fail for want of facts).
    let only = std::env::var("WINDLASS_VM_ONLY").unwrap_or_default();
    for e in fs::read_dir(vm.join("debian/scenarios")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !only.is_empty() && !only.split(',').any(|o| name.starts_with(o)) {
            continue;
        }
        install(&p, &share.join("scenarios").join(p.file_name().unwrap()));
    }
    generate(&vm.join("fleets/basic"), &share.join("data/basic"));
    generate(&torture_dir(), &share.join("data/torture"));
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

#[test]
fn sweep_timer_upgrades_to_a_new_release_and_promotes_it() {
    if !vm_enabled("sweep_timer_upgrades_to_a_new_release_and_promotes_it") {
        return;
    }
    let r = run();
    let dir = r.scenario("15-sweep");
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
    let journal = read("sweep.journal");
    assert_eq!(
        read("push.rcs"),
        "push 1.0.0 0\npush 1.1.0 0\n",
        "{}",
        read("push.log")
    );
    assert!(
        read("timers").contains("windlass-sweep.timer"),
        "{}",
        read("timers")
    );
    assert_eq!(read("switch.rc").trim(), "0", "{}", read("switch.out"));
    assert_eq!(
        read("image-before").trim(),
        "localhost:5000/windlass-test/rel:1.0.0"
    );
    // First fire: upgraded through a switch, promoted.
    assert_eq!(prop(&read("sweep1.show"), "Result"), "success", "{journal}");
    assert_eq!(
        read("image-after").trim(),
        "localhost:5000/windlass-test/rel:1.1.0",
        "{journal}"
    );
    let canonical: serde_json::Value =
        serde_json::from_str(&read("canonical.json")).expect("a promoted release is recorded");
    assert_eq!(canonical["tag"], "1.1.0");
    let lines: Vec<serde_json::Value> = read("sweeps.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per app per run: {lines:?}");
    assert_eq!(lines[0]["app"], "rel");
    assert_eq!(lines[0]["result"], "committed", "{lines:?}");
    assert_eq!(lines[0]["from"], "1.0.0");
    assert_eq!(lines[0]["to"], "1.1.0");
    // Second fire: a no-op.
    assert_eq!(prop(&read("sweep2.show"), "Result"), "success");
    assert_eq!(lines[1]["result"], "skipped", "{lines:?}");
    assert_ne!(lines[0]["sweep"], lines[1]["sweep"]);
    let pid = prop(&read("rel-1.show"), "MainPID");
    assert!(!pid.is_empty() && pid != "0", "rel runs: {pid:?}");
    assert_eq!(
        pid,
        prop(&read("rel-2.show"), "MainPID"),
        "the second sweep restarted nothing"
    );
    let (s1, s2) = (status(&dir, "status-1.json"), status(&dir, "status-2.json"));
    assert_eq!(s1["running"], s2["running"]);
    assert_eq!(s1["selected"], s1["running"], "the upgrade was committed");
}
