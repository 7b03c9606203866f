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

fn prepare(share: &Path) {
    let root = repo_root();
    let vm = root.join("vm-tests");
    install(&vm.join("debian/guest-run.sh"), &share.join("guest-run.sh"));
    for e in fs::read_dir(vm.join("debian/scenarios")).unwrap() {
        let p = e.unwrap().path();
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
