//! Drift policy keys (issue 21): `update.drift` and `update.drift_ignore`
//! in an app manifest, `[host] drift` and `drift_ignore` in `windlass.toml`
//! as every app's default. The mode is the app's, else the fleet's, else
//! report; the ignore patterns are the fleet's then the app's, each once.
//! The resolved policy reaches every contract (the native
//! `windlass-generation.json`, NixOS's and Guix's
//! `/etc/windlass/generation.json`); the default writes nothing, so
//! outputs of fleets that do not use the keys keep their bytes. The
//! fixture is `tests/fleets/drift`; the refused cases are in `tests/bad`
//! (`update-drift-bad-values`, `fleet-drift-bad-values`),
//! snapshot-tested by `bad_input.rs`.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use windlass::emit::{NixosBackend, guix, nixos, quadlet};
use windlass::model::{DriftMode, Fleet, PodmanVersion, load_fleet};
use windlass_contract::{DriftPolicy, Manifest};

fn drift_fleet() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/drift")
}

fn load(dir: &Path) -> Fleet {
    common::load_valid(dir)
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

const FLEET_IGNORE: [&str; 2] = ["/etc/systemd/system/*.service.d/50-local.conf", "image:**"];

/// A fleet in a fresh directory: `windlass.toml` when given, and
/// `apps/<name>.toml` for each (name, manifest).
fn fleet_dir(windlass_toml: Option<&str>, apps: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("apps")).unwrap();
    if let Some(t) = windlass_toml {
        std::fs::write(tmp.path().join("windlass.toml"), t).unwrap();
    }
    for (name, text) in apps {
        std::fs::write(tmp.path().join(format!("apps/{name}.toml")), text).unwrap();
    }
    tmp
}

const IMAGE: &str = "[container]\nimage = \"docker.io/library/nginx:1.27\"\n";

/// The rendered errors of loading the fleet at `dir`, which must fail.
fn refused(dir: &Path) -> Vec<String> {
    let loaded = load_fleet(dir).unwrap();
    assert!(loaded.fleet.is_none(), "the fleet must be refused");
    loaded.errors().map(|d| d.render()).collect()
}

#[test]
fn the_mode_is_the_apps_else_the_fleets_and_ignore_is_their_union() {
    let fleet = load(&drift_fleet());
    let app = |n: &str| common::app_named(&fleet, n).update.clone();
    // web says nothing: the fleet's.
    assert_eq!(app("web").drift, DriftMode::Restore);
    assert_eq!(app("web").drift_ignore, strings(&FLEET_IGNORE));
    // db says report and ignores more; `image:**` repeats the fleet's
    // and is kept once, in the fleet's place.
    assert_eq!(app("db").drift, DriftMode::Report);
    let mut want = strings(&FLEET_IGNORE);
    want.extend(strings(&["masked:db.service", "db-*.timer"]));
    assert_eq!(app("db").drift_ignore, want);
    // cache only adds a pattern.
    assert_eq!(app("cache").drift, DriftMode::Restore);
    let mut want = strings(&FLEET_IGNORE);
    want.push("drop-in-added:cache.service".into());
    assert_eq!(app("cache").drift_ignore, want);
}

#[test]
fn the_native_contract_carries_the_resolved_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let m: Manifest = common::generate_contract(&drift_fleet(), &out, &["--target", "quadlet"]);
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(windlass_contract::MANIFEST)).unwrap(),
    )
    .unwrap();
    let drift = |name: &str| {
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["drift"]
            .clone()
    };
    assert_eq!(
        drift("web"),
        json!({"mode": "restore", "ignore": FLEET_IGNORE})
    );
    assert_eq!(
        drift("db"),
        json!({"mode": "report", "ignore": [FLEET_IGNORE[0], FLEET_IGNORE[1], "masked:db.service", "db-*.timer"]})
    );
    assert_eq!(
        drift("cache"),
        json!({"mode": "restore", "ignore": [FLEET_IGNORE[0], FLEET_IGNORE[1], "drop-in-added:cache.service"]})
    );
    // The contract types read the same.
    assert_eq!(m.app("web").unwrap().drift.mode, DriftMode::Restore);
}

