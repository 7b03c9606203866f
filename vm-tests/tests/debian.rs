//! The Debian VM scenarios (see `windlass_vm_tests`): each test judges one
//! scenario's facts, collected in the guest by `debian/scenarios/<n>.sh`
//! during one shared boot.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use windlass::emit::{NixosBackend, Target};
use windlass::model::{Fleet, load_fleet};
use windlass::pipeline::{self, Options};
use windlass_vm_tests::{
    Run, install, repo_root, roots, shared_run, standins, vm_enabled, web_toml,
};

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

/// The agent's binaries and the generator, built for this run, and the
/// agent's unit, D-Bus policy and systemd generator from `agent/`.
fn install_agent(share: &Path) {
    let root = repo_root();
    let st = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "windlass-agent",
            "-p",
            "windlass",
            "-p",
            "windlass-fleet",
            "--bins",
        ])
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
    // The generator too: scenario 22 imports and generates in the guest.
    // The fleet's too (`25-fleet`).
    for b in [
        "windlassd",
        "windlassctl",
        "windlass",
        "windlass-fleetd",
        "windlass-coordinator",
        "windlass-fleet",
    ] {
        let to = share.join("bin").join(b);
        install(&bin_dir.join(b), &to);
        // Without debug info (a tenth of the size): the guest reads each
        // over 9p under emulation, and the seven came to 800 MB.
        let st = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg(&to)
            .status()
            .expect("strip (binutils) runs");
        assert!(st.success(), "strip --strip-debug {}", to.display());
    }
    for u in [
        "windlass-fleetd.service",
        "windlass-coordinator.service",
        "windlass-fleet.sysusers",
    ] {
        install(
            &root.join("fleet/systemd").join(u),
            &share.join("fleet").join(u),
        );
    }
    install(&nats_server(), &share.join("bin/nats-server"));
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

