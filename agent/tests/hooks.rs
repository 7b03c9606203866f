//! Lifecycle hooks in process, on the native platform with the recording
//! systemd (`doubles::Fake`, which runs a hook's command line as a child
//! process): the order of up hooks across three dependent apps, `down`
//! hooks of the generation being left in reverse order when a
//! `pre_commit` hook fails or a rollback leaves it, retries and exit 75.
//! Each hook appends `<kind>:<app>` to a markers file.

mod common;
mod doubles;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use doubles::Fake;
use windlass_agent::contract::GenerationId;
use windlass_agent::ops::Engine;
use windlass_agent::ops::cutover::Settings;
use windlass_agent::platform::{Platform, native::Native};
use windlass_agent::record::Outcome;

/// Three apps, in dependency order z; m requires z; a wants m (name
/// order is the reverse). `tag` is their image's tag.
fn fleet(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    std::fs::write(dir.join("windlass.toml"), "[host]\npodman = \"5.4\"\n").unwrap();
    for (name, deps) in [
        ("a", "[depends]\nwants = [\"m\"]\n"),
        ("z", ""),
        ("m", "[depends]\nrequires = [\"z\"]\n"),
    ] {
        let text = format!("[container]\nimage = \"localhost/hooks/{name}:{tag}\"\n{deps}");
        std::fs::write(dir.join(format!("apps/{name}.toml")), text).unwrap();
    }
}

