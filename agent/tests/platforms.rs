//! State machines of the NixOS and Guix platforms, on stand-in profile
//! trees with recorded commands (nothing is executed): the NixOS path runs
//! `switch-to-configuration test` before the health gate and sets the
//! profile + `boot` only after it; a failed gate never touches the
//! profile; a Guix rollback returns to the generation recorded when the
//! operation started, even when another generation appeared meanwhile.
//! Lifecycle hooks on both: pre-activate before the platform's
//! activation, pre-commit after the gate and before the commit,
//! post-commit after it (each hook and each command logged into one
//! file, which shows the order); a failing pre-commit hook rolls back
//! through the down hooks of the generation being left, never touches
//! the NixOS profile, and leaves a diagnostics bundle with its output.
//! A sweep on NixOS reports a new release (against a real registry) and
//! changes nothing: the agent does not build NixOS systems.

mod doubles;
#[path = "../../net/tests/common/mod.rs"]
mod net;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use doubles::{Fake, Recorder};
use windlass_agent::contract::GenerationId;
use windlass_agent::ops::Engine;
use windlass_agent::ops::runner::Runner;
use windlass_agent::ops::switch::SwitchOptions;
use windlass_agent::platform::profiles::Profiles;
use windlass_agent::platform::profiles::Runner as CommandRunner;
use windlass_agent::platform::{Platform, guix::Guix, nixos::Nixos};
use windlass_agent::record::Outcome;
use windlass_agent::store::Store;

struct Tree {
    _tmp: tempfile::TempDir,
    profiles: PathBuf,
    current: PathBuf,
    state: PathBuf,
    /// The host's `/etc`.
    etc: PathBuf,
}

fn tree(gens: &[u32], selected: u32) -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let profiles = tmp.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    for g in gens {
        add_generation(&profiles, *g);
    }
    std::os::unix::fs::symlink(format!("system-{selected}-link"), profiles.join("system")).unwrap();
    let current = tmp.path().join("current-system");
    std::os::unix::fs::symlink(
        std::fs::read_link(profiles.join(format!("system-{selected}-link"))).unwrap(),
        &current,
    )
    .unwrap();
    let state = tmp.path().join("state");
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    Tree {
        profiles,
        current,
        state,
        etc,
        _tmp: tmp,
    }
}

