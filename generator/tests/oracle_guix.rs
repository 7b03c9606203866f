//! Guile 3 judges the Guix output, twice. With the real Guix (43770a9,
//! `../shared/oracles/guix`, its module closure compiled once by
//! `tools/guix-go.sh`): `guix-real/fold.scm` builds an operating-system
//! around the generated `(windlass apps)` and `modules/guix`, folds it
//! down to the Shepherd's services, and what the Shepherd would run
//! (podman argv through Guix's entrypoint programs, job programs, timer
//! firings) is compared with the manifests and `systemd-analyze`. And
//! against stand-ins, for finer checks: the generated `(windlass apps)` module
//! and `modules/guix/` are loaded against stand-in Guix modules
//! (`tests/guile/`) whose records accept exactly the fields Guix documents
//! for `oci-container-configuration`, `oci-extension`, `shepherd-service`,
//! `shepherd-timer`, `service-type`, `define-configuration`… and whose
//! Shepherd procedures have the documented keywords. What the module
//! defines is read back and compared with the manifests: images, argv,
//! environment, flags, schedules, `/etc/windlass/generation.json`. Every
//! string is reported as code points, so the comparison is byte for byte.
//!
//! Also here, without Guile: template overrides stay validated and a
//! schedule Shepherd cannot express is refused. And with Shepherd 1.0.9's
//! own calendar code (read in place from the shared oracles) against
//! `systemd-analyze`: every schedule Guix gets fires when systemd's would,
//! and every one refused as inexact does not.
//!
//! Runs Guile inside the trixie rootfs (`tools/oracle`); fails when it
//! cannot (see `common::oracles_enabled`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use windlass::escape::scheme;
use windlass::model::{App, Fleet, SecretTarget, VolumeSource, load_fleet};

fn examples() -> PathBuf {
    common::repo_root().join("examples")
}

fn torture() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/torture")
}

fn stubs() -> PathBuf {
    common::repo_root().join("generator/tests/guile")
}

fn windlass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .output()
        .unwrap()
}