/// The nats-server the fleet tests use (`$WINDLASS_NATS_SERVER`, set by
/// `tools/test`, else `tools/nats-server.sh`, which builds the oracle
/// rootfs once): trixie's static build, which runs in the guest as it is.
fn nats_server() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("WINDLASS_NATS_SERVER") {
        return p.into();
    }
    let o = std::process::Command::new(repo_root().join("tools/nats-server.sh"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tools/nats-server.sh failed (scenario 25 needs nats-server): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().into()
}

/// The agent scenarios' generations A–D (see [`web_toml`]), generated.
fn agent_generations(share: &Path) {
    let basic = repo_root().join("vm-tests/fleets/basic");
    let web = fs::read_to_string(basic.join("apps/web.toml")).unwrap();
    for g in ['a', 'b', 'c', 'd'] {
        let tmp = share.join("src").join(format!("gen-{g}"));
        fs::create_dir_all(tmp.join("apps")).unwrap();
        fs::copy(basic.join("windlass.toml"), tmp.join("windlass.toml")).unwrap();
        fs::copy(basic.join("apps/db.toml"), tmp.join("apps/db.toml")).unwrap();
        fs::write(tmp.join("apps/web.toml"), web_toml(g, &web)).unwrap();
        generate(&tmp, &share.join("data").join(format!("gen-{g}")));
    }
    // S: A plus `rel`, on release 1.0.0 from the guest's registry.
    let tmp = share.join("src/gen-s");
    fs::create_dir_all(tmp.join("apps")).unwrap();
    for f in ["windlass.toml", "apps/db.toml", "apps/web.toml"] {
        fs::copy(basic.join(f), tmp.join(f)).unwrap();
    }
    fs::write(
        tmp.join("apps/rel.toml"),
        "description = \"VM test: an app that follows its releases\"\n\n\
         [container]\nimage = \"localhost:5000/windlass-test/rel:1.0.0\"\n\
         entrypoint = [\"/bin/httpd\"]\ncommand = [\"-f\", \"-p\", \"8090\", \"-h\", \"/www\"]\n\
         stop_timeout = \"2s\"\n\n\
         [health]\ncmd = [\"/bin/wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8090/\"]\n\
         interval = \"10s\"\nretries = 5\n\n[release]\ntrack = \"semver\"\n",
    )
    .unwrap();
    generate(&tmp, &share.join("data/gen-s"));
    // H1, H2: db and web with lifecycle hooks (`23-hooks`). A hook runs
    // in the app's image with the app's volume: a file in db's volume
    // stands in for a schema.
    let db = fs::read_to_string(basic.join("apps/db.toml")).unwrap();
    let hook = |cmd: &str| {
        format!("{{ entrypoint = [\"/bin/sh\", \"-c\"], command = [{cmd:?}], timeout = \"2m\" }}")
    };
    // H3: db's migration takes a while (the agent is killed during it).
    for (g, web_hook, db_up) in [
        ("h1", "true", "echo h1 >> /data/schema".to_string()),
        (
            "h2",
            "echo web pre-commit fails on purpose; exit 3",
            "echo h2 >> /data/schema".to_string(),
        ),
        (
            "h3",
            "true",
            "echo start >> /data/h3-runs; sleep 10; echo h3 >> /data/schema".to_string(),
        ),
    ] {
        let tmp = share.join("src").join(format!("gen-{g}"));
        fs::create_dir_all(tmp.join("apps")).unwrap();
        fs::copy(basic.join("windlass.toml"), tmp.join("windlass.toml")).unwrap();
        let db = db.replace("ROLE = \"db\"", &format!("ROLE = \"db-{g}\""))
            + &format!(
                "\n[hooks]\npre_commit = {}\ndown = {}\n",
                hook(&db_up),
                hook(&format!("sed -i /^{g}$/d /data/schema")),
            );
        fs::write(tmp.join("apps/db.toml"), db).unwrap();
        let web = web.replace(
            "[depends]",
            &format!("[hooks]\npre_commit = {}\n\n[depends]", hook(web_hook)),
        );
        let web = web.replace(
            "command = [\"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]",
            &format!(
                "command = [\"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\nenv = {{ MARK = \"{g}\" }}"
            ),
        );
        fs::write(tmp.join("apps/web.toml"), web).unwrap();
        generate(&tmp, &share.join("data").join(format!("gen-{g}")));
    }
    // H4: H1 plus `scratch`, whose volume is purged when it is removed
    // (`23-hooks`, last: the switch back to H1 removes it).
    let h1 = share.join("src/gen-h1");
    let tmp = share.join("src/gen-h4");
    fs::create_dir_all(tmp.join("apps")).unwrap();
    for f in ["apps/db.toml", "apps/web.toml"] {
        fs::copy(h1.join(f), tmp.join(f)).unwrap();
    }
    let toml = fs::read_to_string(h1.join("windlass.toml")).unwrap();
    fs::write(tmp.join("windlass.toml"), toml + "\n[volumes.vmscratch]\n").unwrap();
    fs::write(
        tmp.join("apps/scratch.toml"),
        "description = \"VM test: data purged with the app\"\n\n\
         [container]\nimage = \"localhost/windlass-test/busybox:1.0\"\n\
         entrypoint = [\"/bin/sh\", \"-c\"]\n\
         command = [\"echo kept > /scratch/data && exec sleep 1000000\"]\n\
         volumes = [\"vmscratch:/scratch\"]\nstop_timeout = \"2s\"\n\n\
         [update]\non_remove = \"purge-data\"\n",
    )
    .unwrap();
    generate(&tmp, &share.join("data/gen-h4"));
    // DR: H1 whose web restores its own drift, db only reports it
    // (`24-drift`). Its units are H1's, so the switch from H1 (where
    // `23-hooks` leaves the host) restarts nothing.
    let tmp = share.join("src/gen-dr");
    fs::create_dir_all(tmp.join("apps")).unwrap();
    for f in ["windlass.toml", "apps/db.toml", "apps/web.toml"] {
        fs::copy(h1.join(f), tmp.join(f)).unwrap();
    }
    let web_dr = fs::read_to_string(tmp.join("apps/web.toml")).unwrap();
    assert!(
        !web_dr.contains("[update]"),
        "web.toml has an [update] already"
    );
    fs::write(
        tmp.join("apps/web.toml"),
        web_dr
            + "
[update]
drift = \"restore\"
",
    )
    .unwrap();
    generate(&tmp, &share.join("data/gen-dr"));
    // Empty: no apps (how a host leaves windlass, `99-uninstall`).
    let tmp = share.join("src/gen-empty");
    fs::create_dir_all(tmp.join("apps")).unwrap();
    fs::write(tmp.join("windlass.toml"), "[host]\npodman = \"5.4\"\n").unwrap();
    generate(&tmp, &share.join("data/gen-empty"));
    fs::remove_dir_all(share.join("src")).unwrap();
}

fn prepare(share: &Path) {
    let root = repo_root();
    let vm = root.join("vm-tests");
    install_agent(share);
    agent_generations(share);
    install(&vm.join("debian/guest-run.sh"), &share.join("guest-run.sh"));
    install(
        &vm.join("debian/install-agent.sh"),
        &share.join("install-agent.sh"),
    );
    for f in ["run", "cli"] {
        install(&vm.join("standin").join(f), &share.join("standin").join(f));
    }
    // WINDLASS_VM_SCENARIOS=03,08 (a developer's aid) runs only the
    // scenarios whose names start so, with their prerequisites listed too;
    // the tests of the others then fail.
    // Scenarios in `debian/pending` (not yet passing) run only when named
    // there.
    let only = std::env::var("WINDLASS_VM_SCENARIOS").ok();
    let pending = fs::read_dir(vm.join("debian/pending"))
        .into_iter()
        .flatten()
        .filter(|_| only.is_some());
    for e in fs::read_dir(vm.join("debian/scenarios"))
        .unwrap()
        .chain(pending)
    {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "sh") {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Some(only) = &only
            && !only.split(',').any(|o| name.starts_with(o))
        {
            continue;
        }
        install(&p, &share.join("scenarios").join(&name));
    }
    example_fleet(share);
    generate(&torture_dir(), &share.join("data/torture"));
    if share.join("scenarios/21-self-upgrade.sh").exists() {
        self_upgrade_build(share);
    }
}

fn examples_dir() -> std::path::PathBuf {
    repo_root().join("examples")
}

/// Scenario 1's input: the example fleet (`examples/`), generated, and
/// what the guest needs to stand in for its images, which cannot be
/// pulled here. `standins` holds one line per app: the image reference
/// the stand-in is tagged with, then the TCP ports it serves a page on
/// (the container side of each published port and the port of the
/// manifest's HTTP health URL). `roots` lists the units to start: the
/// apps no other app depends on, so the others come up only through
/// `Requires=`/`Wants=`.
fn example_fleet(share: &Path) {
    let out = share.join("data/examples");
    generate(&examples_dir(), &out);
    let fleet = load(&examples_dir());
    let mut table = String::new();
    for s in standins(&fleet) {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        table += &format!("{} {} {}\n", s.app, s.image, ports.join(" "));
    }
    fs::write(out.join("standins"), table).unwrap();
    let units: Vec<String> = roots(&fleet)
        .iter()
        .map(|a| format!("{a}.service"))
        .collect();
    fs::write(out.join("roots"), units.join(" ") + "\n").unwrap();
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

/// Every file in `debian/scenarios` ran to its end with exit 0, each
/// with its wall time printed. A scenario that checks its own facts in the
/// guest (exiting non-zero when one is wrong) needs nothing but its file;
/// the tests below judge the facts the others collect.
#[test]
fn every_scenario_runs_to_its_end() {
    if !vm_enabled("every_scenario_runs_to_its_end") {
        return;
    }
    let r = run();
    let mut names: Vec<String> = fs::read_dir(repo_root().join("vm-tests/debian/scenarios"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "sh").then(|| p.file_stem().unwrap().to_string_lossy().to_string())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 9, "scenarios: {names:?}");
    for n in &names {
        r.scenario(n);
    }
}

#[test]
fn generate_then_run() {
    if !vm_enabled("generate_then_run") {
        return;
    }
    let r = run();
    let dir = r.scenario("01-generate-run");
    let fleet = load(&examples_dir());
    let log = fs::read_to_string(dir.join("journal")).unwrap_or_default();
    let ps = fs::read_to_string(dir.join("ps")).unwrap_or_default();
    let start_rc = read(&dir, "start-rc");
    assert_eq!(
        start_rc.trim(),
        "0",
        "systemctl start {} failed:\n{ps}\n{log}",
        read(&dir, "roots")
    );
    let generated = read(&dir, "generated-units");
    let mut units: Vec<String> = fleet.apps.iter().map(|a| a.service_name()).collect();
    units.extend(
        fleet
            .networks
            .keys()
            .map(|n| format!("{n}-network.service")),
    );
    units.extend(fleet.volumes.keys().map(|v| format!("{v}-volume.service")));
    for u in &units {
        assert!(
            generated.lines().any(|l| l == u),
            "quadlet did not generate {u}: {generated}"
        );
    }
    let health = read(&dir, "health");
    for app in &fleet.apps {
        let s = show(&dir, &app.service_name());
        assert_eq!(
            s["ActiveState"], "active",
            "{}: {s:?}\n{ps}\n{log}",
            app.name
        );
        assert_eq!(s["SubState"], "running", "{}: {s:?}", app.name);
        if app.health.as_ref().is_some_and(|h| h.cmd.is_some()) {
            assert!(
                health.lines().any(|l| l == format!("{} healthy", app.name)),
                "{} not healthy: {health}",
                app.name
            );
        }
        // Requires=/Wants= + After=: the app left "inactive" only once each
        // dependency was active, which with Notify=healthy means healthy.
        let start: u64 = s["InactiveExitTimestampMonotonic"].parse().unwrap();
        for dep in app.requires.iter().chain(&app.wants) {
            let d = show(&dir, &format!("{dep}.service"));
            let active: u64 = d["ActiveEnterTimestampMonotonic"].parse().unwrap();
            assert!(
                active > 0 && active <= start,
                "{dep} active at {active}, {} started at {start}",
                app.name
            );
        }
    }
    assert_eq!(
        read(&dir, "http").trim(),
        "windlass stand-in",
        "uptime's published port serves its page"
    );
    assert_eq!(
        read(&dir, "nextcloud-inputs"),
        "env file: read\nenv secret: set\nfile secret: set\n",
        "nextcloud's environment file and both kinds of secret reach it"
    );
    let timers = read(&dir, "timers");
    let mut jobs = 0;
    for app in &fleet.apps {
        for job in &app.jobs {
            let unit = format!("{}-{}", app.name, job.name);
            assert!(
                timers.contains(&format!("{unit}.timer")),
                "{unit}: {timers}"
            );
            let journal = read(&dir, &format!("{unit}.service.journal"));
            assert_eq!(
                read(&dir, &format!("{unit}.service.rc")).trim(),
                "0",
                "{unit}: {journal}"
            );
            let s = read(&dir, &format!("{unit}.service.show"));
            assert_eq!(prop(&s, "Result"), "success", "{unit}: {s}\n{journal}");
            jobs += 1;
        }
    }
    assert_eq!(jobs, 4, "the example fleet's jobs");
    // Each job's command ran in its container, as the manifest's user,
    // with its arguments as written.
    for (unit, line) in [
        (
            "lnd-backup",
            "stand-in lncli as uid 0: exportchanbackup --all --output_file=/data/backup/channel.backup",
        ),
        (
            "nextcloud-cron",
            "stand-in php as uid 33: -f /var/www/html/cron.php",
        ),
        (
            "postgres-vacuum",
            "stand-in vacuumdb as uid 999: -U nextcloud --all --analyze-in-stages",
        ),
    ] {
        let journal = read(&dir, &format!("{unit}.service.journal"));
        assert!(journal.lines().any(|l| l == line), "{unit}: {journal}");
    }
    // postgres-dump's shell pipeline wrote its gzip file into the volume.
    assert_eq!(
        read(&dir, "dump"),
        "stand-in pg_dump as uid 999: -U nextcloud nextcloud\n"
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
    // The gate gives up at its 25 s deadline (the record's own clock);
    // stopping the unhealthy container (10 s stop timeout) and the
    // previous one turning healthy again follow, which on a loaded host
    // under TCG may take minutes more.
    let rec = status(&dir, "op.json");
    let gate = phase_seconds(&rec, "health-gate", "rolling-back");
    assert!(
        (25..25 + 15).contains(&gate),
        "the gate gave up {gate} s after it began (deadline 25 s): {rec}"
    );
    let elapsed: u64 = read(&dir, "elapsed").trim().parse().unwrap();
    assert!(elapsed < 600, "rolled back {elapsed} s after the switch");
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
    unhealthy_switch_bundle(&dir, &rec);
}

/// The bundle of scenario 4's rolled-back switch: web's journal (its
/// last line, the one the record kept last), web's container as it was
/// when the gate failed with the failing health log, the timeline of the
/// gate, environment values masked; and the archive `windlassctl bundle`
/// saved holds the same files.
fn unhealthy_switch_bundle(dir: &Path, rec: &serde_json::Value) {
    let b = dir.join("bundle");
    let summary = status(&b, "bundle.json");
    assert_eq!(summary["result"], "rolled-back", "{summary}");
    let files: Vec<String> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for f in [
        "journal/web.service.log",
        "containers/web.at-failure.json",
        "health.json",
    ] {
        assert!(
            files.iter().any(|x| x == f),
            "{f} not in the bundle: {files:?}"
        );
    }
    // The unit's last journal line the record kept is in the bundle.
    let kept: Vec<&str> = rec["journal"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    let last = kept.last().expect("the record kept web's journal lines");
    let journal = read(&b, "journal/web.service.log");
    assert!(
        journal.contains(last.trim()),
        "web's last line {last:?} is not in the bundle's journal:\n{journal}"
    );
    let web = status(&b, "containers/web.at-failure.json");
    let health = if web["State"]["Health"].is_object() {
        &web["State"]["Health"]
    } else {
        &web["State"]["Healthcheck"]
    };
    let log = health["Log"].as_array().cloned().unwrap_or_default();
    assert!(
        log.iter()
            .any(|e| e["ExitCode"].as_i64().is_some_and(|c| c != 0)),
        "the failing health checks are in the container's health log: {health}"
    );
    let env = web["Config"]["Env"].as_array().unwrap();
    assert!(
        env.iter().all(|e| e.as_str().unwrap().ends_with("=***")),
        "environment values are masked: {env:?}"
    );
    let timeline = read(&b, "health.json");
    assert!(
        timeline.contains("\"web.service\"") && timeline.contains("activating"),
        "the gate's timeline shows web never getting active: {timeline}"
    );
    assert_eq!(
        read(dir, "bundle.rc").trim(),
        "0",
        "{}",
        read(dir, "bundle.err")
    );
    let packed = fs::read(dir.join("bundle.tar.zst")).unwrap();
    assert_eq!(&packed[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd archive");
    let tar = zstd::decode_all(&packed[..]).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let e = e.unwrap();
        names.push(e.path().unwrap().to_string_lossy().to_string());
    }
    let op = summary["operation"].as_str().unwrap();
    for f in &files {
        let want = format!("{op}/{f}");
        assert!(
            names.contains(&want),
            "{want} not in the archive: {names:?}"
        );
    }
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

/// Seconds from the record's first `from` step to its first `to` step.
fn phase_seconds(record: &serde_json::Value, from: &str, to: &str) -> u64 {
    let at = |phase: &str| {
        record["history"]
            .as_array()
            .expect("a history")
            .iter()
            .find(|p| p[0] == phase)
            .and_then(|p| p[1].as_u64())
            .unwrap_or_else(|| panic!("no {phase} in {record}"))
    };
    at(to) - at(from)
}

/// The phases an operation record passed, in order.
fn phases(record: &serde_json::Value) -> Vec<String> {
    record["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|p| p[0].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn agent_killed_mid_switch_is_resolved_by_its_restart_or_the_external_revert() {
    if !vm_enabled("agent_killed_mid_switch_is_resolved_by_its_restart_or_the_external_revert") {
        return;
    }
    let r = run();
    let dir = r.scenario("08-agent-killed");
    let d = read(&dir, "generation").trim().to_string();
    for part in ["1", "2"] {
        let killed = read(&dir, &format!("killed{part}"));
        let phase = killed.split_whitespace().next().unwrap_or_default();
        assert!(
            phase == "activating" || phase == "health-gate",
            "part {part}: the agent was killed during {killed:?}, not mid-switch"
        );
        let rec = status(&dir, &format!("op{part}.json"));
        assert_eq!(rec["to_generation"], d.as_str(), "part {part}: {rec}");
        assert_eq!(rec["from_generation"], "1", "part {part}: {rec}");
        assert_eq!(rec["result"], "rolled-back", "part {part}: {rec}");
        let error = rec["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("interrupted during {phase}")),
            "part {part}: the record says why: {error}"
        );
        let p = phases(&rec);
        let at = p
            .iter()
            .position(|x| x == "rolling-back")
            .unwrap_or_else(|| panic!("part {part}: never rolled back: {p:?}"));
        assert_eq!(
            p[at - 1],
            phase,
            "part {part}: rolled back from the killed phase: {p:?}"
        );
        assert_eq!(p.last().map(String::as_str), Some("finished"), "{p:?}");
        // Generation A is back: both links, and web runs A's definition.
        for link in ["current", "selected"] {
            let target = read(&dir, &format!("{link}-{part}"));
            assert!(
                target.trim().ends_with("/1") || target.trim() == "1",
                "part {part}: {link} → {target}"
            );
        }
        let web = read(&dir, &format!("web-{part}.show"));
        assert_eq!(prop(&web, "ActiveState"), "active", "part {part}: {web}");
        let env = read(&dir, &format!("web-env-{part}"));
        assert!(
            !env.contains("MARK=d") && !env.contains("MARK=b"),
            "part {part}: web runs generation A: {env}"
        );
        assert!(
            !read(&dir, &format!("revert-units-{part}")).contains("windlass-revert"),
            "part {part}: no revert unit is left armed"
        );
    }
    // 1: systemd restarted the agent, which resolved the operation.
    let agent = read(&dir, "windlassd-1.show");
    assert_eq!(prop(&agent, "ActiveState"), "active", "{agent}");
    assert_eq!(prop(&agent, "NRestarts"), "1", "{agent}");
    let killed_pid = read(&dir, "killed1");
    assert_ne!(
        killed_pid.split_whitespace().nth(1),
        Some(prop(&agent, "MainPID").as_str()),
        "a new windlassd process"
    );
    assert_eq!(
        read(&dir, "watch1.rc").trim(),
        "3",
        "{}",
        read(&dir, "watch1.err")
    );
    assert_eq!(read(&dir, "watch1.out").trim(), "rolled-back");
    let s = status(&dir, "status-1.json");
    assert_eq!(
        (s["selected"].as_str(), s["running"].as_str()),
        (Some("1"), Some("1"))
    );
    // 2: the agent stayed down; the timer armed at deadline + 60 s fired.
    assert_ne!(
        prop(&read(&dir, "windlassd-down.show"), "ActiveState"),
        "active",
        "the agent stays down"
    );
    assert_eq!(
        prop(&read(&dir, "windlassd-2.show"), "ActiveState"),
        "failed",
        "nothing restarted the agent before the revert"
    );
    let id = read(&dir, "op2").trim().to_string();
    let timer = read(&dir, "revert-timer");
    assert!(
        timer.contains(&format!("windlass-revert-{id}")),
        "the revert timer waits while the agent is down: {timer}"
    );
    // Armed right after the `arming` step, to fire 5 s + 60 s later: the
    // rollback began then, not before (nothing else ran it).
    let rec = status(&dir, "op2.json");
    let fired = phase_seconds(&rec, "arming", "rolling-back");
    assert!(
        (65..65 + 30).contains(&fired),
        "the revert fired {fired} s after the switch was armed (deadline 5 s + 60 s): {rec}"
    );
    let journal = read(&dir, "revert.journal");
    assert!(
        journal.contains(&format!("operation {id}: rolled-back")),
        "windlassd --revert rolled it back: {journal}"
    );
    let s = status(&dir, "status-2.json");
    assert_eq!(
        (s["selected"].as_str(), s["running"].as_str()),
        (Some("1"), Some("1"))
    );
}

#[test]
fn reboot_before_commit_boots_the_selected_generation() {
    if !vm_enabled("reboot_before_commit_boots_the_selected_generation") {
        return;
    }
    let r = run();
    let dir = r.scenario("09-reboot-before-commit");
    // Before: B runs under test, A is still selected.
    assert_eq!(read(&dir, "phase-before").trim(), "waiting-confirm");
    assert!(read(&dir, "current-before").trim().ends_with("/2"));
    assert!(read(&dir, "selected-before").trim().ends_with("/1"));
    assert!(read(&dir, "web-env-before").lines().any(|l| l == "MARK=b"));
    assert_ne!(
        read(&dir, "boot-id-before"),
        read(&dir, "boot-id-after"),
        "the guest rebooted"
    );
    // After: A, the selected generation, booted and runs.
    assert!(
        read(&dir, "selected-after").trim().ends_with("/1"),
        "{}",
        read(&dir, "selected-after")
    );
    let current = read(&dir, "current-after");
    assert!(
        current.trim().ends_with("/1"),
        "the running generation is A: {current}"
    );
    assert_eq!(prop(&read(&dir, "web-after.show"), "ActiveState"), "active");
    assert!(
        !read(&dir, "web-env-after").contains("MARK=b"),
        "web runs generation A after the reboot"
    );
    // windlassd, started at boot, resolved the interrupted switch.
    let rec = status(&dir, "op.json");
    assert_eq!(rec["to_generation"], "2", "{rec}");
    assert_eq!(rec["result"], "rolled-back", "{rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("interrupted during waiting-confirm"),
        "{error}; the agent in that boot:\n{}",
        read(&dir, "windlassd.journal")
    );
    assert_eq!(prop(&read(&dir, "windlassd.show"), "ActiveState"), "active");
    let s = status(&dir, "status.json");
    assert_eq!(
        (s["selected"].as_str(), s["running"].as_str()),
        (Some("1"), Some("1"))
    );
}

#[test]
fn sweep_timer_upgrades_to_a_new_release_and_promotes_it() {
    if !vm_enabled("sweep_timer_upgrades_to_a_new_release_and_promotes_it") {
        return;
    }
    let r = run();
    let dir = r.scenario("26-sweep");
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
        // A fifth of the size without debug info: the guest downloads,
        // hashes and copies it under emulation.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
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
        "{}\n{}",
        read(&dir, "up.error"),
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