#[test]
fn an_apps_restore_alone_is_just_the_mode() {
    let dir = fleet_dir(
        None,
        &[
            ("web", &format!("{IMAGE}[update]\ndrift = \"restore\"\n")),
            ("db", IMAGE),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    common::generate_contract(dir.path(), &out, &["--target", "quadlet"]);
    let json = std::fs::read_to_string(out.join(windlass_contract::MANIFEST)).unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps[1]["name"], "web");
    assert_eq!(apps[1]["drift"], json!({"mode": "restore"}));
    // db keeps the default: no key at all.
    assert_eq!(apps[0]["name"], "db");
    assert!(apps[0].get("drift").is_none(), "{json}");
    assert_eq!(json.matches("\"drift\"").count(), 1, "{json}");
    let compact = serde_json::to_string(&apps[1]).unwrap();
    assert!(
        compact.contains(r#""drift":{"mode":"restore"}"#),
        "{compact}"
    );
}

#[test]
fn an_app_says_report_over_the_fleets_restore() {
    let dir = fleet_dir(
        Some("[host]\ndrift = \"restore\"\n"),
        &[
            ("web", &format!("{IMAGE}[update]\ndrift = \"report\"\n")),
            ("db", IMAGE),
        ],
    );
    let fleet = load(dir.path());
    let contract = |n: &str| quadlet::app_contract(common::app_named(&fleet, n), fleet.podman);
    // Report and nothing ignored is the default: written as nothing.
    assert_eq!(contract("web").drift, DriftPolicy::default());
    assert_eq!(contract("db").drift.mode, DriftMode::Restore);
}

#[test]
fn nixos_and_guix_contracts_carry_the_same_policy() {
    let fleet = load(&drift_fleet());
    let v = PodmanVersion::new(5, 4);
    for app in &fleet.apps {
        let native = quadlet::app_contract(app, v).drift;
        assert!(!native.is_default(), "{}", app.name);
        for backend in [NixosBackend::OciContainers, NixosBackend::Quadlet] {
            assert_eq!(nixos::app_contract(app, backend, v).drift, native);
        }
        assert_eq!(guix::app_contract(app).drift, native);
    }
    // And into the files: NixOS's module sets `windlass.generation.<app>`,
    // Guix's system service holds the JSON.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    common::generate_contract(&drift_fleet(), &out, &[]);
    let web = std::fs::read_to_string(out.join("nixos/apps/web.nix")).unwrap();
    assert!(web.contains("drift = {"), "{web}");
    assert!(web.contains("mode = \"restore\";"), "{web}");
    assert!(web.contains("\"image:**\""), "{web}");
    let scm = std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap();
    assert_eq!(scm.matches(r#"\"drift\": {"#).count(), 3, "{scm}");
    assert!(scm.contains(r#"\"mode\": \"report\""#), "{scm}");
}

#[test]
fn the_default_writes_no_drift_key_in_any_output() {
    for dir in [
        common::repo_root().join("examples"),
        common::repo_root().join("generator/tests/fleets/torture"),
    ] {
        let fleet = load(&dir);
        for app in &fleet.apps {
            assert_eq!(app.update.drift, DriftMode::Report);
            assert!(app.update.drift_ignore.is_empty());
        }
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        common::generate_contract(&dir, &out, &[]);
        for (path, bytes) in common::read_tree(&out) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("drift"), "{}: {path}", dir.display());
        }
    }
}

#[test]
fn an_unknown_kind_prefix_is_refused_with_its_place_and_the_kinds() {
    let dir = fleet_dir(
        None,
        &[(
            "web",
            &format!("{IMAGE}[update]\ndrift_ignore = [\"/etc/a:b\", \"modifed:/etc/web/*\"]\n"),
        )],
    );
    let errors = refused(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.contains("`update.drift_ignore[1]`"), "{e}");
    assert!(e.contains("apps/web.toml:4:29"), "{e}");
    assert!(e.contains(r#"found "modifed""#), "{e}");
    for kind in windlass_contract::DRIFT_KINDS {
        assert!(e.contains(&format!("\"{kind}\"")), "{kind}: {e}");
    }
    // In windlass.toml too, under its own key.
    let dir = fleet_dir(
        Some("[host]\ndrift_ignore = [\"mask:web.service\"]\n"),
        &[("web", IMAGE)],
    );
    let errors = refused(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`host.drift_ignore[0]`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("windlass.toml:2:17"), "{}", errors[0]);
}

#[test]
fn words_that_are_no_kind_before_a_colon_are_globs() {
    // A path, a glob, a unit name with upper case or digits: not kinds.
    let patterns = [
        "/etc/a:b",
        "*:x",
        "web-?:x",
        "Web:x",
        "web2:x",
        "image",
        ":x",
        "removed:**",
    ];
    let list: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
    let dir = fleet_dir(
        None,
        &[(
            "web",
            &format!("{IMAGE}[update]\ndrift_ignore = [{}]\n", list.join(", ")),
        )],
    );
    let fleet = load(dir.path());
    assert_eq!(fleet.apps[0].update.drift_ignore, strings(&patterns));
}

#[test]
fn an_empty_pattern_or_glob_is_refused() {
    let dir = fleet_dir(
        None,
        &[(
            "web",
            &format!("{IMAGE}[update]\ndrift_ignore = [\"\", \"masked:\"]\n"),
        )],
    );
    let errors = refused(dir.path());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("`update.drift_ignore[0]`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("found an empty string"), "{}", errors[0]);
    assert!(errors[0].contains("apps/web.toml:4:17"), "{}", errors[0]);
    assert!(
        errors[1].contains("`update.drift_ignore[1]`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[1].contains("expected a glob after `masked:`"),
        "{}",
        errors[1]
    );
    assert!(errors[1].contains("apps/web.toml:4:21"), "{}", errors[1]);
}

#[test]
fn the_schema_describes_the_drift_keys() {
    let o = common::windlass_cli(&["schema"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for t in [
        &v["properties"]["update"],
        &v["$defs"]["fleet"]["properties"]["host"],
    ] {
        assert_eq!(t["additionalProperties"], false);
        assert_eq!(
            t["properties"]["drift"]["enum"],
            json!(["report", "restore"])
        );
        assert_eq!(t["properties"]["drift_ignore"]["items"]["type"], "string");
    }
}