fn add_generation(profiles: &Path, g: u32) {
    let store = profiles.parent().unwrap().join(format!("store/gen{g}"));
    std::fs::create_dir_all(store.join("bin")).unwrap();
    std::fs::create_dir_all(store.join("etc/windlass")).unwrap();
    std::fs::write(store.join("bin/switch-to-configuration"), "").unwrap();
    std::fs::write(store.join("activate"), "").unwrap();
    std::fs::write(
        store.join("etc/windlass/generation.json"),
        format!(
            r#"{{"format":1,"platform":"nixos","apps":[{{"name":"web","unit":"podman-web.service","image":"docker.io/library/web:{g}.0.0","health":{{"container_check":true}},"update":{{"health_deadline_sec":1}}}}]}}"#
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&store, profiles.join(format!("system-{g}-link"))).unwrap();
}

fn g(n: u64) -> Option<GenerationId> {
    Some(GenerationId(n))
}

fn profiles(t: &Tree) -> Profiles {
    Profiles {
        profiles: t.profiles.clone(),
        current_system: t.current.clone(),
        etc: t.etc.clone(),
    }
}

fn engine<P: Platform>(t: &Tree, p: P, fake: &Fake) -> Arc<Engine<P, Fake>> {
    engine_with(t, p, fake, |_| {})
}

fn engine_with<P: Platform>(
    t: &Tree,
    p: P,
    fake: &Fake,
    edit: impl FnOnce(&mut Runner<P, Fake>),
) -> Arc<Engine<P, Fake>> {
    let mut rn = doubles::runner(&t.state, p, fake);
    edit(&mut rn);
    Arc::new(Engine::new(rn, Default::default(), Default::default()))
}

fn nixos(t: &Tree, rec: &Recorder, fake: &Fake) -> Arc<Engine<Nixos, Fake>> {
    engine(
        t,
        Nixos {
            profiles: profiles(t),
            runner: Box::new(rec.clone()),
        },
        fake,
    )
}

fn guix(t: &Tree, rec: &Recorder, fake: &Fake) -> Arc<Engine<Guix, Fake>> {
    engine(
        t,
        Guix {
            profiles: profiles(t),
            runner: Box::new(rec.clone()),
        },
        fake,
    )
}

fn recorder(t: &Tree) -> Recorder {
    Recorder {
        current_system: Some(t.current.clone()),
        profiles: Some(t.profiles.clone()),
        ..Default::default()
    }
}

fn calls(rec: &Recorder, t: &Tree) -> Vec<String> {
    let root = t.profiles.display().to_string();
    rec.calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.replace(&root, "P"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nixos_tests_before_the_gate_and_boots_only_after_it() {
    let t = tree(&[1, 2], 1);
    let rec = recorder(&t);
    let fake = Fake::default();
    fake.set("podman-web.service", "active", "running");
    let e = nixos(&t, &rec, &fake);
    assert_eq!(
        (e.runner.platform.selected(), e.runner.platform.running()),
        (g(1), g(1))
    );
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    assert_eq!(
        calls(&rec, &t),
        [
            "P/system-2-link/bin/switch-to-configuration test",
            "nix-env -p P/system --switch-generation 2",
            "P/system-2-link/bin/switch-to-configuration boot",
        ]
    );
    assert_eq!(e.runner.platform.selected(), g(2));
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed));
    assert_eq!(r.from_generation(), g(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_gate_never_touches_the_nixos_profile() {
    let t = tree(&[1, 2], 1);
    let rec = recorder(&t);
    let fake = Fake::default();
    // Generation 2 never gets healthy (the gate's 1 s deadline passes).
    fake.set("podman-web.service", "activating", "start");
    let e = nixos(&t, &rec, &fake);
    // Generation 1's unit is healthy again once it is back.
    let (rec2, fake2) = (rec.clone(), fake.clone());
    tokio::spawn(async move {
        loop {
            if rec2
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.contains("system-1-link"))
            {
                fake2.set("podman-web.service", "active", "running");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    assert_eq!(
        calls(&rec, &t),
        [
            "P/system-2-link/bin/switch-to-configuration test",
            "P/system-1-link/bin/switch-to-configuration test",
        ],
        "test, then back to the recorded generation; no nix-env, no boot"
    );
    assert_eq!(e.runner.platform.selected(), g(1));
    assert_eq!(e.runner.platform.running(), g(1));
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack));
    assert!(r.error.contains("not healthy within 1 s"), "{}", r.error);
}

/// When the external revert timer is what runs a rollback (`windlassd
/// --revert OP`), disarming the timer stops the unit that process lives
/// in: the record must be finished before that, on every way an
/// operation ends (here: rolled back by the gate, and committed).
#[tokio::test(flavor = "multi_thread")]
async fn the_revert_timer_is_disarmed_only_after_the_record_is_finished() {
    let t = tree(&[1, 2, 3], 1);
    let rec = recorder(&t);
    let fake = Fake::default();
    let seen: Arc<std::sync::Mutex<Vec<(String, bool)>>> = Default::default();
    let (state, seen2) = (t.state.clone(), seen.clone());
    *fake.on_stop_transient.lock().unwrap() = Some(Box::new(move |unit: &str| {
        let id = unit
            .trim_start_matches("windlass-revert-")
            .trim_end_matches("-gate");
        let finished = Store::new(&state)
            .load(&id.parse().unwrap())
            .map(|r| r.finished())
            .unwrap_or(false);
        seen2.lock().unwrap().push((unit.to_string(), finished));
    }));
    fake.set("podman-web.service", "activating", "start");
    let p = Nixos {
        profiles: profiles(&t),
        runner: Box::new(rec.clone()),
    };
    let e = engine_with(&t, p, &fake, |rn| {
        rn.revert_argv = Some(vec!["windlassd".into(), "--revert".into()]);
    });
    let (rec2, fake2) = (rec.clone(), fake.clone());
    tokio::spawn(async move {
        while !rec2
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains("system-1-link"))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fake2.set("podman-web.service", "active", "running");
    });
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    e.switch(GenerationId(3), SwitchOptions::default()).unwrap();
    e.idle().await;
    // idle() returns once the record is finished; the disarm follows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let results: Vec<Option<Outcome>> = e.runner.store.all().iter().map(|r| r.result).collect();
    assert_eq!(
        results,
        [Some(Outcome::RolledBack), Some(Outcome::Committed)]
    );
    let seen = seen.lock().unwrap().clone();
    // Each operation's disarm stops both of its units, the armed one and
    // the one re-armed for the gate (the first is also stopped earlier,
    // by the agent itself when it re-arms): those last stops must come
    // after the record is finished.
    for r in e.runner.store.all() {
        for unit in [
            format!("windlass-revert-{}", r.id),
            format!("windlass-revert-{}-gate", r.id),
        ] {
            let last = seen
                .iter()
                .rev()
                .find(|(u, _)| *u == unit)
                .unwrap_or_else(|| panic!("{unit} never stopped: {seen:?}"));
            assert!(
                last.1,
                "{unit} was stopped before its record was finished: {seen:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guix_rolls_back_to_the_recorded_generation_even_after_a_new_one_appeared() {
    let t = tree(&[2, 3, 4], 3);
    let rec = recorder(&t);
    let fake = Fake::default();
    // Never healthy: the gate runs its full (1 s) deadline.
    fake.set("podman-web.service", "activating", "start");
    let e = guix(&t, &rec, &fake);
    assert_eq!(e.runner.platform.name(), "guix");
    e.switch(GenerationId(4), SwitchOptions::default()).unwrap();
    // While the gate waits, someone creates generation 5 and selects it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rec2, fake2) = (rec.clone(), fake.clone());
    tokio::spawn(async move {
        loop {
            if rec2
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.ends_with("switch-generation 3"))
            {
                fake2.set("podman-web.service", "active", "running");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    add_generation(&t.profiles, 5);
    windlass_agent::durable::swap_symlink(&t.profiles.join("system"), Path::new("system-5-link"))
        .unwrap();
    e.idle().await;
    let c = calls(&rec, &t);
    assert_eq!(
        c,
        [
            "guix system switch-generation 4",
            "P/system-4-link/activate",
            "herd restart podman-web.service",
            "guix system switch-generation 3",
            "P/system-3-link/activate",
            "herd restart podman-web.service",
        ]
    );
    assert_eq!(e.runner.platform.selected(), g(3));
    assert_eq!(e.runner.platform.running(), g(3));
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack));
    assert_eq!(r.from_generation(), g(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_unit_running_the_wrong_image_is_not_converged() {
    let t = tree(&[1, 2], 1);
    let rec = recorder(&t);
    let fake = Fake::default();
    fake.set("podman-web.service", "active", "running");
    // Healthy, but still (or again) on generation 1's image.
    fake.images
        .lock()
        .unwrap()
        .insert("web".into(), "docker.io/library/web:1.0.0".into());
    let e = nixos(&t, &rec, &fake);
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack));
    assert!(
        r.error.contains("not converged: web runs docker.io/library/web:1.0.0, generation 2 intends docker.io/library/web:2.0.0"),
        "{}",
        r.error
    );
    assert_eq!(e.runner.platform.selected(), g(1), "never committed");
    // With the intended image, the same switch commits.
    fake.images
        .lock()
        .unwrap()
        .insert("web".into(), "docker.io/library/web:2.0.0".into());
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    assert_eq!(
        e.runner.store.all().pop().unwrap().result,
        Some(Outcome::Committed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_on_nixos_reports_the_release_and_changes_nothing() {
    let reg = net::registry();
    let host = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0", "1.1.0"]).await;
    let t = tree(&[1], 1);
    let store = t.profiles.parent().unwrap().join("store/gen1");
    std::fs::write(
        store.join("etc/windlass/generation.json"),
        format!(
            r#"{{"format":1,"platform":"nixos","apps":[{{"name":"web","unit":"podman-web.service","image":"{host}/fleet/web:1.0.0","release":{{"track":"semver","allow_prerelease":false,"constraint":null}}}}]}}"#
        ),
    )
    .unwrap();
    let rec = recorder(&t);
    let fake = Fake::default();
    let mut e = nixos(&t, &rec, &fake);
    Arc::get_mut(&mut e).unwrap().sweep = Arc::new(windlass_agent::ops::sweep::SweepConfig {
        insecure_registries: vec![host.clone()],
        registry_attempts: 0,
    });
    let id = e.sweep(Default::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.load(&id.id).unwrap();
    assert_eq!(r.result, Some(Outcome::Skipped), "{r:?}");
    assert_eq!(r.results().len(), 1);
    assert_eq!(r.results()[0].to.as_deref(), Some("1.1.0"));
    let reason = &r.results()[0].reason;
    assert!(
        reason.contains("rebuild") && reason.contains(&format!("{host}/fleet/web:1.1.0")),
        "{reason}"
    );
    assert!(
        calls(&rec, &t).is_empty(),
        "nothing ran: {:?}",
        calls(&rec, &t)
    );
    assert_eq!(e.runner.platform.selected(), g(1));
    assert!(
        !t.state.join("releases/web.json").exists(),
        "nothing was promoted"
    );
}

/// Commands recorded by the [`Recorder`] and also appended, as
/// `cmd:<line>` (the profiles directory written `P`), to the markers file
/// the hooks append to: one log that interleaves both.
#[derive(Clone)]
struct Logged {
    rec: Recorder,
    markers: PathBuf,
    root: String,
}

impl CommandRunner for Logged {
    fn run(&self, argv: &[String]) -> Result<(), String> {
        let line = argv.join(" ").replace(&self.root, "P");
        append(&self.markers, &format!("cmd:{line}"));
        self.rec.run(argv)
    }
}

fn append(file: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Rewrites generation `g`'s contract as two apps, api and db (api
/// requires db: the dependency order is not the name order), units
/// `podman-<app>.service`. With `markers`, each app has a hook of every
/// kind that appends `<kind>:<app>` to it; the hook `fail` (kind, app)
/// then prints a line and exits 3.
fn two_apps(profiles: &Path, g: u32, markers: Option<&Path>, fail: Option<(&str, &str)>) {
    let store = profiles.parent().unwrap().join(format!("store/gen{g}"));
    let app = |name: &str, requires: &[&str]| {
        let mut a = serde_json::json!({
            "name": name,
            "unit": format!("podman-{name}.service"),
            "image": format!("docker.io/library/{name}:{g}.0.0"),
            "health": {"container_check": true},
            "update": {"health_deadline_sec": 1},
            "requires": requires,
        });
        if let Some(markers) = markers {
            let hook = |kind: &str| {
                let extra = if fail == Some((kind, name)) {
                    "; echo migration of {name} broke; exit 3".replace("{name}", name)
                } else {
                    String::new()
                };
                serde_json::json!({
                    "argv": ["sh", "-c",
                        format!("echo {kind}:{name} >> {}{extra}", markers.display())],
                    "retries": 0,
                    "timeout_sec": 20,
                })
            };
            a["hooks"] = serde_json::json!({
                "pre_activate": hook("pre-activate"),
                "pre_commit": hook("pre-commit"),
                "post_commit": hook("post-commit"),
                "down": hook("down"),
            });
        }
        a
    };
    let doc = serde_json::json!({
        "format": 1,
        "platform": "nixos",
        "apps": [app("api", &["db"]), app("db", &[])],
    });
    std::fs::write(
        store.join("etc/windlass/generation.json"),
        serde_json::to_string(&doc).unwrap(),
    )
    .unwrap();
}

/// Generations 1 (no hooks) and 2 (hooks, `fail` failing), 1 selected
/// and running; both apps' units healthy; the commands logged into the
/// markers file.
fn hooked(fail: Option<(&str, &str)>) -> (Tree, Logged, Fake) {
    let t = tree(&[1, 2], 1);
    let markers = t.profiles.parent().unwrap().join("markers");
    two_apps(&t.profiles, 1, None, None);
    two_apps(&t.profiles, 2, Some(&markers), fail);
    let fake = Fake::default();
    fake.set("podman-api.service", "active", "running");
    fake.set("podman-db.service", "active", "running");
    let logged = Logged {
        rec: recorder(&t),
        markers,
        root: t.profiles.display().to_string(),
    };
    (t, logged, fake)
}

/// The markers file's lines since the last call (it is emptied).
fn log(l: &Logged) -> Vec<String> {
    let text = std::fs::read_to_string(&l.markers).unwrap_or_default();
    std::fs::remove_file(&l.markers).ok();
    text.lines().map(str::to_string).collect()
}

fn hooked_nixos(t: &Tree, l: &Logged, fake: &Fake) -> Arc<Engine<Nixos, Fake>> {
    let p = Nixos {
        profiles: profiles(t),
        runner: Box::new(l.clone()),
    };
    engine(t, p, fake)
}

fn hooked_guix(t: &Tree, l: &Logged, fake: &Fake) -> Arc<Engine<Guix, Fake>> {
    let p = Guix {
        profiles: profiles(t),
        runner: Box::new(l.clone()),
    };
    engine(t, p, fake)
}

/// The hook phases of a committed switch come where they belong in the
/// record's story: pre-activate before activating, pre-commit after the
/// health gate and before committing, post-commit after it.
fn assert_hook_phases(r: &windlass_agent::record::Record) {
    let phases: Vec<&str> = r.history.iter().map(|(p, _)| p.as_str()).collect();
    let at = |p: &str| {
        phases
            .iter()
            .position(|x| *x == p)
            .unwrap_or_else(|| panic!("no {p} in {phases:?}"))
    };
    assert!(at("hook:pre-activate") < at("activating"), "{phases:?}");
    assert!(at("health-gate") < at("hook:pre-commit"), "{phases:?}");
    assert!(at("hook:pre-commit") < at("committing"), "{phases:?}");
    assert!(at("committing") < at("hook:post-commit"), "{phases:?}");
}

/// A switch that did not commit left its diagnostics bundle, with the
/// failing pre-commit hook's output and the down hooks' logs.
fn assert_bundle(t: &Tree, r: &windlass_agent::record::Record, failing: &str) {
    let dir = t.state.join("operations").join(format!("{}.d", r.id));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(summary["operation"], r.id.as_str());
    assert_eq!(summary["kind"], "switch");
    assert_eq!(summary["result"], "rolled-back");
    assert_eq!(summary["from_generation"], "1");
    assert_eq!(summary["to_generation"], "2");
    assert!(dir.join("record.json").is_file());
    let hook = std::fs::read_to_string(dir.join(format!("hooks/pre-commit-{failing}.log")))
        .unwrap_or_else(|e| panic!("no output of the failing hook in the bundle: {e}"));
    assert!(
        hook.contains(&format!("migration of {failing} broke")),
        "{hook}"
    );
    for app in ["api", "db"] {
        assert!(
            dir.join(format!("hooks/down-{app}.log")).is_file(),
            "down-{app}.log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nixos_runs_hooks_around_the_test_activation_and_the_boot_commit() {
    let (t, l, fake) = hooked(None);
    let e = hooked_nixos(&t, &l, &fake);
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(
        log(&l),
        [
            "pre-activate:db",
            "pre-activate:api",
            "cmd:P/system-2-link/bin/switch-to-configuration test",
            "pre-commit:db",
            "pre-commit:api",
            "cmd:nix-env -p P/system --switch-generation 2",
            "cmd:P/system-2-link/bin/switch-to-configuration boot",
            "post-commit:db",
            "post-commit:api",
        ]
    );
    assert_hook_phases(&r);
    assert_eq!(e.runner.platform.selected(), g(2));
    // A rollback runs the down hooks of the generation it leaves (2), in
    // reverse dependency order, before activating 1.
    e.rollback(None).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(
        log(&l),
        [
            "down:api",
            "down:db",
            "cmd:P/system-1-link/bin/switch-to-configuration test",
            "cmd:nix-env -p P/system --switch-generation 1",
            "cmd:P/system-1-link/bin/switch-to-configuration boot",
        ]
    );
    assert_eq!(e.runner.platform.selected(), g(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_commit_hook_on_nixos_never_touches_the_profile_and_leaves_a_bundle() {
    let (t, l, fake) = hooked(Some(("pre-commit", "api")));
    let e = hooked_nixos(&t, &l, &fake);
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack), "{r:?}");
    assert!(
        r.error
            .contains("hook pre-commit of api failed: exit status 3"),
        "{}",
        r.error
    );
    assert_eq!(
        log(&l),
        [
            "pre-activate:db",
            "pre-activate:api",
            "cmd:P/system-2-link/bin/switch-to-configuration test",
            "pre-commit:db",
            "pre-commit:api",
            "down:api",
            "down:db",
            "cmd:P/system-1-link/bin/switch-to-configuration test",
        ],
        "no nix-env, no boot: the profile was never touched"
    );
    assert_eq!(e.runner.platform.selected(), g(1));
    assert_eq!(e.runner.platform.running(), g(1));
    assert_bundle(&t, &r, "api");
}

#[tokio::test(flavor = "multi_thread")]
async fn guix_runs_hooks_around_its_activation_and_after_the_gate() {
    let (t, l, fake) = hooked(None);
    let e = hooked_guix(&t, &l, &fake);
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    // Guix moves the profile as it activates (its commit has nothing left
    // to do): pre-activate comes before switch-generation, pre-commit
    // after the restarted services passed the gate.
    assert_eq!(
        log(&l),
        [
            "pre-activate:db",
            "pre-activate:api",
            "cmd:guix system switch-generation 2",
            "cmd:P/system-2-link/activate",
            "cmd:herd restart podman-api.service",
            "cmd:herd restart podman-db.service",
            "pre-commit:db",
            "pre-commit:api",
            "post-commit:db",
            "post-commit:api",
        ]
    );
    assert_hook_phases(&r);
    assert_eq!(e.runner.platform.selected(), g(2));
    e.rollback(None).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(
        log(&l),
        [
            "down:api",
            "down:db",
            "cmd:guix system switch-generation 1",
            "cmd:P/system-1-link/activate",
            "cmd:herd restart podman-api.service",
            "cmd:herd restart podman-db.service",
        ]
    );
    assert_eq!(e.runner.platform.selected(), g(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_commit_hook_on_guix_goes_back_to_the_recorded_generation_and_leaves_a_bundle()
 {
    let (t, l, fake) = hooked(Some(("pre-commit", "api")));
    let e = hooked_guix(&t, &l, &fake);
    e.switch(GenerationId(2), SwitchOptions::default()).unwrap();
    e.idle().await;
    let r = e.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack), "{r:?}");
    assert!(
        r.error
            .contains("hook pre-commit of api failed: exit status 3"),
        "{}",
        r.error
    );
    assert_eq!(
        log(&l),
        [
            "pre-activate:db",
            "pre-activate:api",
            "cmd:guix system switch-generation 2",
            "cmd:P/system-2-link/activate",
            "cmd:herd restart podman-api.service",
            "cmd:herd restart podman-db.service",
            "pre-commit:db",
            "pre-commit:api",
            "down:api",
            "down:db",
            "cmd:guix system switch-generation 1",
            "cmd:P/system-1-link/activate",
            "cmd:herd restart podman-api.service",
            "cmd:herd restart podman-db.service",
        ]
    );
    assert_eq!(e.runner.platform.selected(), g(1));
    assert_eq!(e.runner.platform.running(), g(1));
    assert_eq!(r.from_generation(), g(1));
    assert_bundle(&t, &r, "api");
}

/// Activation's part of `/etc` for generation `g`: each file of the
/// store's `etc/windlass` and `etc/containers/systemd`, linked.
fn activate_etc(t: &Tree, g: u32) {
    let store = t
        .profiles
        .parent()
        .unwrap()
        .join(format!("store/gen{g}/etc"));
    for rel in [
        "windlass/generation.json",
        "containers/systemd/web.container",
    ] {
        let link = t.etc.join(rel);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(store.join(rel), &link).unwrap();
    }
}

async fn drift_report<P: Platform>(
    e: &Arc<Engine<P, Fake>>,
    what: &str,
    ok: impl Fn(&[windlass_agent::drift::Finding]) -> bool,
) -> Vec<windlass_agent::drift::Finding> {
    let start = std::time::Instant::now();
    loop {
        let f = e.drift.report().findings;
        if ok(&f) {
            return f;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{what}: {f:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Drift on NixOS and Guix: the files windlass's module put in `/etc`
/// (links into the store) replaced or removed are reported; on NixOS
/// also a runtime drop-in, not a file in `/etc/systemd/system` (a store
/// link there); on Guix no unit at all. Restore is refused on both.
#[tokio::test(flavor = "multi_thread")]
async fn drift_on_nixos_and_guix_covers_what_windlass_put_in_etc_and_is_report_only() {
    use windlass_agent::drift::DriftKind;
    use windlass_agent::ops::drift_task::{self, Config};
    for platform in ["nixos", "guix"] {
        let t = tree(&[1], 1);
        let store = t.profiles.parent().unwrap().join("store/gen1/etc");
        std::fs::create_dir_all(store.join("containers/systemd")).unwrap();
        std::fs::write(
            store.join("containers/systemd/web.container"),
            "[Container]\nImage=web\n",
        )
        .unwrap();
        activate_etc(&t, 1);
        let root = t.state.parent().unwrap().join("root");
        for d in ["etc/systemd/system", "run/systemd/system"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let (rec, fake) = (recorder(&t), Fake::default());
        let cfg = Config {
            root: root.clone(),
            quiet: std::time::Duration::from_millis(50),
            ..Default::default()
        };
        macro_rules! check {
            ($e:expr) => {{
                let e = $e;
                drift_task::spawn(e.clone(), cfg.clone(), None);
                let start = std::time::Instant::now();
                while e.drift.report().full_scan_at == 0 {
                    assert!(start.elapsed() < std::time::Duration::from_secs(10));
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                assert!(
                    e.drift.report().findings.is_empty(),
                    "{platform}: {:?}",
                    e.drift.report()
                );
                // The contracts' link replaced by a file of other content.
                let json = t.etc.join("windlass/generation.json");
                std::fs::remove_file(&json).unwrap();
                std::fs::write(&json, "{}").unwrap();
                drift_report(&e, "modified", |f| {
                    f.iter()
                        .any(|x| x.kind == DriftKind::Modified && x.path.as_deref() == Some(&*json))
                })
                .await;
                // web's Quadlet file gone.
                let q = t.etc.join("containers/systemd/web.container");
                std::fs::remove_file(&q).unwrap();
                let f = drift_report(&e, "removed", |f| {
                    f.iter()
                        .any(|x| x.kind == DriftKind::Removed && x.path.as_deref() == Some(&*q))
                })
                .await;
                let web = f.iter().find(|x| x.path.as_deref() == Some(&*q)).unwrap();
                assert_eq!(web.app.as_deref(), Some("web"));
                // Drop-ins: at run time (NixOS reports it), in the store's
                // /etc/systemd/system (never drift).
                for d in ["run/systemd/system", "etc/systemd/system"] {
                    let dd = root.join(d).join("podman-web.service.d");
                    std::fs::create_dir_all(&dd).unwrap();
                    std::fs::write(dd.join("x.conf"), "[Service]\n").unwrap();
                }
                let runtime = root.join("run/systemd/system/podman-web.service.d/x.conf");
                if platform == "nixos" {
                    drift_report(&e, "runtime drop-in", |f| {
                        f.iter().any(|x| {
                            x.kind == DriftKind::DropInAdded && x.path.as_deref() == Some(&*runtime)
                        })
                    })
                    .await;
                }
                // A full scan with both drop-ins in place: its report is
                // the platform's whole answer, not a race with the watcher.
                let f = e
                    .drift
                    .scan()
                    .await
                    .expect("the drift task answers a scan")
                    .findings;
                assert!(
                    !f.iter().any(|x| x.kind == DriftKind::DropInAdded
                        && x.path
                            .as_deref()
                            .is_some_and(|p| p.starts_with(root.join("etc")))),
                    "{f:?}"
                );
                let runtime_found = f.iter().any(|x| {
                    x.kind == DriftKind::DropInAdded && x.path.as_deref() == Some(&*runtime)
                });
                assert_eq!(runtime_found, platform == "nixos", "{platform}: {f:?}");
                if platform == "guix" {
                    assert!(!f.iter().any(|x| x.kind == DriftKind::DropInAdded), "{f:?}");
                    // The scan did look: the Quadlet file is still missing.
                    assert!(
                        f.iter().any(|x| x.kind == DriftKind::Removed && x.path.as_deref() == Some(&*q)),
                        "{f:?}"
                    );
                }
                // Put back by activation: clean again.
                activate_etc(&t, 1);
                for d in ["run/systemd/system", "etc/systemd/system"] {
                    std::fs::remove_dir_all(root.join(d).join("podman-web.service.d")).unwrap();
                }
                drift_report(&e, "clean", |f| f.is_empty()).await;
                let err = e.restore(Default::default()).await.unwrap_err();
                assert!(err.to_string().contains("rebuilding the system"), "{err}");
            }};
        }
        if platform == "nixos" {
            check!(nixos(&t, &rec, &fake));
        } else {
            check!(guix(&t, &rec, &fake));
        }
    }
}