/// Gives every app of the generation at `dir` hooks of every kind that
/// append `<kind>:<app>` to `markers`; `script(kind, app)` may add to the
/// shell command (an exit status; `MARKERS` stands for the file).
fn with_hooks(dir: &Path, markers: &Path, script: impl Fn(&str, &str) -> String) {
    let path = dir.join("windlass-generation.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for app in m["apps"].as_array_mut().unwrap() {
        let name = app["name"].as_str().unwrap().to_string();
        let hook = |kind: &str, key: &str| {
            let extra = script(kind, &name).replace("MARKERS", &markers.display().to_string());
            (
                key.to_string(),
                serde_json::json!({
                    "argv": ["sh", "-c",
                        format!("echo {kind}:{name} >> {}; {extra}", markers.display())],
                    "retries": if extra.contains("retry") { 1 } else { 0 },
                    "timeout_sec": 20,
                }),
            )
        };
        // `NONE` leaves a hook out.
        let hooks: serde_json::Map<String, serde_json::Value> = [
            hook("pre-activate", "pre_activate"),
            hook("pre-commit", "pre_commit"),
            hook("post-commit", "post_commit"),
            hook("down", "down"),
        ]
        .into_iter()
        .filter(|(_, v)| !v["argv"][2].as_str().unwrap().ends_with("NONE"))
        .collect();
        app["hooks"] = serde_json::Value::Object(hooks);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

struct Host {
    _tmp: tempfile::TempDir,
    engine: Arc<Engine<Native, Fake>>,
    markers: PathBuf,
}

impl Host {
    fn markers(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.markers).unwrap_or_default();
        let lines = text.lines().map(str::to_string).collect();
        std::fs::remove_file(&self.markers).ok();
        lines
    }
    fn running(&self) -> Option<GenerationId> {
        self.engine.runner.platform.running()
    }
}

/// Generation 1 (tag 1) committed, generation 2 (tag 2) staged; both
/// with hooks, those of 2 shaped by `script`. The markers of the first
/// switch are cleared.
async fn host(script: impl Fn(&str, &str) -> String) -> Host {
    host_with(script, Fake::default(), false).await
}

/// [`host`] on `fake`, with an external revert armed when `revert`.
async fn host_with(script: impl Fn(&str, &str) -> String, fake: Fake, revert: bool) -> Host {
    host_set(script, fake, |rn| {
        if revert {
            rn.revert_argv = Some(vec!["/bin/true".into()]);
        }
    })
    .await
}

/// [`host`] on `fake`, its runner set up by `setup`. The markers file is
/// in a directory every user may write to (hooks may run as another).
async fn host_set(
    script: impl Fn(&str, &str) -> String,
    fake: Fake,
    setup: impl FnOnce(&mut windlass_agent::ops::runner::Runner<Native, Fake>),
) -> Host {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let markers = shared.join("markers");
    let native = Native::new(&state, &tmp.path().join("run"));
    let mut rn = doubles::runner(&state, native, &fake);
    setup(&mut rn);
    let targets = tmp.path().join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    let engine = Arc::new(Engine::new(
        rn,
        Settings::new(&state, &targets),
        Default::default(),
    ));
    for n in 1..=2u64 {
        let src = tmp.path().join(format!("src{n}"));
        let out = tmp.path().join(format!("g{n}"));
        fleet(&src, &n.to_string());
        common::generate(&src, &out);
        if n == 1 {
            with_hooks(&out, &markers, |_, _| String::new());
        } else {
            with_hooks(&out, &markers, &script);
        }
        assert_eq!(engine.runner.platform.stage(&out).unwrap(), GenerationId(n));
    }
    engine.switch(GenerationId(1), Default::default()).unwrap();
    engine.idle().await;
    let h = Host {
        _tmp: tmp,
        engine,
        markers,
    };
    let last = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(last.result, Some(Outcome::Committed), "{last:?}");
    h.markers();
    h
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_hooks_run_in_dependency_order_around_activation_and_commit() {
    let h = host(|_, _| String::new()).await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(
        h.markers(),
        strs(&[
            "pre-activate:z",
            "pre-activate:m",
            "pre-activate:a",
            "pre-commit:z",
            "pre-commit:m",
            "pre-commit:a",
            "post-commit:z",
            "post-commit:m",
            "post-commit:a",
        ])
    );
    // The hook phases are in the record's story, between the others.
    let phases: Vec<&str> = r.history.iter().map(|(p, _)| p.as_str()).collect();
    let at = |p: &str| phases.iter().position(|x| *x == p).unwrap();
    assert!(at("hook:pre-activate") < at("activating"), "{phases:?}");
    assert!(at("health-gate") < at("hook:pre-commit"), "{phases:?}");
    assert!(at("committing") < at("hook:post-commit"), "{phases:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_commit_rolls_back_running_the_leaving_generations_down_hooks_in_reverse() {
    let h = host(|kind, app| {
        if kind == "pre-commit" && app == "a" {
            "echo migration broke; exit 3".into()
        } else {
            String::new()
        }
    })
    .await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack), "{r:?}");
    assert!(
        r.error
            .contains("hook pre-commit of a failed: exit status 3"),
        "{}",
        r.error
    );
    assert!(
        r.journal.iter().any(|l| l == "migration broke"),
        "{:?}",
        r.journal
    );
    assert_eq!(h.running(), Some(GenerationId(1)));
    assert_eq!(
        h.markers(),
        strs(&[
            "pre-activate:z",
            "pre-activate:m",
            "pre-activate:a",
            "pre-commit:z",
            "pre-commit:m",
            "pre-commit:a",
            "down:a",
            "down:m",
            "down:z",
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_activate_changes_nothing_and_runs_down_only_for_the_apps_that_went_up() {
    let h = host(|kind, app| {
        if kind == "pre-activate" && app == "m" {
            "exit 1".into()
        } else {
            String::new()
        }
    })
    .await;
    let calls_before = h.engine.runner.systemd.calls().len();
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack), "{r:?}");
    assert!(
        r.error.contains("nothing had been activated"),
        "{}",
        r.error
    );
    // z's up hook ran, and m's began: their down hooks run; a's never.
    assert_eq!(
        h.markers(),
        strs(&["pre-activate:z", "pre-activate:m", "down:m", "down:z"])
    );
    assert_eq!(h.running(), Some(GenerationId(1)));
    let calls = h.engine.runner.systemd.calls();
    assert!(
        !calls[calls_before..]
            .iter()
            .any(|c| c.starts_with("start ") || c.starts_with("restart ") || c == "reload"),
        "no unit was touched: {:?}",
        &calls[calls_before..]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_75_runs_a_hook_again_and_retries_count_other_failures() {
    // z's pre-commit fails once, then succeeds (retries = 1); m's asks to
    // run again twice (exit 75), then succeeds.
    let h = host(|kind, app| match (kind, app) {
        ("pre-commit", "z") => {
            "n=$(grep -c pre-commit:z MARKERS); [ $n -ge 2 ] || exit 4 # retry".into()
        }
        ("pre-commit", "m") => "n=$(grep -c pre-commit:m MARKERS); [ $n -ge 3 ] || exit 75".into(),
        _ => String::new(),
    })
    .await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let m = h.markers();
    let count = |k: &str| m.iter().filter(|l| *l == k).count();
    assert_eq!(count("pre-commit:z"), 2, "{m:?}");
    assert_eq!(count("pre-commit:m"), 3, "{m:?}");
    assert_eq!(count("pre-commit:a"), 1, "{m:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_runs_the_down_hooks_of_the_generation_it_leaves() {
    let h = host(|_, _| String::new()).await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    h.markers();
    h.engine.rollback(None).unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    assert_eq!(h.running(), Some(GenerationId(1)));
    assert_eq!(h.markers(), strs(&["down:a", "down:m", "down:z"]));
}

fn bundle_dir(h: &Host, r: &windlass_agent::record::Record) -> PathBuf {
    h.engine
        .runner
        .store
        .state_dir()
        .join("operations")
        .join(format!("{}.d", r.id))
}

/// A switch that did not commit leaves a diagnostics bundle: its summary,
/// the record, each changed unit's state and journal, and the output of
/// every hook that ran (the failing one's last line among it); a
/// committed one leaves none. Bundles are not taken for records at the
/// next start.
#[tokio::test(flavor = "multi_thread")]
async fn a_switch_that_did_not_commit_leaves_a_bundle_with_its_hooks_output() {
    let h = host(|kind, app| {
        if kind == "pre-commit" && app == "a" {
            "echo migration broke at https://user:pw@db.example/x?token=s3cret; exit 3".into()
        } else {
            String::new()
        }
    })
    .await;
    let first = h.engine.runner.store.all().pop().unwrap();
    assert!(
        !bundle_dir(&h, &first).exists(),
        "a committed switch leaves no bundle"
    );
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::RolledBack));
    let dir = bundle_dir(&h, &r);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(summary["format"], 1);
    assert_eq!(summary["operation"], r.id.as_str());
    assert_eq!(summary["kind"], "switch");
    assert_eq!(summary["result"], "rolled-back");
    assert_eq!(summary["from_generation"], "1");
    assert_eq!(summary["to_generation"], "2");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("hook pre-commit of a failed"),
        "{summary}"
    );
    let changed = summary["changed_units"].as_array().unwrap();
    assert!(changed.iter().any(|u| u == "a.service"), "{summary}");
    assert_eq!(summary["units"]["a.service"]["ActiveState"], "active");
    for f in summary["files"].as_array().unwrap() {
        assert!(
            dir.join(f.as_str().unwrap()).is_file(),
            "{f} is listed but missing"
        );
    }
    assert!(dir.join("journal/a.service.log").is_file());
    assert!(dir.join("record.json").is_file());
    let hook = std::fs::read_to_string(dir.join("hooks/pre-commit-a.log")).unwrap();
    assert!(hook.contains("migration broke"), "{hook}");
    // Credentials in a URL are masked in every file of the bundle.
    for f in summary["files"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.join(f.as_str().unwrap())).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("user:pw"),
            "{f}: {text}"
        );
    }
    assert!(std::fs::read_to_string(dir.join("hooks/down-a.log")).is_ok());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the bundle is root's alone: {mode:o}");
    }
    // The hooks' scratch output is gone; the bundle is not a record.
    let ops = dir.parent().unwrap();
    assert!(!ops.join(format!(".{}.hooks", r.id)).exists());
    let scan = h.engine.runner.store.scan();
    assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
}

