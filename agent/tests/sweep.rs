//! Sweeps against a real OCI registry on loopback (Debian's
//! docker-registry, tags pushed through its HTTP API), on the native
//! platform with stand-in units: new releases are switched to and promoted
//! only on commit, non-release tags and prereleases never move an app, a
//! constraint holds, a registry that is down fails only its apps, a red
//! release never replaces the canonical one, a second sweep does nothing,
//! a sweep during another operation is skipped (busy), a derived
//! generation runs the new image in the hooks that ran the old one; and
//! the same through the real windlassd and windlassctl on a real
//! dbus-daemon.

mod common;
mod doubles;
#[path = "../../net/tests/common/mod.rs"]
mod net;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use doubles::Fake;
use serde_json::Value;
use windlass_agent::contract::{HookKind, Manifest};
use windlass_agent::ops::Engine;
use windlass_agent::ops::sweep::{Canonical, SweepConfig, SweepOptions, derive, results_log};
use windlass_agent::ops::switch::SwitchOptions;
use windlass_agent::platform::{Platform, native::Native};
use windlass_agent::record::{Confirm, Kind, Outcome, Record};

struct Host {
    tmp: tempfile::TempDir,
    engine: Arc<Engine<Native, Fake>>,
    fake: Fake,
    state: PathBuf,
}

fn host(registry_port: u16) -> Host {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = Fake::default();
    let rn = doubles::runner(&state, Native::new(&state, &tmp.path().join("run")), &fake);
    let sweeps = SweepConfig {
        insecure_registries: vec![format!("127.0.0.1:{registry_port}")],
        registry_attempts: 1,
    };
    Host {
        tmp,
        engine: Arc::new(Engine::new(rn, Default::default(), sweeps)),
        fake,
        state,
    }
}

/// A fleet of `apps` (name, manifest text), generated (Quadlet, systemd)
/// into a fresh tree, returned.
fn fleet(h: &Host, name: &str, apps: &[(&str, String)]) -> PathBuf {
    let src = h.tmp.path().join(format!("fleet-{name}"));
    std::fs::create_dir_all(src.join("apps")).unwrap();
    std::fs::write(src.join("windlass.toml"), "[host]\npodman = \"5.4\"\n").unwrap();
    for (app, text) in apps {
        std::fs::write(src.join(format!("apps/{app}.toml")), text).unwrap();
    }
    let out = h.tmp.path().join(format!("gen-{name}"));
    common::generate(&src, &out);
    out
}

fn app(image: &str, release: &str) -> String {
    format!("[container]\nimage = \"{image}\"\n\n[release]\n{release}\n")
}

const SEMVER: &str = "track = \"semver\"";

/// Stages `tree` and switches to it; returns the switch's record.
async fn switch_to(h: &Host, tree: &Path) -> Record {
    let g = h.engine.runner.platform.stage(tree).unwrap();
    let r = h.engine.switch(g, SwitchOptions::default()).unwrap();
    h.engine.idle().await;
    h.engine.runner.store.load(&r.id).unwrap()
}

async fn sweep(h: &Host, opts: SweepOptions) -> Record {
    let r = h.engine.sweep(opts).unwrap();
    h.engine.idle().await;
    h.engine.runner.store.load(&r.id).unwrap()
}