fn generate(fleet: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "generate",
        fleet.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = windlass(&args);
    assert!(
        o.status.success(),
        "windlass generate {} failed: {}",
        fleet.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One line of the stand-ins' report: KIND NAME FIELD value.
#[derive(Debug)]
struct Fact {
    kind: String,
    name: String,
    field: String,
    value: String,
}

struct Facts(Vec<Fact>);

impl Facts {
    fn parse(stdout: &[u8]) -> Facts {
        let text = String::from_utf8(stdout.to_vec()).expect("the report is ASCII");
        let facts = text
            .lines()
            .map(|line| {
                let mut words = line.split(' ');
                let mut word = || {
                    words
                        .next()
                        .unwrap_or_else(|| panic!("short line {line:?}"))
                };
                let (kind, name, field) = (word().into(), word().into(), word().into());
                let value = words
                    .map(|w| char::from_u32(w.parse().unwrap()).unwrap())
                    .collect();
                Fact {
                    kind,
                    name,
                    field,
                    value,
                }
            })
            .collect();
        Facts(facts)
    }

    fn all(&self, kind: &str, name: &str, field: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|f| f.kind == kind && f.name == name && f.field == field)
            .map(|f| f.value.as_str())
            .collect()
    }

    fn one(&self, kind: &str, name: &str, field: &str) -> Option<&str> {
        let all = self.all(kind, name, field);
        assert!(all.len() <= 1, "{kind} {name} {field}: {all:?}");
        all.first().copied()
    }

    fn names(&self, kind: &str) -> BTreeSet<&str> {
        self.0
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// Runs Guile in the oracle rootfs with the stand-ins and `lib` (holding
/// Guile modules) on the load path.
fn guile(lib: &Path, script: &str) -> Output {
    common::oracle(
        &[(&stubs(), "/stubs"), (lib, "/wl")],
        &[
            "guile",
            "--no-auto-compile",
            "-L",
            "/stubs",
            "-L",
            "/wl",
            "-c",
            script,
        ],
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A load path holding the generated file as `windlass/apps.scm`.
fn apps_lib(scm: &str) -> tempfile::TempDir {
    let lib = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(lib.path().join("windlass")).unwrap();
    std::fs::write(lib.path().join("windlass/apps.scm"), scm).unwrap();
    lib
}

fn load_apps(scm: &str) -> Output {
    let lib = apps_lib(scm);
    guile(lib.path(), "(load \"/stubs/check-apps.scm\")")
}

fn check_container(facts: &Facts, app: &App) {
    let c = &app.container;
    let name = app.name.as_str();
    let get = |field| facts.all("container", name, field);
    assert_eq!(
        facts.one("container", name, "image"),
        Some(c.image.full.as_str())
    );
    assert_eq!(facts.one("container", name, "provision"), Some(name));
    assert_eq!(
        get("command"),
        c.command.clone().unwrap_or_default(),
        "{name}: command changed"
    );
    match &c.entrypoint {
        Some(ep) => {
            let json = facts.one("container", name, "entrypoint").unwrap();
            let back: Vec<String> = serde_json::from_str(json).unwrap();
            assert_eq!(&back, ep, "{name}: entrypoint changed");
        }
        None => assert_eq!(facts.one("container", name, "entrypoint"), None),
    }
    let env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(get("environment"), env, "{name}: environment changed");
    // The program that runs `podman run` starts in a UTF-8 locale (see
    // `every_byte_reaches_podman_through_the_entrypoint`).
    assert_eq!(
        get("host-environment"),
        [
            "GUIX_LOCPATH=<plain-file glibc-utf8-locales>/lib/locale",
            "LC_ALL=C.UTF-8"
        ],
        "{name}: host environment"
    );
    let ports: Vec<String> = c.ports.iter().map(ToString::to_string).collect();
    assert_eq!(get("ports"), ports);
    let mut deps: Vec<&str> = Vec::new();
    for d in app.requires.iter().chain(&app.wants) {
        if !deps.contains(&d.as_str()) {
            deps.push(d);
        }
    }
    assert_eq!(get("requirement"), deps, "{name}: requirement");
    // Each network with its aliases and addresses; a `container_name`
    // is one more alias (Guix names the container after the service).
    let network_arg = |n: &str| match c.container_name.as_ref() {
        Some(cn) if *cn != app.name && n != "host" => {
            let mut o = c.network_options.get(n).cloned().unwrap_or_default();
            if !o.aliases.contains(cn) {
                o.aliases.push(cn.clone());
            }
            format!("{n}:{}", o.podman_options())
        }
        _ => c.network_arg(n, n),
    };
    assert_eq!(
        facts.one("container", name, "network").map(str::to_string),
        c.networks.first().map(|n| network_arg(n)),
        "{name}: network"
    );
    assert_eq!(
        facts.one("container", name, "respawn?"),
        Some(if c.restart == windlass::model::Restart::No {
            "#f"
        } else {
            "#t"
        })
    );
    let volumes = get("volumes");
    for m in &c.volumes {
        let src = match &m.source {
            VolumeSource::Named(n) | VolumeSource::Host(n) => n,
        };
        let want = format!("{src}:{}{}", m.target, m.options());
        assert!(
            volumes.contains(&want.as_str()),
            "{name}: {want} not in {volumes:?}"
        );
    }

    let extra = get("extra-arguments");
    let has = |arg: &str| extra.contains(&arg);
    assert!(has(&format!("--label=io.windlass.app={name}")), "{extra:?}");
    for (k, v) in &c.labels {
        assert!(
            has(&format!("--label={k}={v}")),
            "{name}: label {k} changed: {extra:?}"
        );
    }
    if let Some(bytes) = c.memory {
        assert!(has(&format!("--memory={bytes}")), "{extra:?}");
    }
    // Kernel, security and process settings: one whole argument each, in
    // order, as Guile read them.
    let settings = windlass::emit::podman::setting_flags(c);
    let got: Vec<String> = extra
        .iter()
        .filter(|a| settings.iter().any(|f| f == *a))
        .map(|a| a.to_string())
        .collect();
    assert_eq!(got, settings, "{name}: container settings changed");
    let more_networks: Vec<String> = extra
        .iter()
        .filter_map(|a| a.strip_prefix("--network="))
        .map(str::to_string)
        .collect();
    let want: Vec<String> = c.networks.iter().skip(1).map(|n| network_arg(n)).collect();
    assert_eq!(more_networks, want, "{name}: further networks");
    for f in &c.env_files {
        assert!(has(&format!("--env-file={f}")), "{extra:?}");
    }
    for s in &c.secrets {
        if s.is_file() {
            let SecretTarget::File(t) = &s.target else {
                unreachable!()
            };
            assert!(volumes.contains(&format!("{}:{t}:ro", s.name).as_str()));
        } else {
            assert!(
                extra
                    .iter()
                    .any(|a| a.starts_with(&format!("--secret={},", s.name))),
                "{name}: secret {} missing: {extra:?}",
                s.name
            );
        }
    }
    if let Some(cmd) = app.health.as_ref().and_then(|h| h.cmd.as_ref()) {
        let json = extra
            .iter()
            .find_map(|a| a.strip_prefix("--health-cmd="))
            .unwrap_or_else(|| panic!("{name}: no --health-cmd in {extra:?}"));
        let back: Vec<String> = serde_json::from_str(json).unwrap();
        assert_eq!(&back, cmd, "{name}: health command changed");
    }
}

fn check_fleet(fleet: &Fleet, facts: &Facts) {
    let has_jobs = fleet.apps.iter().any(|a| !a.jobs.is_empty());
    let mut services = vec![("windlass-containers", "oci")];
    if has_jobs {
        services.push(("windlass-jobs", "shepherd-root"));
    }
    services.push(("windlass-generation", "etc"));
    for (i, (name, target)) in services.iter().enumerate() {
        let i = i.to_string();
        assert_eq!(facts.one("service", &i, "name"), Some(*name));
        assert_eq!(facts.one("service", &i, "target"), Some(*target));
    }
    assert_eq!(facts.names("service").len(), services.len());
    assert_eq!(
        facts.one("procedure", "oci-user", "services"),
        Some(services.len().to_string().as_str())
    );

    let apps: BTreeSet<&str> = fleet.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(facts.names("container"), apps);
    for app in &fleet.apps {
        check_container(facts, app);
        // Every requirement is another container's Shepherd service.
        for dep in facts.all("container", &app.name, "requirement") {
            assert!(apps.contains(dep), "{}: requires unknown {dep}", app.name);
        }
    }
    let networks: BTreeSet<&str> = fleet.networks.keys().map(String::as_str).collect();
    assert_eq!(facts.names("network"), networks);
    for (name, net) in &fleet.networks {
        assert_eq!(facts.one("network", name, "subnet"), net.subnet.as_deref());
        assert_eq!(
            facts.one("network", name, "internal?"),
            Some(if net.internal { "#t" } else { "#f" })
        );
    }
    let volumes: BTreeSet<&str> = fleet.volumes.keys().map(String::as_str).collect();
    assert_eq!(facts.names("volume"), volumes);

    let mut timers = BTreeSet::new();
    for app in &fleet.apps {
        for job in &app.jobs {
            let name = format!("{}-{}", app.name, job.name);
            assert_eq!(
                facts.all("timer", &name, "command"),
                job.command,
                "{name}: command changed"
            );
            // The Shepherd runs the job's own program, which execs the
            // command in a UTF-8 locale.
            assert_eq!(
                facts.all("timer", &name, "line"),
                ["<program-file>"],
                "{name}: the Shepherd runs the job's program"
            );
            assert_eq!(
                facts.one("timer", &name, "program"),
                Some(format!("windlass-job-{name}").as_str())
            );
            assert_eq!(facts.one("timer", &name, "user"), Some("oci-container"));
            assert_eq!(
                facts.one("timer", &name, "requirement"),
                Some("user-processes")
            );
            assert_eq!(facts.all("timer", &name, "action"), ["trigger"]);
            assert_eq!(
                facts.one("timer", &name, "wait-for-termination?"),
                Some("#t")
            );
            assert_eq!(
                facts.one("timer", &name, "max-duration"),
                job.timeout
                    .map(|us| us.div_ceil(1_000_000).to_string())
                    .as_deref()
            );
            assert!(
                facts
                    .one("timer", &name, "documentation")
                    .unwrap()
                    .contains(&job.schedule),
                "{name}: the documentation names the schedule"
            );
            timers.insert(name);
        }
    }
    assert_eq!(
        facts.names("timer"),
        timers.iter().map(String::as_str).collect()
    );

    // What Guile builds is what the agent reads: the contract's type.
    let file = windlass_contract::ETC_MANIFEST;
    let json = facts.one("etc", file, "content").expect("generation.json");
    let doc = windlass_contract::SystemGeneration::from_slice(json.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(doc.format, windlass_contract::FORMAT);
    assert_eq!(doc.platform, windlass_contract::Platform::Guix);
    assert_eq!(doc.backend, None);
    assert_eq!(doc.apps.len(), fleet.apps.len());
    for (entry, app) in doc.apps.iter().zip(&fleet.apps) {
        assert_eq!(entry.name, app.name);
        assert_eq!(entry.unit, app.name, "the unit is the Shepherd service");
        assert_eq!(*entry, windlass::emit::guix::app_contract(app));
    }
}

fn fleet_case(dir: &Path, test: &str) -> Facts {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    generate(dir, &out, &["--target", "guix"]);
    let scm = std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap();
    let o = load_apps(&scm);
    assert!(
        o.status.success(),
        "{test}: Guile could not load (windlass apps) against the stand-ins:\n{}",
        stderr(&o)
    );
    let facts = Facts::parse(&o.stdout);
    let fleet = load_fleet(dir).unwrap().fleet.expect("valid fleet");
    check_fleet(&fleet, &facts);
    facts
}

#[test]
fn example_fleet_loads_in_guile_with_the_documented_guix_fields() {
    if !common::oracles_enabled("guix examples") {
        return;
    }
    let facts = fleet_case(&examples(), "examples");
    // Spot checks a reader can follow.
    for (field, value) in [
        ("days-of-week", "sunday"),
        ("hours", "3"),
        ("minutes", "0"),
        ("seconds", "0"),
    ] {
        assert_eq!(facts.all("timer", "lnd-backup", field), [value], "{field}");
    }
    assert_eq!(
        facts.all("timer", "postgres-vacuum", "days-of-week"),
        ["monday", "tuesday", "wednesday", "thursday", "friday"]
    );
    assert!(
        facts
            .all("timer", "postgres-vacuum", "days-of-month")
            .is_empty()
    );
    assert_eq!(facts.all("timer", "nextcloud-cron", "minutes").len(), 12);
    assert_eq!(
        facts.all("timer", "nextcloud-cron", "hours"),
        Vec::<&str>::new()
    );
    assert_eq!(
        facts.all("timer", "lnd-backup", "env"),
        [
            "PATH=/run/current-system/profile/bin",
            "HOME=/home/oci-container",
            "GUIX_LOCPATH=<plain-file glibc-utf8-locales>/lib/locale",
            "LC_ALL=C.UTF-8"
        ]
    );
    assert_eq!(
        facts.one("container", "postgres", "container-user"),
        Some("999:999")
    );
    assert_eq!(facts.one("container", "uptime", "respawn?"), Some("#t"));
    assert_eq!(facts.all("volume", "pg-data", "labels"), ["backup=nightly"]);
    assert_eq!(facts.one("network", "archy", "gateway"), Some("10.89.0.1"));
}

#[test]
fn names_fleet_loads_in_guile_with_aliases_and_addresses_on_each_network() {
    if !common::oracles_enabled("guix names") {
        return;
    }
    let facts = fleet_case(
        &common::repo_root().join("generator/tests/fleets/names"),
        "names",
    );
    assert_eq!(
        facts.one("container", "db", "network"),
        Some(
            "back:alias=postgres,alias=my_db,alias=db.internal,alias=legacy_postgres,ip=10.98.0.5"
        )
    );
    assert_eq!(facts.one("container", "web", "network"), Some("front"));
}

/// Apps with lifecycle hooks load like any others (the hooks travel in
/// the system generation's JSON, not in the service definitions).
#[test]
fn hooks_fleet_loads_in_guile() {
    if !common::oracles_enabled("guix hooks") {
        return;
    }
    let facts = fleet_case(
        &common::repo_root().join("generator/tests/fleets/hooks"),
        "hooks",
    );
    assert_eq!(
        facts.one("container", "db", "image"),
        Some("docker.io/library/postgres:16.4")
    );
}

#[test]
fn torture_fleet_loads_in_guile_and_every_value_arrives_unchanged() {
    if !common::oracles_enabled("guix torture") {
        return;
    }
    let facts = fleet_case(&torture(), "torture");
    // The empty argument and the lone `;` travel as themselves.
    let cmd = facts.all("container", "torture", "command");
    assert!(cmd.contains(&"") && cmd.contains(&";"), "{cmd:?}");
    assert_eq!(facts.all("timer", "torture-daily", "hours"), ["0"]);
}

/// Every string of the torture fleet, and then some.
fn hard_strings(fleet: &Fleet) -> Vec<String> {
    let mut all = Vec::new();
    for app in &fleet.apps {
        let c = &app.container;
        all.extend(app.description.clone());
        all.extend(c.env.values().cloned());
        all.extend(c.labels.values().cloned());
        all.extend(c.command.clone().unwrap_or_default());
        all.extend(c.entrypoint.clone().unwrap_or_default());
        if let Some(cmd) = app.health.as_ref().and_then(|h| h.cmd.clone()) {
            all.extend(cmd);
        }
        for job in &app.jobs {
            all.extend(job.command.clone());
        }
    }
    let controls: String = (1u8..0x20).map(char::from).chain(['\x7f']).collect();
    all.extend([
        controls,
        "\u{80}\u{9f}\u{a0}\u{ad}\u{feff}\u{fffd}\u{ffff}".to_string(),
        "\u{d7ff}\u{e000}\u{10000}\u{10ffff}".to_string(),
        "\\x41; \\u0041 \\U000041 #\\a #t #f".to_string(),
        "\"); (system \"rm -rf /\") (display \"".to_string(),
        "#~(ungexp x) #$x #$@y ,x ,@y `z".to_string(),
        ";; not a comment\n#| not a block |#".to_string(),
    ]);
    all
}

#[test]
fn settings_fleet_loads_in_guile_with_every_setting_as_an_argument() {
    if !common::oracles_enabled("guix settings") {
        return;
    }
    let dir = common::repo_root().join("generator/tests/fleets/settings");
    let facts = fleet_case(&dir, "settings");
    let extra = facts.all("container", "hardened", "extra-arguments");
    for arg in [
        "--sysctl=kernel.sem=250 32000 100 128",
        "--security-opt=label=level:s0:c100,c200",
        "--cap-drop=ALL",
        "--init",
    ] {
        assert!(extra.contains(&arg), "{arg} not in {extra:?}");
    }
    assert!(
        facts
            .all("container", "hardened", "volumes")
            .contains(&"/srv/pg/conf:/etc/postgresql:ro,z")
    );
    assert!(
        facts
            .all("container", "privileged", "extra-arguments")
            .contains(&"--privileged")
    );
}

#[test]
fn every_torture_string_reads_back_in_guile_byte_for_byte() {
    if !common::oracles_enabled("guix strings") {
        return;
    }
    let fleet = load_fleet(&torture()).unwrap().fleet.expect("valid fleet");
    let strings = hard_strings(&fleet);
    assert!(strings.len() > 60);
    let mut file = String::from("(\n");
    for s in &strings {
        file.push_str(&scheme::string(s));
        file.push('\n');
    }
    file.push_str(")\n");
    assert!(file.is_ascii());
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("strings.scm"), &file).unwrap();
    // Read twice: with Guile's default reader options and with R6RS hex
    // escapes enabled; the escapes windlass writes mean the same in both.
    let script = r#"
(use-modules (stub dump))
(define (dump tag)
  (for-each (lambda (s i) (emit "string" i tag s))
            (call-with-input-file "/wl/strings.scm" read)
            (iota (length (call-with-input-file "/wl/strings.scm" read)))))
(dump "default")
(read-enable 'r6rs-hex-escapes)
(dump "r6rs")
"#;
    let o = guile(work.path(), script);
    assert!(o.status.success(), "{}", stderr(&o));
    let facts = Facts::parse(&o.stdout);
    for mode in ["default", "r6rs"] {
        let got: Vec<&str> = facts
            .0
            .iter()
            .filter(|f| f.field == mode)
            .map(|f| f.value.as_str())
            .collect();
        assert_eq!(got.len(), strings.len(), "{mode}");
        for (g, want) in got.iter().zip(&strings) {
            assert_eq!(
                g,
                want,
                "{mode}: Guile read {:?} differently",
                scheme::string(want)
            );
        }
    }
}

fn modules_lib() -> PathBuf {
    common::repo_root().join("modules/guix")
}

#[test]
fn the_guix_service_module_loads_and_wires_the_agent() {
    if !common::oracles_enabled("guix modules") {
        return;
    }
    let o = guile(&modules_lib(), "(load \"/stubs/check-service.scm\")");
    assert!(
        o.status.success(),
        "modules/guix failed to load: {}",
        stderr(&o)
    );
    let facts = Facts::parse(&o.stdout);
    let pkg = "<plain-file windlass>";
    for (label, group, state) in [
        ("default", "windlass", "/var/lib/windlass"),
        ("custom", "ops", "/srv/windlass"),
    ] {
        assert_eq!(facts.one(label, "type", "name"), Some("windlass"));
        let targets: BTreeSet<&str> = facts.all(label, "extends", "target").into_iter().collect();
        assert_eq!(
            targets,
            [
                "account",
                "activate",
                "dbus",
                "etc",
                "profile",
                "shepherd-root"
            ]
            .into_iter()
            .collect()
        );
        let argv = facts.all(label, "windlassd", "argv");
        let windlassd = format!("{pkg}/bin/windlassd");
        assert_eq!(
            argv,
            [
                windlassd.as_str(),
                "--bus",
                "system",
                "--state-dir",
                state,
                "--group",
                group,
                "--platform",
                "guix"
            ]
        );
        assert_eq!(
            facts.one(label, "windlassd", "requirement"),
            Some("dbus-system user-processes")
        );
        let windlassctl = format!("{pkg}/bin/windlassctl");
        assert_eq!(
            facts.all(label, "windlass-sweep", "argv"),
            [windlassctl.as_str(), "sweep"]
        );
        assert_eq!(
            facts.one(label, "windlass-sweep", "requirement"),
            Some("windlassd")
        );
        assert_eq!(facts.all(label, "windlass-sweep", "action"), ["trigger"]);
        // The D-Bus policy comes from the package itself.
        assert_eq!(facts.all(label, "dbus", "package"), [pkg]);
        assert_eq!(facts.all(label, "profile", "package"), [pkg]);
        assert_eq!(facts.one(label, "group", "name"), Some(group));
        assert_eq!(facts.one(label, "group", "system?"), Some("#t"));
        assert!(
            facts
                .one(label, "activation", "sexp")
                .unwrap()
                .contains(state),
            "the activation creates the state directory"
        );
    }
    assert_eq!(
        facts.one("default", "windlass-sweep", "event"),
        Some("days-of-week=(monday) hours=(0) minutes=(0) seconds=(0)")
    );
    assert_eq!(
        facts.one("custom", "windlass-sweep", "event"),
        Some("0 4 * * 1")
    );
    assert_eq!(facts.one("default", "etc", "windlass/fleet"), None);
    assert_eq!(
        facts.one("custom", "etc", "windlass/fleet"),
        Some("<local-file fleet>")
    );
    assert_eq!(facts.one("default", "etc", "windlass/targets"), None);
    assert_eq!(
        facts.one("custom", "etc", "windlass/targets"),
        Some("<local-file targets>")
    );
}

/// `windlass-fleet-service-type` runs windlass-fleetd and
/// `windlass-coordinator-service-type` windlass-coordinator under the
/// Shepherd: each setting is an argument of the daemon (every byte of a
/// label arrives), each daemon runs as its own system user with umask
/// 077, fleetd in windlassd's group and after it, with its state
/// directory, and a secret is passed by its file name, never as a store
/// item.
#[test]
fn the_guix_fleet_and_coordinator_services_run_their_daemons() {
    if !common::oracles_enabled("guix fleet modules") {
        return;
    }
    let o = guile(&modules_lib(), "(load \"/stubs/check-service.scm\")");
    assert!(
        o.status.success(),
        "modules/guix failed to load: {}",
        stderr(&o)
    );
    let facts = Facts::parse(&o.stdout);
    let pkg = "<plain-file windlass>";
    let fleetd = format!("{pkg}/bin/windlass-fleetd");
    let coordinator = format!("{pkg}/bin/windlass-coordinator");
    let common_fleetd = [
        fleetd.as_str(),
        "--bus",
        "system",
        "--state",
        "/var/lib/windlass-fleet",
        "--nats",
    ];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter().chain(tail).map(|s| s.to_string()).collect()
    };
    for (label, argv) in [
        (
            "fleet-default",
            with(
                &common_fleetd,
                &["nats://127.0.0.1:4222", "--heartbeat-interval", "30"],
            ),
        ),
        (
            "fleet-custom",
            with(
                &common_fleetd,
                &[
                    "nats://nats.example:4222",
                    "--heartbeat-interval",
                    "45",
                    "--host",
                    "kiosk-01",
                    "--label",
                    "site=north",
                    "--label",
                    "note=a \"b\" $HOME = é",
                    "--creds",
                    "/etc/windlass/fleetd.creds",
                    "--label",
                    "from-extra=1",
                ],
            ),
        ),
        (
            "fleet-user",
            with(
                &common_fleetd,
                &[
                    "nats://127.0.0.1:4222",
                    "--heartbeat-interval",
                    "30",
                    "--user",
                    "kiosk-01",
                    "--password-file",
                    "/etc/windlass/fleetd.password",
                ],
            ),
        ),
    ] {
        let group = if label == "fleet-custom" {
            "ops"
        } else {
            "windlass"
        };
        assert_eq!(facts.one(label, "type", "name"), Some("windlass-fleet"));
        let targets: BTreeSet<&str> = facts.all(label, "extends", "target").into_iter().collect();
        assert_eq!(
            targets,
            ["account", "activate", "shepherd-root"]
                .into_iter()
                .collect()
        );
        assert_eq!(facts.all(label, "windlass-fleetd", "argv"), argv, "{label}");
        assert_eq!(
            facts.one(label, "windlass-fleetd", "requirement"),
            Some("user-processes networking windlassd"),
            "a fleet member without windlassd fails to build"
        );
        assert_eq!(facts.one(label, "windlass-fleetd", "respawn?"), Some("#t"));
        assert_eq!(
            facts.one(label, "windlass-fleetd", "user"),
            Some("windlass-fleet")
        );
        assert_eq!(
            facts.one(label, "windlass-fleetd", "group"),
            Some("windlass-fleet")
        );
        assert_eq!(
            facts.all(label, "windlass-fleetd", "supplementary-group"),
            [group]
        );
        assert_eq!(
            facts.one(label, "windlass-fleetd", "file-creation-mask"),
            Some("63"),
            "umask 077"
        );
        // The system user, in windlassd's group (the bus policy's).
        assert_eq!(facts.one(label, "group", "name"), Some("windlass-fleet"));
        assert_eq!(facts.one(label, "group", "system?"), Some("#t"));
        let user = "user:windlass-fleet";
        assert_eq!(facts.one(label, user, "group"), Some("windlass-fleet"));
        assert_eq!(facts.all(label, user, "supplementary-group"), [group]);
        assert_eq!(facts.one(label, user, "system?"), Some("#t"));
        assert_eq!(facts.one(label, user, "create-home-directory?"), Some("#f"));
        assert_eq!(
            facts.one(label, user, "shell"),
            Some("<plain-file shadow>/sbin/nologin")
        );
        let activation = facts.one(label, "activation", "sexp").unwrap();
        assert!(
            activation.contains("\"/var/lib/windlass-fleet\"")
                && activation.contains("(getpwnam \"windlass-fleet\")")
                && activation.contains("(chmod directory 448)"),
            "the state directory, the user's, mode 0700: {activation}"
        );
    }
    for (label, argv) in [
        (
            "coordinator-default",
            vec![
                coordinator.as_str(),
                "--nats",
                "nats://127.0.0.1:4222",
                "--lease-ttl",
                "10s",
            ],
        ),
        (
            "coordinator-custom",
            vec![
                coordinator.as_str(),
                "--nats",
                "nats://nats.example:4222",
                "--lease-ttl",
                "30s",
                "--creds",
                "/etc/windlass/coordinator.creds",
                "--holder",
                "ops-1",
            ],
        ),
    ] {
        assert_eq!(
            facts.one(label, "type", "name"),
            Some("windlass-coordinator")
        );
        let targets: BTreeSet<&str> = facts.all(label, "extends", "target").into_iter().collect();
        assert_eq!(targets, ["account", "shepherd-root"].into_iter().collect());
        let name = "windlass-coordinator";
        assert_eq!(facts.all(label, name, "argv"), argv, "{label}");
        assert_eq!(
            facts.one(label, name, "requirement"),
            Some("user-processes networking"),
            "no windlassd needed"
        );
        assert_eq!(facts.one(label, name, "user"), Some(name));
        assert_eq!(facts.one(label, name, "group"), Some(name));
        assert!(facts.all(label, name, "supplementary-group").is_empty());
        assert_eq!(facts.one(label, name, "file-creation-mask"), Some("63"));
        let user = "user:windlass-coordinator";
        assert_eq!(facts.one(label, user, "group"), Some(name));
        assert!(facts.all(label, user, "supplementary-group").is_empty());
        assert_eq!(facts.one(label, user, "system?"), Some("#t"));
    }
}

/// Builds the services of `kind` (`fleet` or `coordinator`) from a
/// configuration with `fields` (Scheme) and the stand-in package, as
/// `guix system` folds them.
fn build_guix_fleet_service(kind: &str, fields: &str) -> Output {
    let script = format!(
        "(use-modules (windlass service) (gnu services) (guix gexp))
         (let ((config (windlass-{kind}-configuration
                        (package (plain-file \"windlass\" \"\"))
                        {fields})))
           (for-each (lambda (e) ((service-extension-compute e) config))
                     (service-type-extensions windlass-{kind}-service-type)))"
    );
    guile(&modules_lib(), &script)
}

/// Each bad setting of the fleet and coordinator configurations is
/// refused, naming the field, before anything is built; a secret given
/// as a file-like object (which would be copied into the store) is one.
/// The controls, the same configurations without the mutation, build.
#[test]
fn a_bad_guix_fleet_or_coordinator_setting_is_refused() {
    if !common::oracles_enabled("guix fleet negative") {
        return;
    }
    let fleet =
        "(credentials-file \"/etc/windlass/fleetd.creds\") (labels '((\"site\" . \"north\")))";
    let coordinator = "(credentials-file \"/etc/windlass/coordinator.creds\")";
    for (kind, fields) in [("fleet", fleet), ("coordinator", coordinator)] {
        let o = build_guix_fleet_service(kind, fields);
        assert!(o.status.success(), "{kind}: the control: {}", stderr(&o));
    }
    let mutants: &[(&str, &str, &str, &str)] = &[
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(credentials-file (local-file \"fleetd.creds\"))",
            "invalid value for field `credentials-file'",
        ),
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(credentials-file \"/gnu/store/0000-fleetd.creds\")",
            "invalid value for field `credentials-file'",
        ),
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(credentials-file \"fleetd.creds\")",
            "invalid value for field `credentials-file'",
        ),
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(credentials-file \"/etc/windlass/fleetd.creds\") (user \"kiosk-01\") (password-file \"/etc/windlass/fleetd.password\")",
            "give credentials-file or user and password-file, not both",
        ),
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(user \"kiosk-01\")",
            "user and password-file go together",
        ),
        (
            "fleet",
            "(credentials-file \"/etc/windlass/fleetd.creds\")",
            "(password-file (plain-file \"password\" \"secret\"))",
            "invalid value for field `password-file'",
        ),
        (
            "fleet",
            "(labels '((\"site\" . \"north\")))",
            "(labels '((\"a=b\" . \"north\")))",
            "invalid value for field `labels'",
        ),
        (
            "fleet",
            "(labels '((\"site\" . \"north\")))",
            "(labels '((\"\" . \"north\")))",
            "invalid value for field `labels'",
        ),
        (
            "fleet",
            "(labels '((\"site\" . \"north\")))",
            "(labels '((\"site\" . 5)))",
            "invalid value for field `labels'",
        ),
        (
            "fleet",
            "(host \"kiosk-01\")",
            "(host \"Kiosk_01\")",
            "invalid value for field `host'",
        ),
        (
            "fleet",
            "(host \"kiosk-01\")",
            "(host \"-kiosk\")",
            "invalid value for field `host'",
        ),
        (
            "fleet",
            "(heartbeat-interval 45)",
            "(heartbeat-interval 0)",
            "invalid value for field `heartbeat-interval'",
        ),
        (
            "fleet",
            "(nats-url \"nats://nats.example:4222\")",
            "(nats-url \"nats://kiosk:secret@nats.example:4222\")",
            "invalid value for field `nats-url'",
        ),
        (
            "fleet",
            "(nats-url \"nats://a.example:4222,nats://b.example:4222\")",
            "(nats-url \"nats://a.example:4222,nats://token@b.example:4222\")",
            "invalid value for field `nats-url'",
        ),
        (
            "fleet",
            "(extra-arguments '(\"--label\" \"x=1\"))",
            "(extra-arguments '(\"--label\" x=1))",
            "invalid value for field `extra-arguments'",
        ),
        (
            "coordinator",
            "(lease-ttl \"30s\")",
            "(lease-ttl \"0s\")",
            "invalid value for field `lease-ttl'",
        ),
        (
            "coordinator",
            "(lease-ttl \"30s\")",
            "(lease-ttl \"30 s\")",
            "invalid value for field `lease-ttl'",
        ),
        (
            "coordinator",
            "(credentials-file \"/etc/windlass/coordinator.creds\")",
            "(credentials-file (local-file \"coordinator.creds\"))",
            "invalid value for field `credentials-file'",
        ),
        (
            "coordinator",
            "(nats-url \"nats://nats.example:4222\")",
            "(nats-url \"nats://s3cr3t@nats.example:4222\")",
            "invalid value for field `nats-url'",
        ),
    ];
    for (kind, control, mutant, expected) in mutants {
        let o = build_guix_fleet_service(kind, control);
        assert!(o.status.success(), "{kind} {control}: {}", stderr(&o));
        let o = build_guix_fleet_service(kind, mutant);
        assert!(!o.status.success(), "{kind}: not refused: {mutant}");
        assert!(
            stderr(&o).contains(expected),
            "{kind} {mutant}: expected {expected:?} in {}",
            stderr(&o)
        );
    }
    eprintln!("{} bad settings refused", mutants.len());
}

/// Loads `scm` as `(windlass apps)` and returns Guile's error output, which
/// must be a failure.
fn load_fails(scm: &str, what: &str) -> String {
    let o = load_apps(scm);
    assert!(!o.status.success(), "{what}: Guile loaded it anyway");
    stderr(&o)
}

fn edited(scm: &str, from: &str, to: &str) -> String {
    assert!(scm.contains(from), "{from:?} not in the generated file");
    scm.replacen(from, to, 1)
}

#[test]
fn a_misspelt_field_or_keyword_fails_to_load() {
    if !common::oracles_enabled("guix negative") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    generate(&examples(), &out, &["--target", "guix"]);
    let scm = std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap();
    // The unedited file loads: the failures below are the edits'.
    assert!(load_apps(&scm).status.success());
    for (from, to, expected) in [
        (
            "(provision \"lnd\")",
            "(provison \"lnd\")",
            "unknown field `provison'",
        ),
        ("(image \"", "(imag \"", "unknown field `imag'"),
        ("(containers", "(container", "unknown field `container'"),
        ("(subnet \"", "(sub-net \"", "unknown field `sub-net'"),
        (
            "(documentation",
            "(documentaton",
            "unknown field `documentaton'",
        ),
        (
            "(respawn? #t)",
            "(respawn? \"yes\")",
            "invalid value for field `respawn?'",
        ),
        (
            "(requirement '(bitcoind))",
            "(requirement '(\"bitcoind\"))",
            "invalid value",
        ),
        ("#:days-of-week", "#:day-of-week", "day-of-week"),
        (
            "#:wait-for-termination?",
            "#:wait-for-termination",
            "wait-for-termination",
        ),
        ("#:user #$oci-user", "#:as-user #$oci-user", "as-user"),
    ] {
        let err = load_fails(&edited(&scm, from, to), to);
        assert!(err.contains(expected), "{to}: {err}");
    }

    // The same for the service module's own records.
    let o = guile(
        &modules_lib(),
        "(use-modules (windlass service) (guix gexp))
         (windlass-configuration (package (plain-file \"w\" \"\")) (gruop \"ops\"))",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown field `gruop'"),
        "{}",
        stderr(&o)
    );
    let o = guile(
        &modules_lib(),
        "(use-modules (windlass service))
         (windlass-configuration (group \"ops\"))",
    );
    assert!(!o.status.success(), "the package has no default");
    assert!(
        stderr(&o).contains("missing required field `package'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_docs_scheme_snippets_are_read_by_guile() {
    // Every ```scheme snippet of the docs, named after its page.
    let mut blocks = Vec::new();
    let mut on_guix_page = 0;
    for (page, text) in common::user_docs() {
        let found = common::fenced_blocks(&text, "scheme");
        if page == "docs/guix.md" {
            on_guix_page = found.len();
        }
        for (i, b) in found.into_iter().enumerate() {
            blocks.push((format!("{page} snippet {i}"), b));
        }
    }
    assert!(
        on_guix_page >= 2,
        "docs/guix.md has its Guix Scheme snippets"
    );
    for (name, b) in &blocks {
        assert!(
            scheme::check_sexprs(b).is_ok_and(|n| n > 0),
            "{name}: {:?}",
            scheme::check_sexprs(b)
        );
    }
    if !common::oracles_enabled("guix docs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for (i, (_, b)) in blocks.iter().enumerate() {
        std::fs::write(work.path().join(format!("{i}.scm")), b).unwrap();
    }
    let script = format!(
        "(use-modules (guix gexp) (stub dump))
         (for-each (lambda (i)
                     (call-with-input-file (format #f \"/wl/~a.scm\" i)
                       (lambda (port)
                         (let loop ((n 0))
                           (let ((d (read port)))
                             (if (eof-object? d)
                                 (emit \"snippet\" i \"data\" n)
                                 (loop (+ n 1))))))))
                   (iota {}))",
        blocks.len()
    );
    let o = guile(work.path(), &script);
    assert!(o.status.success(), "{}", stderr(&o));
    let facts = Facts::parse(&o.stdout);
    for (i, (name, b)) in blocks.iter().enumerate() {
        let n = facts.one("snippet", &i.to_string(), "data").unwrap();
        assert_eq!(
            n.parse::<usize>().unwrap(),
            scheme::check_sexprs(b).unwrap(),
            "{name}: Guile and windlass count different data"
        );
    }
}

// Without Guile.

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn an_overridden_guix_template_is_used_and_must_stay_well_formed() {
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("templates/guix");
    std::fs::create_dir_all(&tdir).unwrap();
    let default =
        std::fs::read_to_string(common::repo_root().join("templates/guix/apps.scm.j2")).unwrap();
    let templates = tmp.path().join("templates");
    let run = |template: &str, out: &Path| {
        std::fs::write(tdir.join("apps.scm.j2"), template).unwrap();
        windlass(&[
            "generate",
            examples().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            "guix",
            "--templates",
            templates.to_str().unwrap(),
        ])
    };
    let out = tmp.path().join("out");
    let o = run(
        &default.replace(";; Generated", ";; Site copy.\n;; Generated"),
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let scm = std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap();
    assert!(scm.starts_with(";; Site copy.\n"));

    for (template, expected) in [
        (default.replace("(list\n", "(list (\n"), "never closed"),
        (
            default.replace("))\n\n(define %windlass", ")))\n\n(define %windlass"),
            "unexpected closing",
        ),
        (
            default.replace("\"Return the", "\"Return \\q the"),
            "escape",
        ),
        ("; nothing\n".to_string(), "no Scheme expression"),
        (
            default.replace("{{ containers }}", "{{ 'raw' ~ containers }}"),
            "unescaped",
        ),
    ] {
        let out2 = tmp.path().join("out2");
        let o = run(&template, &out2);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{expected}: {}", stderr(&o));
        assert!(!out2.exists(), "nothing is written");
    }
}

#[test]
fn a_schedule_shepherd_cannot_express_is_refused_for_guix_only() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    copy_dir(&examples(), &fleet);
    let lnd = fleet.join("apps/lnd.toml");
    let text = std::fs::read_to_string(&lnd).unwrap();
    std::fs::write(
        &lnd,
        text.replace(
            "schedule = \"Sun *-*-* 03:00:00\"",
            "schedule = \"daily UTC\"",
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = windlass(&[
        "generate",
        fleet.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for part in [
        "app `lnd`",
        "job `backup`",
        "\"daily UTC\"",
        "time zone",
        "--target",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(!out.exists(), "nothing is written");
    generate(&fleet, &out, &["--target", "quadlet,systemd"]);
}

/// Shepherd 1.0.9's `shepherd/service/timer.scm`, read in place from the
/// shared oracles (`../shared/oracles/guix/shepherd`, see its SOURCES.md).
/// None (saying so) when it is absent outside CI; under `CI=true` its
/// absence fails the test.
fn shepherd_timer_scm(test: &str) -> Option<PathBuf> {
    shared_oracle(
        test,
        "shepherd/scm",
        "shepherd/service/timer.scm",
        "Shepherd's source",
    )
}

/// `../shared/oracles/guix/<sub>` when `<sub>/<probe>` is there; None
/// (saying so) outside CI; under `CI=true` its absence fails the test.
fn shared_oracle(test: &str, sub: &str, probe: &str, what: &str) -> Option<PathBuf> {
    let dir = common::repo_root().join("../shared/oracles/guix").join(sub);
    if dir.join(probe).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {what} is missing at {} (CI=true)",
        dir.display()
    );
    eprintln!(
        "SKIPPED {test}: {what} is not at {} (under CI=true this test fails instead)",
        dir.display()
    );
    None
}

/// A calendar event as Scheme, for Shepherd's own `calendar-event`.
fn event_form(ev: &windlass::emit::guix::calendar::CalendarEvent) -> String {
    let ints = |v: &[u32]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::from("(calendar-event");
    for (kw, v) in [
        ("months", &ev.months),
        ("days-of-month", &ev.days_of_month),
        ("hours", &ev.hours),
        ("minutes", &ev.minutes),
        ("seconds", &ev.seconds),
    ] {
        if let Some(v) = v {
            s.push_str(&format!(" #:{kw} '({})", ints(v)));
        }
    }
    if let Some(w) = &ev.days_of_week {
        s.push_str(&format!(" #:days-of-week '({})", w.join(" ")));
    }
    s.push(')');
    s
}

/// What Guix gets is what systemd would do: for every schedule the
/// generator turns into a Shepherd calendar event (the calendar corpus and
/// the cases below), Shepherd 1.0.9's own `next-calendar-event` (its code,
/// not a stand-in) fires at the same instants as `systemd-analyze calendar`
/// from several starting points; and every schedule refused because
/// Shepherd would not follow it exactly (`calendar::exact`) does differ
/// from systemd somewhere, so the refusal is never needless.
#[test]
fn shepherd_fires_when_systemd_does_for_every_schedule_guix_gets() {
    use windlass::emit::guix::calendar::{convert, expand};
    if !common::oracles_enabled("shepherd calendar") {
        return;
    }
    let Some(shepherd) = shepherd_timer_scm("shepherd calendar") else {
        return;
    };
    let corpus = std::fs::read_to_string(
        common::repo_root().join("generator/tests/data/calendar-corpus.txt"),
    )
    .unwrap();
    let mut exprs: Vec<String> = corpus
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .filter(|e| !e.contains('\\') && *e != "<empty>")
        .map(str::to_string)
        .collect();
    exprs.extend(
        [
            "Mon,Wed *-*-* 08..18/2:15",
            "Mon,Wed *-*-* 08:15",
            "Mon *:*",
            "*-*-* 08:15,45",
            "*-*-* 08..18:00",
            "*-*-* 08:*",
            "*:0/5:*",
            "*:0/5",
            "*-07-*",
            "*-07-04",
            "*-01,07-01,15",
            "*-02-29",
            "*-02-28 12:00",
            "*-*-31",
            "*-*-28",
            "*-04,05-31",
            "*-01..03-30",
            "*-02,03-30",
            "*-*-15,31 06:00",
            "*-*-29",
            "*-12-31 23:59:59",
            "Fri *-*-13 00:00",
            "Mon..Fri *-*-1..7 04:30",
            "Mon..Fri *-*-29..31 04:30",
            "Sat,Sun *-*-1..14 10:00",
            "*-*-01,15 12:00",
            "*-*-01,15 08..18/2:15",
        ]
        .map(str::to_string),
    );
    // (id, expression, accepted for Guix)
    let mut cases = Vec::new();
    let mut events = String::new();
    for e in &exprs {
        let Ok(ev) = expand(e) else { continue };
        events.push_str(&format!("({} {})\n", cases.len(), event_form(&ev)));
        cases.push((e.clone(), convert(e).is_ok()));
    }
    assert!(cases.iter().filter(|c| c.1).count() > 40, "{cases:?}");
    assert!(cases.iter().filter(|c| !c.1).count() > 10, "{cases:?}");

    const K: usize = 6;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("events.scm"), &events).unwrap();
    let mut base_forms = String::new();
    for (y, mo, d, h, mi, s) in FIRING_BASES {
        base_forms.push_str(&format!("({y} {mo} {d} {h} {mi} {s})\n"));
    }
    let base_args: Vec<String> = FIRING_BASES.into_iter().map(firing_base).collect();
    std::fs::write(work.path().join("bases.scm"), &base_forms).unwrap();

    // Shepherd: ID \t BASE \t WHEN, K lines per (event, base).
    let out = common::oracle(
        &[
            (&shepherd, "/shepherd"),
            (&stubs(), "/t"),
            (work.path(), "/w"),
        ],
        &[
            "env",
            "TZ=UTC",
            "guile",
            "--no-auto-compile",
            "/t/next-calendar-events.scm",
            "/shepherd/shepherd/service/timer.scm",
            "/w/events.scm",
            "/w/bases.scm",
            &K.to_string(),
        ],
    );
    assert!(out.status.success(), "Shepherd: {}", stderr(&out));
    let mut shepherd_says: std::collections::BTreeMap<(usize, String), Vec<String>> =
        Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        shepherd_says
            .entry((f[0].parse().unwrap(), f[1].to_string()))
            .or_default()
            .push(f[2].to_string());
    }

    // systemd: the same, from `systemd-analyze calendar --iterations`.
    let exprs: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    let systemd_says = systemd_firings(work.path(), &exprs, &base_args, K);

    let mut wrong = String::new();
    for (i, (e, accepted)) in cases.iter().enumerate() {
        let mut differs = Vec::new();
        for b in &base_args {
            let k = (i, b.clone());
            // systemd may list fewer ("never"): Shepherd's are then wrong.
            let (s, d) = (&shepherd_says[&k], &systemd_says[&k]);
            if s != d {
                differs.push(format!("from {b}: Shepherd {s:?}, systemd {d:?}"));
            }
        }
        match (accepted, differs.is_empty()) {
            (true, false) => wrong.push_str(&format!(
                "{e:?} is accepted, but:\n  {}\n",
                differs.join("\n  ")
            )),
            (false, true) => wrong.push_str(&format!(
                "{e:?} is refused ({}), yet Shepherd agrees with systemd from every start\n",
                convert(e).unwrap_err()
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong}");
    eprintln!(
        "{} schedules: {} fire as systemd's in Shepherd, {} refused and shown to differ",
        cases.len(),
        cases.iter().filter(|c| c.1).count(),
        cases.iter().filter(|c| !c.1).count()
    );
}

/// Guix runs the containers with rootless Podman: a published host port
/// below 1024 cannot be bound unless the host lowers
/// `net.ipv4.ip_unprivileged_port_start`. Generating for Guix says so, per
/// app, with the setting; the other targets (rootful) do not.
#[test]
fn host_ports_below_1024_warn_for_guix_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = windlass(&[
        "generate",
        examples().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warnings: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("ip_unprivileged_port_start"))
        .map(String::from)
        .collect();
    // caddy publishes 80 and 443 (twice: tcp and udp); every other
    // example app publishes ports of 1024 and above.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for part in [
        "warning: app `caddy`: for Guix, host ports 80, 443 below 1024",
        "net.ipv4.ip_unprivileged_port_start to 80 or less",
        "(simple-service 'unprivileged-ports sysctl-service-type '((\"net.ipv4.ip_unprivileged_port_start\" . \"80\")))",
    ] {
        assert!(warnings[0].contains(part), "{part}: {}", warnings[0]);
    }
    let out2 = tmp.path().join("out2");
    let o = windlass(&[
        "generate",
        examples().to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--target",
        "quadlet,systemd,nixos",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("ip_unprivileged_port_start"),
        "{}",
        stderr(&o)
    );
}

/// The `podman` argv Guix's `oci-container-run-invocation` builds for
/// `app` (`run --rm --replace --name NAME`, then
/// `oci-container-configuration->options` in its order, the
/// extra-arguments, the image and the command), from the values the
/// stand-in load read back and `check_container` compared with the
/// manifest.
fn guix_run_argv(facts: &Facts, app: &App) -> Vec<String> {
    let name = app.name.as_str();
    let get = |f| facts.all("container", name, f);
    let mut a: Vec<String> = [
        "/run/current-system/profile/bin/podman",
        "run",
        "--rm",
        "--replace",
        "--name",
        name,
    ]
    .map(String::from)
    .to_vec();
    let mut flag = |flag: &str, values: Vec<&str>| {
        for v in values {
            a.push(flag.to_string());
            a.push(v.to_string());
        }
    };
    flag("--entrypoint", get("entrypoint"));
    flag("--env", get("environment"));
    flag("--network", get("network"));
    flag("--user", get("container-user"));
    flag("-p", get("ports"));
    flag("-v", get("volumes"));
    a.extend(get("extra-arguments").into_iter().map(String::from));
    a.extend(get("image").into_iter().map(String::from));
    a.extend(get("command").into_iter().map(String::from));
    a
}

/// A Scheme list of string literals.
fn scheme_list(items: &[String]) -> String {
    let lits: Vec<String> = items.iter().map(|s| scheme::string(s)).collect();
    format!("(list {})", lits.join(" "))
}

/// Non-ASCII reaches Podman as written. Guix's entrypoint of a container
/// is a Guile program that calls `oci-container-execlp` (Guix's own, from
/// `gnu/build/oci-containers.scm` of the real Guix, read in place) with
/// the run invocation, started by the Shepherd with only `HOME` plus the
/// container's `host-environment`; a job's program `execlp`s its command
/// with the job's environment. Both are run so, in Guile 3.0.10, for the
/// torture fleet, and exec a recording `podman` (and `/bin/echo`, which a
/// torture job runs): every argument arrives byte for byte. Without the
/// UTF-8 locale (only `HOME`, as generated before), the same programs
/// deliver `?` for every character outside ASCII, so the check has teeth.
#[test]
fn every_byte_reaches_podman_through_the_entrypoint() {
    let test = "guix exec path";
    if !common::oracles_enabled(test) {
        return;
    }
    let Some(guix) = real_guix_src(test) else {
        return;
    };
    let facts = fleet_case(&torture(), "torture");
    let fleet = load_fleet(&torture()).unwrap().fleet.unwrap();
    let app = common::app_named(&fleet, "torture");
    let job = app.jobs.iter().find(|j| j.name == "echo").unwrap();
    let argv = guix_run_argv(&facts, app);
    assert!(argv.iter().any(|a| !a.is_ascii()), "{argv:?}");
    assert!(job.command.iter().any(|a| !a.is_ascii()));
    assert_eq!(facts.all("timer", "torture-echo", "command"), job.command);

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Guix's entrypoint program (`oci-container-entrypoint`), with the
    // module path Guix's program-file would set.
    std::fs::write(
        w.join("entrypoint.scm"),
        format!(
            "(set! %load-path (cons \"/g\" %load-path))\n\
             (begin (use-modules (gnu build oci-containers) (srfi srfi-1))\n\
               (oci-container-execlp {} #:verbose? #f #:pre-script (lambda _ #t)))\n",
            scheme_list(&argv)
        ),
    )
    .unwrap();
    // The job's program, as generated.
    std::fs::write(
        w.join("job.scm"),
        format!(
            "(let ((argv {})) (apply execlp (car argv) argv))\n",
            scheme_list(&job.command)
        ),
    )
    .unwrap();
    // The Shepherd's environments: HOME, then host-environment (the
    // locales' store path cannot exist here; Debian's C library has
    // C.UTF-8 built in); the job's is PATH, HOME, GUIX_LOCPATH, LC_ALL.
    let home = "HOME=/var/empty".to_string();
    let mut container_env = vec![home.clone()];
    container_env.extend(
        facts
            .all("container", "torture", "host-environment")
            .into_iter()
            .map(String::from),
    );
    let job_env: Vec<String> = facts
        .all("timer", "torture-echo", "env")
        .into_iter()
        .map(|e| {
            if e.starts_with("HOME=") {
                home.clone()
            } else {
                e.to_string()
            }
        })
        .collect();
    assert!(container_env.contains(&"LC_ALL=C.UTF-8".to_string()));
    assert!(job_env.contains(&"LC_ALL=C.UTF-8".to_string()));
    let quoted = |env: &[String]| {
        env.iter()
            .map(|e| format!("'{}'", e.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let runs = [
        ("container", "entrypoint", quoted(&container_env)),
        ("job", "job", quoted(&job_env)),
        (
            "container-c",
            "entrypoint",
            quoted(std::slice::from_ref(&home)),
        ),
        (
            "job-c",
            "job",
            quoted(&["PATH=/run/current-system/profile/bin".into(), home.clone()]),
        ),
    ];
    let mut script = String::from(
        "set -e; mkdir -p /run/current-system/profile/bin; \
         printf '#!/bin/sh\\nfor a in \"$0\" \"$@\"; do printf \"%%s\\\\0\" \"$a\"; done > \"$OUT\"\\n' \
           > /run/current-system/profile/bin/podman; \
         chmod +x /run/current-system/profile/bin/podman; \
         mount --bind /run/current-system/profile/bin/podman /usr/bin/echo; ",
    );
    for (label, program, env) in &runs {
        // OUT, one more variable, tells the recorder where to write; it
        // has no bearing on the locale.
        script.push_str(&format!(
            "env -i {env} OUT=/w/{label}.argv /usr/bin/guile --no-auto-compile /w/{program}.scm || true; "
        ));
    }
    let out = common::oracle(
        &[(&guix.join("src"), "/g"), (w, "/w")],
        &["sh", "-c", &script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |label: &str| -> Vec<Vec<u8>> {
        let bytes = std::fs::read(w.join(format!("{label}.argv")))
            .unwrap_or_else(|e| panic!("{label}: nothing was exec'd ({e}): {}", stderr(&out)));
        let mut args: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        assert_eq!(args.pop(), Some(Vec::new()), "{label}: NUL-terminated");
        args
    };
    let bytes =
        |v: &[String]| -> Vec<Vec<u8>> { v.iter().map(|a| a.as_bytes().to_vec()).collect() };
    assert_eq!(read("container"), bytes(&argv), "podman's argv");
    let mut want_job = job.command.clone();
    want_job[0] = "/bin/echo".into();
    assert_eq!(read("job"), bytes(&want_job), "the job's argv");
    // In the C locale the same programs mangle every non-ASCII argument.
    for (label, want) in [("container-c", &argv), ("job-c", &want_job)] {
        let got = read(label);
        assert_eq!(got.len(), want.len(), "{label}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert_eq!(
                g == w.as_bytes(),
                w.is_ascii(),
                "{label}: {w:?} became {:?}",
                String::from_utf8_lossy(g)
            );
        }
    }
}

/// The real Guix source (`../shared/oracles/guix`, see its SOURCES.md).
/// None (saying so) when absent outside CI; under `CI=true` its absence
/// fails the test.
fn real_guix_src(test: &str) -> Option<PathBuf> {
    shared_oracle(
        test,
        "",
        "src/gnu/build/oci-containers.scm",
        "the real Guix source",
    )
}

/// The real Guix closure compiled for the rootfs's Guile
/// (`tools/guix-go.sh`): built on first use, which takes minutes, then
/// cached under /var/cache/windlass.
fn guix_go(test: &str) -> PathBuf {
    let o = Command::new(common::repo_root().join("tools/guix-go.sh"))
        .output()
        .expect("cannot run tools/guix-go.sh");
    assert!(
        o.status.success(),
        "{test}: tools/guix-go.sh could not compile the Guix closure: {}",
        stderr(&o)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Starting points for timers' next firings: mid-minute, mid-hour, in
/// months and on days few events allow, around February in common and
/// leap years, and at the end of a year (UTC).
const FIRING_BASES: [(u32, u32, u32, u32, u32, u32); 6] = [
    (2026, 3, 3, 12, 20, 10),
    (2026, 4, 5, 9, 3, 21),
    (2027, 2, 10, 7, 20, 40),
    (2028, 2, 28, 19, 30, 20),
    (2026, 6, 30, 18, 50, 11),
    (2026, 12, 31, 23, 50, 50),
];

fn firing_base(b: (u32, u32, u32, u32, u32, u32)) -> String {
    let (y, mo, d, h, mi, s) = b;
    format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `systemd-analyze calendar --iterations=k` of each expression from each
/// base (UTC): (expression index, base) -> instants as `YYYY-MM-DD
/// HH:MM:SS`; fewer than k when systemd says it never fires again.
fn systemd_firings(
    work: &Path,
    exprs: &[String],
    bases: &[String],
    k: usize,
) -> std::collections::BTreeMap<(usize, String), Vec<String>> {
    let mut tsv = String::new();
    for (i, e) in exprs.iter().enumerate() {
        tsv.push_str(&format!("{i}\t{e}\n"));
    }
    std::fs::write(work.join("exprs.tsv"), &tsv).unwrap();
    let script = format!(
        "while IFS=\"$(printf '\\t')\" read -r i e; do for b in {}; do \
           printf '== %s\\t%s\\n' \"$i\" \"$b\"; \
           systemd-analyze calendar --iterations={k} --base-time=\"$b UTC\" \"$e\" || true; \
         done; done < /w/exprs.tsv",
        bases
            .iter()
            .map(|b| format!("'{b}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = common::oracle(&[(work, "/w")], &["env", "TZ=UTC", "sh", "-c", &script]);
    assert!(out.status.success(), "systemd-analyze: {}", stderr(&out));
    let mut says: std::collections::BTreeMap<(usize, String), Vec<String>> = Default::default();
    let mut key = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(k) = line.strip_prefix("== ") {
            let (i, b) = k.split_once('\t').unwrap();
            let k = (i.parse().unwrap(), b.to_string());
            says.insert(k.clone(), Vec::new());
            key = Some(k);
        } else if let Some((_, rest)) = line.split_once("Next elapse: ").or_else(|| {
            line.split_once("Iteration #")
                .and_then(|(_, r)| r.split_once(": "))
        }) {
            // "Wed 2026-03-04 08:15:00 UTC", or "never".
            let w: Vec<&str> = rest.split_whitespace().collect();
            if w.len() >= 3 {
                says.get_mut(key.as_ref().unwrap())
                    .unwrap()
                    .push(format!("{} {}", w[1], w[2]));
            }
        }
    }
    says
}

/// What the real Guix runs for a generated `(windlass apps)` (SCM) with
/// `modules/guix`: `generator/tests/guix-real/fold.scm` folds the
/// operating-system of docs/guix.md with Guix 43770a9's own modules and
/// reports the Shepherd services NAMES lists. Err with Guile's message
/// when Guix refuses the system.
fn real_guix_fold(
    guix: &Path,
    go: &Path,
    scm: &str,
    names: &[String],
    work: &Path,
) -> Result<Facts, String> {
    let lib = apps_lib(scm);
    std::fs::copy(
        modules_lib().join("windlass/service.scm"),
        lib.path().join("windlass/service.scm"),
    )
    .unwrap();
    std::fs::create_dir_all(work.join("store")).unwrap();
    let mut bases = String::new();
    for (y, mo, d, h, mi, s) in FIRING_BASES {
        bases.push_str(&format!("({y} {mo} {d} {h} {mi} {s})\n"));
    }
    std::fs::write(work.join("bases.scm"), bases).unwrap();
    std::fs::write(work.join("names"), names.join("\n")).unwrap();
    let driver = common::repo_root().join("generator/tests/guix-real");
    let o = common::oracle(
        &[
            (guix, "/g"),
            (go, "/go"),
            (lib.path(), "/wl"),
            (work, "/w"),
            (&driver, "/t"),
        ],
        &[
            "env",
            "TZ=UTC",
            "guile",
            "--no-auto-compile",
            "-L",
            "/wl",
            "-L",
            "/g/stubs",
            "-L",
            "/g/src",
            "-C",
            "/go",
            "-L",
            "/g/shepherd/scm",
            "-C",
            "/g/shepherd/go",
            "/t/fold.scm",
            "/w/store",
            "/w/bases.scm",
            "/w/names",
        ],
    );
    if !o.status.success() {
        return Err(stderr(&o));
    }
    Ok(Facts::parse(&o.stdout))
}

/// Runs Guix's programs as the Shepherd would: each (label, program,
/// environment) with only that environment, Podman (and any absolute
/// command a job names) replaced by a recorder. Returns each label's argv
/// as exec'd, or Err naming a program that exec'd nothing.
fn run_guix_programs(
    work: &Path,
    guix: &Path,
    runs: &[(String, String, Vec<String>)],
    masked: &BTreeSet<String>,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, String> {
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut script = String::from(
        "set -e; mkdir -p /run/current-system/profile/bin; \
         printf '#!/bin/sh\\nfor a in \"$0\" \"$@\"; do printf \"%%s\\\\0\" \"$a\"; done > \"$OUT\"\\n' \
           > /run/current-system/profile/bin/podman; \
         chmod +x /run/current-system/profile/bin/podman; ",
    );
    for m in masked {
        script.push_str(&format!(
            "mount --bind /run/current-system/profile/bin/podman {}; ",
            quoted(m)
        ));
    }
    std::fs::create_dir_all(work.join("argv")).unwrap();
    for (label, program, env) in runs {
        let env: Vec<String> = env.iter().map(|e| quoted(e)).collect();
        script.push_str(&format!(
            "env -i {} OUT=/w/argv/{label} /usr/bin/guile --no-auto-compile {} || true; ",
            env.join(" "),
            quoted(program)
        ));
    }
    let out = common::oracle(&[(guix, "/g"), (work, "/w")], &["sh", "-c", &script]);
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let mut argvs = std::collections::BTreeMap::new();
    for (label, _, _) in runs {
        let bytes = std::fs::read(work.join("argv").join(label))
            .map_err(|e| format!("{label}: nothing was exec'd ({e}): {}", stderr(&out)))?;
        let mut args: Vec<String> = String::from_utf8(bytes)
            .map_err(|e| format!("{label}: not UTF-8: {e}"))?
            .split('\0')
            .map(String::from)
            .collect();
        if args.pop().as_deref() != Some("") {
            return Err(format!("{label}: argv not NUL-terminated"));
        }
        argvs.insert(label.clone(), args);
    }
    Ok(argvs)
}

/// A mismatch, as a line of the report.
fn differ<T: std::fmt::Debug + PartialEq>(what: &str, got: T, want: T) -> Option<String> {
    (got != want).then(|| format!("{what}: Guix gives {got:?}, the manifest says {want:?}"))
}

/// Folds FLEET's Guix output (or SCM, an edited copy of it) with the real
/// Guix and compares what the Shepherd would run with the manifests: each
/// container's podman argv as its entrypoint program execs it, under the
/// environment Guix gives it; each job's argv as its program execs it and
/// its next firings (Shepherd's own `next-calendar-event` on the event
/// Guix built) against `systemd-analyze calendar` of the manifest's
/// schedule; windlassd's command and the sweep timer. Err lists every
/// difference, or says why Guix refused the system.
fn real_guix_check(
    test: &str,
    fleet_dir: &Path,
    edit: impl Fn(&str) -> String,
) -> Result<(usize, usize), String> {
    let guix = real_guix_src(test).expect("checked by the caller");
    let go = guix_go(test);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let out = w.join("out");
    generate(fleet_dir, &out, &["--target", "guix"]);
    let scm = edit(&std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap());
    // The stand-in load checks every record field against the manifest;
    // the argv Guix must build follows from those fields.
    let stand_in = fleet_case(fleet_dir, test);
    let fleet = load_fleet(fleet_dir).unwrap().fleet.unwrap();
    let mut names: Vec<String> = vec!["windlassd".into(), "windlass-sweep".into()];
    for app in &fleet.apps {
        names.push(app.name.clone());
        for job in &app.jobs {
            names.push(format!("{}-{}", app.name, job.name));
        }
    }
    let facts = real_guix_fold(&guix, &go, &scm, &names, w)?;

    let mut wrong: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    let mut masked = BTreeSet::new();
    let guest = |p: &str| p.to_string();
    for app in &fleet.apps {
        let name = app.name.as_str();
        let argv = facts.all("exec", name, "argv");
        if argv.len() != 1 || !argv[0].starts_with("/w/store/") {
            wrong.push(format!(
                "{name}: the Shepherd starts {argv:?}, not one program"
            ));
            continue;
        }
        let env: Vec<String> = facts
            .all("exec", name, "env")
            .into_iter()
            .map(String::from)
            .collect();
        wrong.extend(differ(
            &format!("{name}: user"),
            facts.one("exec", name, "user"),
            Some("oci-container"),
        ));
        if !env.iter().any(|e| e == "LC_ALL=C.UTF-8") {
            wrong.push(format!("{name}: no UTF-8 locale in {env:?}"));
        }
        runs.push((format!("c-{name}"), guest(argv[0]), env));
        for job in &app.jobs {
            let t = format!("{}-{}", app.name, job.name);
            let argv = facts.all("timer", &t, "argv");
            if argv.len() != 1 || !argv[0].starts_with("/w/store/") {
                wrong.push(format!("{t}: the timer runs {argv:?}, not one program"));
                continue;
            }
            if job.command[0].starts_with('/') {
                masked.insert(job.command[0].clone());
            }
            runs.push((
                format!("j-{t}"),
                guest(argv[0]),
                facts
                    .all("timer", &t, "env")
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ));
            wrong.extend(differ(
                &format!("{t}: user"),
                facts.one("timer", &t, "user"),
                Some("oci-container"),
            ));
            wrong.extend(differ(
                &format!("{t}: max-duration"),
                facts.one("timer", &t, "max-duration").map(String::from),
                Some(
                    job.timeout
                        .map_or("#f".to_string(), |us| us.div_ceil(1_000_000).to_string()),
                ),
            ));
        }
    }
    let argvs = run_guix_programs(w, &guix, &runs, &masked)?;
    for app in &fleet.apps {
        let name = app.name.as_str();
        let Some(got) = argvs.get(&format!("c-{name}")) else {
            continue;
        };
        let want = guix_run_argv(&stand_in, app);
        wrong.extend(differ(&format!("{name}: podman argv"), got, &want));
        // Guix's exported options procedure agrees with what ran.
        let options = facts.all("oci", name, "option");
        let at = got.iter().position(|a| a == "--name").map(|i| i + 2);
        if at.and_then(|i| got.get(i..i + options.len()))
            != Some(&options.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..])
        {
            wrong.push(format!(
                "{name}: oci-container-configuration->options gives {options:?}, not what follows --name in {got:?}"
            ));
        }
        for job in &app.jobs {
            let t = format!("{}-{}", app.name, job.name);
            let Some(got) = argvs.get(&format!("j-{t}")) else {
                continue;
            };
            let mut want = job.command.clone();
            if !want[0].starts_with('/') {
                want[0] = format!("/run/current-system/profile/bin/{}", want[0]);
            }
            wrong.extend(differ(&format!("{t}: argv"), got, &want));
        }
    }

    // Firings: Shepherd's on Guix's events, systemd's on the schedules.
    let mut timers: Vec<(String, String)> = vec![(
        "windlass-sweep".into(),
        "weekly".into(), // modules/guix's default: systemd's weekly
    )];
    for app in &fleet.apps {
        for job in &app.jobs {
            timers.push((format!("{}-{}", app.name, job.name), job.schedule.clone()));
        }
    }
    let bases: Vec<String> = FIRING_BASES.into_iter().map(firing_base).collect();
    let exprs: Vec<String> = timers.iter().map(|t| t.1.clone()).collect();
    let systemd = systemd_firings(w, &exprs, &bases, 6);
    for (i, (t, schedule)) in timers.iter().enumerate() {
        for b in &bases {
            let shepherd: Vec<&str> = facts
                .all("timer", t, "firing")
                .into_iter()
                .filter_map(|f| f.strip_prefix(&format!("{b}\t")))
                .collect();
            let want: Vec<&str> = systemd[&(i, b.clone())]
                .iter()
                .map(String::as_str)
                .collect();
            wrong.extend(differ(
                &format!("{t} ({schedule}) from {b}: firings"),
                shepherd,
                want,
            ));
        }
    }

    // The agent's own services from modules/guix.
    wrong.extend(differ(
        "windlassd: command",
        facts.all("exec", "windlassd", "argv"),
        vec![
            "/w/store/windlass/bin/windlassd",
            "--bus",
            "system",
            "--state-dir",
            "/var/lib/windlass",
            "--group",
            "windlass",
            "--platform",
            "guix",
        ],
    ));
    wrong.extend(differ(
        "windlass-sweep: command",
        facts.all("timer", "windlass-sweep", "argv"),
        vec!["/w/store/windlass/bin/windlassctl", "sweep"],
    ));
    // Each container requires the services of the apps it depends on.
    for app in &fleet.apps {
        let req = facts.all("service", &app.name, "requirement");
        for d in app.requires.iter().chain(&app.wants) {
            if !req.contains(&d.as_str()) {
                wrong.push(format!("{}: requirement {req:?} lacks {d}", app.name));
            }
        }
    }
    let non_ascii = argvs.values().flatten().filter(|a| !a.is_ascii()).count();
    if wrong.is_empty() {
        Ok((runs.len(), non_ascii))
    } else {
        Err(wrong.join("\n"))
    }
}

/// The example fleet and the hostile (torture) fleet, folded with the real
/// Guix: every container's podman argv and every job's argv arrive byte
/// for byte as the manifests say (non-ASCII included), and every timer
/// fires when systemd's would.
#[test]
fn the_real_guix_runs_what_the_manifests_say() {
    let test = "real guix";
    if !common::oracles_enabled(test) || real_guix_src(test).is_none() {
        return;
    }
    // The example fleet with a job on weekdays and days of the month.
    let work = tempfile::tempdir().unwrap();
    let both = work.path().join("weekday-and-day");
    copy_dir(&examples(), &both);
    let postgres = both.join("apps/postgres.toml");
    let toml = std::fs::read_to_string(&postgres).unwrap();
    assert!(toml.contains("\"Mon..Fri *-*-* 04:30\""));
    std::fs::write(
        &postgres,
        toml.replace("\"Mon..Fri *-*-* 04:30\"", "\"Mon..Fri *-*-1..7 04:30\""),
    )
    .unwrap();
    let fleets = common::repo_root().join("generator/tests/fleets");
    for (label, dir) in [
        ("examples", examples()),
        ("torture", torture()),
        ("weekday-and-day", both),
        ("settings", fleets.join("settings")),
        ("names", fleets.join("names")),
        ("hooks", fleets.join("hooks")),
        ("quotes", fleets.join("quotes")),
    ] {
        let started = std::time::Instant::now();
        let (programs, non_ascii) =
            real_guix_check(test, &dir, str::to_string).unwrap_or_else(|e| panic!("{label}: {e}"));
        if label == "torture" {
            assert!(non_ascii >= 2, "torture: {non_ascii} non-ASCII arguments");
        }
        eprintln!(
            "{label}: the real Guix folded the system; {programs} programs exec'd as the manifests say, \
             {non_ascii} arguments outside ASCII among them ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The same check has teeth: a misspelt field, a value of the wrong type,
/// a bad calendar keyword and a misspelt keyword of the timer constructor
/// are refused by Guix's and Shepherd's own code;
/// an argument split wrongly reaches Podman differently from the manifest,
/// and a timer an hour off fires when systemd's does not.
#[test]
fn the_real_guix_check_rejects_mutants() {
    let test = "real guix mutants";
    if !common::oracles_enabled(test) || real_guix_src(test).is_none() {
        return;
    }
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "misspelt field",
            "(provision \"lnd\")",
            "(provison \"lnd\")",
            "extraneous field initializers (provison)",
        ),
        (
            "wrong value type",
            "(network \"archy\")",
            "(network 'archy)",
            "arguments: (archy network)",
        ),
        (
            "argument split wrongly",
            "(command (list \"lnd\" \"--configfile=/data/lnd.conf\"))",
            "(command (list \"lnd --configfile=/data/lnd.conf\"))",
            "lnd: podman argv",
        ),
        (
            "bad timer keyword",
            "#:hours '(2)",
            "#:hour '(2)",
            "Unrecognized keyword: #:hour",
        ),
        (
            "misspelt constructor keyword",
            "#:max-duration 900",
            "#:max-durations 900",
            "#:max-durations",
        ),
        (
            "timer moved by an hour",
            "#:hours '(2)",
            "#:hours '(3)",
            "postgres-dump (*-*-* 02:30:00) from 2026-03-03 12:20:10: firings",
        ),
    ];
    for (what, from, to, says) in cases {
        let err = real_guix_check(test, &examples(), |scm| {
            assert!(scm.contains(from), "{what}: {from:?} is not in the output");
            scm.replacen(from, to, 1)
        })
        .expect_err(what);
        assert!(
            err.contains(says),
            "{what}: the failure does not name {says:?}:\n{err}"
        );
        eprintln!("{what}: rejected");
    }
}