/// Retention keeps the newest bundles within the count and the size.
#[test]
fn retention_keeps_the_newest_bundles_within_count_and_size() {
    use windlass_agent::bundle::{Retention, retain};
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path();
    for n in 0..5u32 {
        let d = ops.join(format!("{:012}x000.d", 1000 + n));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("record.json"), vec![b'x'; 1000]).unwrap();
    }
    // Not bundles: left alone.
    std::fs::create_dir_all(ops.join("damaged")).unwrap();
    std::fs::write(ops.join("000000001000x000.json"), "{}").unwrap();
    let left = |ops: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(ops)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let removed = retain(
        ops,
        &Retention {
            always: false,
            keep: 3,
            max_bytes: 1 << 20,
        },
    );
    assert_eq!(removed.len(), 2);
    assert_eq!(
        left(ops),
        [
            "000000001000x000.json",
            "000000001002x000.d",
            "000000001003x000.d",
            "000000001004x000.d",
            "damaged"
        ]
    );
    retain(
        ops,
        &Retention {
            always: false,
            keep: 20,
            max_bytes: 2500,
        },
    );
    assert_eq!(
        left(ops),
        [
            "000000001000x000.json",
            "000000001003x000.d",
            "000000001004x000.d",
            "damaged"
        ]
    );
}

/// A switch whose gate fails before any up hook ran (the apps have only
/// `pre_commit` up hooks): nothing went up, so no `down` hook runs.
#[tokio::test(flavor = "multi_thread")]
async fn down_hooks_run_only_for_apps_whose_up_hooks_ran() {
    let h = host(|kind, _| {
        if kind == "pre-activate" {
            "NONE".into()
        } else {
            String::new()
        }
    })
    .await;
    let fake = &h.engine.runner.systemd;
    fake.set("a.service", "failed", "failed");
    fake.failing_jobs.lock().unwrap().push("a.service".into());
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    // a fails both ways (the stand-in's unit stays failed): the way back
    // ends failed too; what counts here is which hooks ran.
    assert!(r.error.starts_with("a.service failed"), "{r:?}");
    assert_ne!(r.result, Some(Outcome::Committed));
    assert_eq!(h.markers(), Vec::<String>::new());
}