fn results(r: &Record) -> Vec<(String, String, String)> {
    r.results()
        .iter()
        .map(|v| serde_json::to_value(v).unwrap())
        .map(|v| {
            (
                v["app"].as_str().unwrap().to_string(),
                v["result"].as_str().unwrap().to_string(),
                v["to"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// The result line of `app`.
fn of(r: &Record, app: &str) -> Value {
    let v = r
        .results()
        .iter()
        .find(|v| v.app == app)
        .unwrap_or_else(|| panic!("no result for {app}: {:?}", r.results()));
    serde_json::to_value(v).unwrap()
}

fn switches(h: &Host) -> usize {
    h.engine
        .runner
        .store
        .all()
        .iter()
        .filter(|r| r.kind() == Kind::Switch)
        .count()
}

fn running_image(h: &Host, app: &str) -> String {
    let g = h.engine.runner.platform.running().unwrap();
    let m = h.engine.runner.platform.manifest(g).unwrap();
    m.apps.iter().find(|a| a.name == app).unwrap().image.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_release_is_promoted_and_a_second_sweep_does_nothing() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0"]).await;
    net::push_tags(reg.port, "fleet/api", &["2.0.0"]).await;
    let h = host(reg.port);
    let g1 = fleet(
        &h,
        "1",
        &[
            ("web", app(&format!("{r0}/fleet/web:1.0.0"), SEMVER)),
            ("api", app(&format!("{r0}/fleet/api:2.0.0"), SEMVER)),
            // Not tracked: never looked up.
            ("db", app("localhost/db:1", "track = \"none\"")),
        ],
    );
    assert_eq!(switch_to(&h, &g1).await.result, Some(Outcome::Committed));

    // web gets a release; api only moves non-release tags.
    net::push_tags(reg.port, "fleet/web", &["1.1.0", "latest", "nightly"]).await;
    net::push_tags(reg.port, "fleet/api", &["latest", "edge", "20261202"]).await;
    let s = sweep(&h, SweepOptions::default()).await;
    assert_eq!(s.result, Some(Outcome::Committed), "{s:?}");
    // In the generation's order (by name).
    assert_eq!(
        results(&s),
        [
            ("api".into(), "skipped".into(), "-".into()),
            ("web".into(), "committed".into(), "1.1.0".into()),
        ]
    );
    assert!(
        of(&s, "api")["reason"]
            .as_str()
            .unwrap()
            .contains("no new release"),
        "{:?}",
        of(&s, "api")
    );
    assert_eq!(running_image(&h, "web"), format!("{r0}/fleet/web:1.1.0"));
    assert_eq!(running_image(&h, "api"), format!("{r0}/fleet/api:2.0.0"));
    assert_eq!(
        h.engine.runner.platform.selected(),
        h.engine.runner.platform.running(),
        "the promotion committed the generation"
    );
    let c = Canonical::load(&h.state, "web");
    assert_eq!(c.tag.as_deref(), Some("1.1.0"));
    assert_eq!(
        c.operation.as_ref().map(|o| o.as_str()),
        of(&s, "web")["operation"].as_str()
    );
    // The sweep's switch ran inside it and restarted only web.
    let sw = h
        .engine
        .runner
        .store
        .load(
            &of(&s, "web")["operation"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(sw.parent.as_ref(), Some(&s.id));
    assert_eq!(sw.changed_units, ["web.service"]);
    assert_eq!(switches(&h), 2);

    // Run twice: nothing to do, no switch.
    let s2 = sweep(&h, SweepOptions::default()).await;
    assert_eq!(s2.result, Some(Outcome::Skipped), "{s2:?}");
    assert_eq!(
        results(&s2),
        [
            ("api".into(), "skipped".into(), "-".into()),
            ("web".into(), "skipped".into(), "-".into()),
        ]
    );
    assert_eq!(switches(&h), 2);

    // One JSON line per app per run in the results log.
    let log = std::fs::read_to_string(results_log(&h.state)).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for k in [
        "sweep",
        "app",
        "from",
        "to",
        "result",
        "reason",
        "operation",
        "started_at",
        "finished_at",
    ] {
        assert!(lines[0].get(k).is_some(), "{k} missing in {}", lines[0]);
    }
    assert_eq!(lines[1]["app"], "web");
    assert_eq!(lines[1]["from"], "1.0.0");
    assert_eq!(lines[2]["sweep"], s2.id.as_str());
    // Leaving the generation a sweep made (to an empty one) stops every
    // app it runs.
    let before = h.fake.calls().len();
    let empty = fleet(&h, "empty", &[]);
    assert_eq!(switch_to(&h, &empty).await.result, Some(Outcome::Committed));
    let calls = h.fake.calls()[before..].to_vec();
    for u in ["api.service", "db.service", "web.service"] {
        assert!(calls.contains(&format!("stop {u}")), "{u}: {calls:?}");
    }
}

/// The argv of `app`'s `kind` hook in `m`.
fn hook_argv(m: &Manifest, app: &str, kind: HookKind) -> Vec<String> {
    m.app(app)
        .unwrap()
        .hooks
        .get(kind)
        .unwrap_or_else(|| panic!("{app} has no {} hook", kind.as_str()))
        .argv
        .clone()
}

/// A sweep's generation runs the new image in the app's hooks that ran
/// its image, not in a hook with an image of its own nor in other apps'
/// hooks; it stages (every file's sha256 checked on import).
#[tokio::test(flavor = "multi_thread")]
async fn a_derived_generation_runs_the_new_image_in_the_hooks_that_ran_the_old_one() {
    let h = host(0);
    let old = "127.0.0.1:5000/fleet/web:1.0.0";
    let new = "127.0.0.1:5000/fleet/web:1.1.0";
    let web = format!(
        "{}\n[hooks.pre_activate]\ncommand = [\"migrate\", \"--from\", \"{old}\"]\n\
         entrypoint = [\"/bin/sh\", \"-c\"]\n\n\
         [hooks.post_commit]\ncommand = [\"-c\", \"warm\"]\n\
         image = \"docker.io/library/busybox:1.36\"\n\n\
         [hooks.down]\ncommand = [\"migrate\", \"down\"]\n",
        app(old, SEMVER)
    );
    let db = format!(
        "{}\n[hooks.pre_commit]\ncommand = [\"check\"]\n",
        app("localhost/db:1", "track = \"none\"")
    );
    let base = fleet(&h, "hooks", &[("web", web), ("db", db)]);
    let m0 = Manifest::read(&base).unwrap();
    let out = h.tmp.path().join("derived");
    derive(&base, &out, "web", new).unwrap();
    let g = h.engine.runner.platform.stage(&out).unwrap();
    let m = h.engine.runner.platform.manifest(g).unwrap();
    assert_eq!(m.app("web").unwrap().image, new);

    // The image word, and only it, in the hooks that ran the old image.
    for kind in [HookKind::PreActivate, HookKind::Down] {
        let before = hook_argv(&m0, "web", kind);
        let after = hook_argv(&m, "web", kind);
        let i = before.iter().position(|w| w == old).unwrap();
        assert_eq!(after[i], new, "{after:?}");
        let mut want = before.clone();
        want[i] = new.to_string();
        assert_eq!(after, want, "{}", kind.as_str());
    }
    // A command word equal to the old image is not the image.
    let pre = hook_argv(&m, "web", HookKind::PreActivate);
    assert_eq!(pre[pre.len() - 3..], ["migrate", "--from", old]);
    let entrypoint = pre.iter().position(|w| w.starts_with("--entrypoint=["));
    assert!(
        entrypoint.is_some_and(|e| pre[e + 1..].contains(&new.to_string())),
        "{pre:?}"
    );
    // A hook with its own image, and the other app, are as they were.
    assert_eq!(
        hook_argv(&m, "web", HookKind::PostCommit),
        hook_argv(&m0, "web", HookKind::PostCommit)
    );
    assert!(
        hook_argv(&m, "web", HookKind::PostCommit)
            .contains(&"docker.io/library/busybox:1.36".into())
    );
    assert_eq!(m.app("db"), m0.app("db"));
    // Nothing else in the contract changed.
    let mut back = m.clone();
    let w = back.apps.iter_mut().find(|a| a.name == "web").unwrap();
    w.image = old.into();
    for hook in [&mut w.hooks.pre_activate, &mut w.hooks.down] {
        hook.as_mut().unwrap().set_image(old);
    }
    let changed: Vec<&str> = m
        .files
        .iter()
        .filter(|f| !m0.files.contains(f))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(changed, ["quadlet/web.container"]);
    back.files = m0.files.clone();
    assert_eq!(back, m0);
}

#[tokio::test(flavor = "multi_thread")]
async fn prereleases_constraints_and_a_registry_that_is_down() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    let dead = format!("127.0.0.1:{}", net::free_port());
    net::push_tags(reg.port, "p/stable", &["1.0.0", "1.1.0-rc.1"]).await;
    net::push_tags(reg.port, "p/pre", &["1.0.0", "1.1.0-rc.1"]).await;
    net::push_tags(reg.port, "p/cons", &["1.0.0", "1.0.5", "2.0.0"]).await;
    let mut h = host(reg.port);
    Arc::get_mut(&mut Arc::get_mut(&mut h.engine).unwrap().sweep)
        .unwrap()
        .insecure_registries
        .push(dead.clone());
    let g1 = fleet(
        &h,
        "1",
        &[
            ("stable", app(&format!("{r0}/p/stable:1.0.0"), SEMVER)),
            (
                "pre",
                app(
                    &format!("{r0}/p/pre:1.0.0"),
                    "track = \"semver\"\nallow_prerelease = true",
                ),
            ),
            (
                "cons",
                app(
                    &format!("{r0}/p/cons:1.0.0"),
                    "track = \"semver\"\nconstraint = \"^1.0\"",
                ),
            ),
            ("gone", app(&format!("{dead}/p/gone:1.0.0"), SEMVER)),
        ],
    );
    assert_eq!(switch_to(&h, &g1).await.result, Some(Outcome::Committed));

    // A dry run reports and changes nothing.
    let before = h.engine.runner.platform.running();
    let d = sweep(
        &h,
        SweepOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(h.engine.runner.platform.running(), before);
    assert_eq!(switches(&h), 1);
    assert!(
        of(&d, "pre")["reason"]
            .as_str()
            .unwrap()
            .contains("would upgrade to 1.1.0-rc.1"),
        "{:?}",
        of(&d, "pre")
    );

    let s = sweep(&h, SweepOptions::default()).await;
    assert_eq!(
        results(&s),
        [
            ("cons".into(), "committed".into(), "1.0.5".into()),
            ("gone".into(), "failed".into(), "-".into()),
            ("pre".into(), "committed".into(), "1.1.0-rc.1".into()),
            ("stable".into(), "skipped".into(), "-".into()),
        ]
    );
    let gone = of(&s, "gone");
    let why = gone["reason"].as_str().unwrap();
    assert!(why.contains("unreachable") && why.contains(&dead), "{why}");
    // One app failing makes the sweep failed, but the others moved.
    assert_eq!(s.result, Some(Outcome::Failed));
    assert_eq!(running_image(&h, "pre"), format!("{r0}/p/pre:1.1.0-rc.1"));
    assert_eq!(running_image(&h, "cons"), format!("{r0}/p/cons:1.0.5"));
    assert_eq!(running_image(&h, "gone"), format!("{dead}/p/gone:1.0.0"));

    // --app sweeps one app; an unknown app is refused.
    let one = sweep(
        &h,
        SweepOptions {
            app: Some("stable".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(results(&one).len(), 1);
    assert!(
        h.engine
            .sweep(SweepOptions {
                app: Some("nope".into()),
                ..Default::default()
            })
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_red_release_never_replaces_the_canonical_one() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0"]).await;
    let h = host(reg.port);
    let old = format!("{r0}/fleet/web:1.0.0");
    let g1 = fleet(&h, "1", &[("web", app(&old, SEMVER))]);
    assert_eq!(switch_to(&h, &g1).await.result, Some(Outcome::Committed));
    let gen1 = h.engine.runner.platform.running().unwrap();

    // 1.1.0 is red: its container never runs the new image.
    net::push_tags(reg.port, "fleet/web", &["1.1.0"]).await;
    h.fake
        .images
        .lock()
        .unwrap()
        .insert("web".into(), old.clone());
    let s = sweep(&h, SweepOptions::default()).await;
    assert_eq!(s.result, Some(Outcome::RolledBack), "{s:?}");
    assert_eq!(
        results(&s),
        [("web".into(), "rolled-back".into(), "1.1.0".into())]
    );
    assert!(
        of(&s, "web")["reason"]
            .as_str()
            .unwrap()
            .contains("not converged"),
        "{:?}",
        of(&s, "web")
    );
    assert_eq!(h.engine.runner.platform.running().unwrap(), gen1);
    assert_eq!(h.engine.runner.platform.selected().unwrap(), gen1);
    let c = Canonical::load(&h.state, "web");
    assert_eq!(c.tag, None, "nothing was promoted");
    assert_eq!(c.failed.len(), 1);
    assert_eq!(c.failed[0].tag, "1.1.0");

    // The red release is not tried again.
    let n = switches(&h);
    let s2 = sweep(&h, SweepOptions::default()).await;
    assert_eq!(s2.result, Some(Outcome::Skipped), "{s2:?}");
    assert_eq!(switches(&h), n);

    // A newer, green release is.
    h.fake.images.lock().unwrap().clear();
    net::push_tags(reg.port, "fleet/web", &["1.2.0"]).await;
    let s3 = sweep(&h, SweepOptions::default()).await;
    assert_eq!(
        results(&s3),
        [("web".into(), "committed".into(), "1.2.0".into())]
    );
    assert_eq!(
        Canonical::load(&h.state, "web").tag.as_deref(),
        Some("1.2.0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_green_switch_on_a_non_release_tag_never_promotes() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0", "1.1.0", "nightly"]).await;
    let h = host(reg.port);
    let g1 = fleet(
        &h,
        "1",
        &[("web", app(&format!("{r0}/fleet/web:1.0.0"), SEMVER))],
    );
    switch_to(&h, &g1).await;
    let s = sweep(&h, SweepOptions::default()).await;
    assert_eq!(
        results(&s),
        [("web".into(), "committed".into(), "1.1.0".into())]
    );

    // An operator switches to a nightly build by hand: green, committed,
    // and not a release.
    let g2 = fleet(
        &h,
        "2",
        &[("web", app(&format!("{r0}/fleet/web:nightly"), SEMVER))],
    );
    assert_eq!(switch_to(&h, &g2).await.result, Some(Outcome::Committed));
    assert_eq!(
        Canonical::load(&h.state, "web").tag.as_deref(),
        Some("1.1.0")
    );
    // The canonical release stays what the sweep promoted: nothing newer.
    let n = switches(&h);
    let s2 = sweep(&h, SweepOptions::default()).await;
    assert_eq!(s2.result, Some(Outcome::Skipped));
    assert_eq!(switches(&h), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_during_another_operation_is_skipped_busy() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0", "2.0.0"]).await;
    let h = host(reg.port);
    let g1 = fleet(
        &h,
        "1",
        &[("web", app(&format!("{r0}/fleet/web:1.0.0"), SEMVER))],
    );
    let g = h.engine.runner.platform.stage(&g1).unwrap();
    // A switch waiting for its confirmation holds the operation slot.
    let sw = h
        .engine
        .switch(
            g,
            SwitchOptions {
                confirm: Confirm::Manual,
                deadline_sec: Some(60),
                take_over: false,
                request: None,
            },
        )
        .unwrap();
    let start = std::time::Instant::now();
    while h.engine.runner.store.load(&sw.id).unwrap().phase_str() != "waiting-confirm" {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = h.engine.sweep(SweepOptions::default()).unwrap();
    assert_eq!(s.result, Some(Outcome::Skipped));
    assert!(
        s.error.contains("busy") && s.error.contains(sw.id.as_str()),
        "{}",
        s.error
    );
    assert_eq!(results(&s), [("web".into(), "skipped".into(), "-".into())]);
    assert_eq!(h.engine.active().as_ref(), Some(&sw.id));
    h.engine.confirm(&sw.id).unwrap();
    h.engine.idle().await;
    assert_eq!(
        h.engine.runner.store.load(&sw.id).unwrap().result,
        Some(Outcome::Committed)
    );
    assert_eq!(switches(&h), 1, "the busy sweep switched nothing");
}

/// The same path through the real agent and CLI on a real bus.
#[test]
fn windlassctl_sweep_over_the_bus() {
    let bus = common::bus();
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(net::push_tags(reg.port, "fleet/web", &["1.0.0"]));
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let a = common::agent_with(
        &bus,
        &state,
        &run,
        "nogroup-x",
        &[],
        &["--insecure-registry", &r0],
    );
    let g1 = tmp.path().join("g1");
    common::generation(&common::basic_fleet(), &g1, |t| {
        t.replace(
            "image = \"localhost/windlass-test/busybox:1.0\"",
            &format!("image = \"{r0}/fleet/web:1.0.0\""),
        ) + "\n[release]\ntrack = \"semver\"\n"
    });
    let out = a.ctl(&["stage", g1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = a.ctl(&["switch", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));

    // Unprivileged callers are refused and nothing runs.
    let out = a.ctl_as_nobody(&["sweep"]);
    assert_eq!(out.status.code(), Some(4), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("AccessDenied"));

    rt.block_on(net::push_tags(reg.port, "fleet/web", &["1.1.0", "latest"]));
    let out = a.ctl(&["--json", "sweep"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let lines: Vec<Value> = common::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", common::stdout(&out));
    assert_eq!(lines[0]["app"], "web");
    assert_eq!(lines[0]["result"], "committed");
    assert_eq!(lines[0]["from"], "1.0.0");
    assert_eq!(lines[0]["to"], "1.1.0");
    assert_eq!(
        a.property(
            "/io/windlass/Agent1",
            "io.windlass.Agent1",
            "RunningGeneration"
        ),
        "s \"2\""
    );

    let status: Value =
        serde_json::from_str(&common::stdout(&a.ctl(&["--json", "status"]))).unwrap();
    let web = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "web")
        .unwrap();
    assert_eq!(web["canonical_release"], "1.1.0", "{status}");
    // The policy a fleet sweep without a release decides with.
    assert_eq!(web["release"]["track"], "semver", "{status}");
    assert_eq!(web["release"]["allow_prerelease"], false, "{status}");
    assert_eq!(web["release"]["constraint"], Value::Null, "{status}");

    // Again: a no-op, said in words.
    let out = a.ctl(&["sweep"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("web: 1.1.0: skipped (no new release") && text.contains("skipped\n"),
        "{text}"
    );
    assert_eq!(
        a.property(
            "/io/windlass/Agent1",
            "io.windlass.Agent1",
            "RunningGeneration"
        ),
        "s \"2\""
    );
}

/// A fleet sweep: the release is named (the rollout decided it once for
/// every host), not the newest; its switch waits for a Confirm of the
/// sweep; a release that is not newer than the canonical one, or not in
/// the registry, moves nothing and says why; `release` needs `app`.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_sweep_moves_to_the_named_release_and_waits_for_a_confirm_of_the_sweep() {
    let reg = net::registry();
    let r0 = format!("127.0.0.1:{}", reg.port);
    net::push_tags(reg.port, "fleet/web", &["1.0.0", "1.1.0", "1.2.0"]).await;
    let h = host(reg.port);
    let g1 = fleet(
        &h,
        "1",
        &[("web", app(&format!("{r0}/fleet/web:1.0.0"), SEMVER))],
    );
    assert_eq!(switch_to(&h, &g1).await.result, Some(Outcome::Committed));

    let named = |release: &str, confirm| SweepOptions {
        app: Some("web".into()),
        release: Some(release.into()),
        confirm,
        ..Default::default()
    };
    let e = h
        .engine
        .sweep(SweepOptions {
            release: Some("1.1.0".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("release needs app"), "{e}");

    // 1.1.0, not the newest 1.2.0, and only once confirmed.
    let s = h.engine.sweep(named("1.1.0", Confirm::Manual)).unwrap();
    let start = std::time::Instant::now();
    let inner =
        loop {
            let waiting =
                h.engine.runner.store.all().into_iter().find(|r| {
                    r.parent.as_ref() == Some(&s.id) && r.phase_str() == "waiting-confirm"
                });
            if let Some(w) = waiting {
                break w;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no switch waits");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
    assert_eq!(inner.confirm, Confirm::Manual);
    assert_eq!(running_image(&h, "web"), format!("{r0}/fleet/web:1.1.0"));
    assert_eq!(
        Canonical::load(&h.state, "web").tag,
        None,
        "not promoted before the confirm"
    );
    h.engine.confirm(&s.id).unwrap();
    h.engine.idle().await;
    let s = h.engine.runner.store.load(&s.id).unwrap();
    assert_eq!(s.result, Some(Outcome::Committed), "{s:?}");
    assert_eq!(
        results(&s),
        [("web".into(), "committed".into(), "1.1.0".into())]
    );
    assert_eq!(
        h.engine.runner.store.load(&inner.id).unwrap().result,
        Some(Outcome::Committed)
    );
    assert_eq!(
        Canonical::load(&h.state, "web").tag.as_deref(),
        Some("1.1.0")
    );
    // A finished sweep has nothing to confirm.
    assert!(h.engine.confirm(&s.id).is_err());

    // Not newer than canonical, and not in the registry: nothing moves.
    for (release, why) in [("1.0.0", "no new release"), ("9.9.9", "not listed")] {
        let s = sweep(&h, named(release, Confirm::Auto)).await;
        assert_eq!(s.result, Some(Outcome::Skipped), "{release}: {s:?}");
        let reason = of(&s, "web")["reason"].as_str().unwrap().to_string();
        assert!(reason.contains(why), "{release}: {reason}");
    }
    assert_eq!(running_image(&h, "web"), format!("{r0}/fleet/web:1.1.0"));
    assert_eq!(switches(&h), 2);
}

/// windlassd sweeps a registry that asks for a user name and password with
/// the credentials of the auth file Podman would read (`REGISTRY_AUTH_FILE`
/// in its environment), read again at every sweep: without a usable entry
/// the app fails with a reason naming the file and never the password;
/// once `podman login` (here: the file) has the right one, the app moves.
#[test]
fn windlassd_sweeps_a_private_registry_with_podmans_credentials() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // bcrypt (cost 4) of "s3cret pass:wörd", docker-registry's htpasswd.
    let reg = net::registry_htpasswd(
        "fleet:$2b$04$91xXcbjA/iUCLZ2WQVlB/OTAXE3f95pk4R8gysbFJH3YIoNWSHTn6\n",
        None,
    );
    let password = "s3cret pass:wörd";
    let r0 = format!("127.0.0.1:{}", reg.port);
    let basic = format!("Basic {}", b64(&format!("fleet:{password}")));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let push = |tags: &[&str]| {
        rt.block_on(net::push_tags_to(
            &reqwest::Client::new(),
            &format!("http://{r0}"),
            Some(&basic),
            "private/web",
            tags,
        ))
    };
    push(&["1.0.0"]);
    let tmp = tempfile::tempdir().unwrap();
    let (state, run) = (tmp.path().join("state"), tmp.path().join("run"));
    let auth = tmp.path().join("auth.json");
    let write_auth = |up: &str| {
        std::fs::write(
            &auth,
            format!(
                r#"{{"auths": {{"{r0}/private": {{"auth": "{}"}}}}}}"#,
                b64(up)
            ),
        )
        .unwrap()
    };
    write_auth("fleet:not-the-password");
    let bus = common::bus();
    let a = common::agent_with(
        &bus,
        &state,
        &run,
        "nogroup-x",
        &[("REGISTRY_AUTH_FILE", auth.to_str().unwrap())],
        &["--insecure-registry", &r0],
    );
    let g1 = tmp.path().join("g1");
    common::generation(&common::basic_fleet(), &g1, |t| {
        t.replace(
            "image = \"localhost/windlass-test/busybox:1.0\"",
            &format!("image = \"{r0}/private/web:1.0.0\""),
        ) + "\n[release]\ntrack = \"semver\"\n"
    });
    let out = a.ctl(&["stage", g1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(a.ctl(&["switch", "1"]).status.code(), Some(0));
    push(&["1.1.0"]);

    // A wrong password: the app fails, the reason names the file.
    let out = a.ctl(&["--json", "sweep"]);
    let text = common::stdout(&out);
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["result"], "failed", "{text}");
    let why = line["reason"].as_str().unwrap();
    assert!(
        why.contains("401") && why.contains(auth.to_str().unwrap()),
        "{why}"
    );
    assert!(!why.contains(password) && !why.contains("not-the-password"));
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(!log.contains(password) && !log.contains("not-the-password"));

    // The right one, written between sweeps: the next sweep moves web.
    write_auth(&format!("fleet:{password}"));
    let out = a.ctl(&["--json", "sweep"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["result"].as_str(), line["to"].as_str()),
        (Some("committed"), Some("1.1.0")),
        "{text}"
    );
}