/// Hooks may run long (a migration): before each kind of hook runs, the
/// external revert timer is armed again to cover every hook still to run
/// (each its timeout) and, for pre-activate hooks, the gate after them;
/// the new timer is armed before the old one is stopped, alternating
/// between its two names.
#[tokio::test(flavor = "multi_thread")]
async fn the_revert_timer_covers_the_hooks_still_to_run() {
    let fake = Fake::default();
    let h = host_with(|_, _| String::new(), fake.clone(), true).await;
    fake.calls.lock().unwrap().clear();
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let id = r.id.as_str();
    let timers: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains(&format!("windlass-revert-{id}")))
        .map(|c| {
            // "transient NAME [argv] Some(N)" → "arm NAME N"
            let name = c.split_whitespace().nth(1).unwrap().to_string();
            match c.strip_prefix("transient ") {
                Some(_) => {
                    let delay = c.rsplit("Some(").next().unwrap().trim_end_matches(')');
                    format!(
                        "arm {} {delay}",
                        name.trim_start_matches(&format!("windlass-revert-{id}"))
                    )
                }
                None => format!(
                    "stop {}",
                    name.trim_start_matches(&format!("windlass-revert-{id}"))
                ),
            }
        })
        .collect();
    // Three apps, a 20 s timeout each (+10 s each for starting them):
    // 90 s of hooks per kind.
    let d = r.deadline_sec;
    let want = vec![
        format!("arm  {}", d + 60),
        // pre-activate: the hooks, then the activation and the gate.
        format!("arm -gate {}", 90 + d + 60),
        "stop ".to_string(),
        // The gate.
        format!("arm  {}", d + 60),
        "stop -gate".to_string(),
        // pre-commit, then post-commit hooks.
        format!("arm -gate {}", 90 + 60),
        "stop ".to_string(),
        format!("arm  {}", 90 + 60),
        "stop -gate".to_string(),
        // Disarmed at the end.
        "stop ".to_string(),
        "stop -gate".to_string(),
    ];
    assert_eq!(timers, want);
}

/// Cancel while a hook runs does not cut it: the hook runs to its end,
/// then the switch goes back (nothing activated after a pre-activate
/// hook; the down hooks of the apps that went up run).
#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_a_hook_waits_for_it_then_goes_back() {
    let h = host(|kind, app| match (kind, app) {
        ("pre-activate", "z") => "sleep 2; echo pre-activate-done:z >> MARKERS".into(),
        _ => String::new(),
    })
    .await;
    let r = h
        .engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    // Once z's hook runs.
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&h.markers)
        .unwrap_or_default()
        .contains("pre-activate:z")
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.engine.cancel(&r.id).unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.load(&r.id).unwrap();
    assert_eq!(r.result, Some(Outcome::Canceled), "{r:?}");
    assert_eq!(h.running(), Some(GenerationId(1)));
    let m = h.markers();
    assert!(
        m.contains(&"pre-activate-done:z".to_string()),
        "the hook was cut: {m:?}"
    );
    // z's hook finished; m's and a's never ran; only z goes down.
    assert_eq!(
        m,
        strs(&["pre-activate:z", "pre-activate-done:z", "down:z"]),
        "{m:?}"
    );
    assert!(
        !r.history.iter().any(|(p, _)| p == "activating"),
        "nothing was activated: {:?}",
        r.history
    );
}

/// With a hook user (Guix System: `oci-container`, whose rootless Podman
/// runs the containers), every hook runs as that user, through
/// `windlassd --run-as`, with that user's HOME.
#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_as_the_hook_user() {
    let exe = common::windlassd().to_string_lossy().to_string();
    let h = host_set(
        |kind, app| match (kind, app) {
            ("pre-commit", "z") => "echo \"as:$(id -u):$HOME\" >> MARKERS".into(),
            _ => String::new(),
        },
        Fake::default(),
        |rn| {
            rn.hook_user = Some("nobody".into());
            rn.self_exe = Some(exe);
        },
    )
    .await;
    h.engine
        .switch(GenerationId(2), Default::default())
        .unwrap();
    h.engine.idle().await;
    let r = h.engine.runner.store.all().pop().unwrap();
    assert_eq!(r.result, Some(Outcome::Committed), "{r:?}");
    let home = windlass_agent::runas::account("nobody").unwrap().home;
    let m = h.markers();
    assert!(m.contains(&format!("as:65534:{home}")), "{m:?}");
}
