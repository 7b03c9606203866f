//! `update.on_remove = "purge-data"`: each target's generation contract
//! lists, in `purge_on_remove`, the app's own named volumes as that target
//! names them (the Podman volumes windlassd removes once a switch that
//! removes the app has committed), and never a host path. Apps keeping
//! their data (the default) have no such field. The fixture is
//! `tests/fleets/purge`; the refused cases are in `tests/bad`
//! (`update-on-remove-*`), snapshot-tested by `bad_input.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use windlass::emit::{NixosBackend, guix, nixos, quadlet};
use windlass::model::{App, Fleet, PodmanVersion, load_fleet};
use windlass_contract::Manifest;

fn purge_fleet() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/purge")
}

fn load(dir: &Path) -> Fleet {
    common::load_valid(dir)
}

fn app<'a>(fleet: &'a Fleet, name: &str) -> &'a App {
    common::app_named(fleet, name)
}

fn windlass(args: &[&str]) -> Output {
    common::windlass_cli(args)
}

/// `windlass generate` of the fleet into `out`; its
/// `windlass-generation.json`.
fn generate(out: &Path, extra: &[&str]) -> Manifest {
    common::generate_contract(&purge_fleet(), out, extra)
}

fn purge(m: &Manifest, app: &str) -> Vec<String> {
    m.app(app)
        .unwrap_or_else(|| panic!("no app {app}"))
        .purge_on_remove
        .clone()
}

/// db's named volumes in manifest order, each once, with `prefix`.
fn db_volumes(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}pgwal"), format!("{prefix}pgdata")]
}

#[test]
fn on_remove_is_read_and_keep_data_is_the_default() {
    let fleet = load(&purge_fleet());
    assert!(app(&fleet, "db").update.purge_data);
    assert!(!app(&fleet, "web").update.purge_data, "keep-data, spelled");
    assert!(
        !app(&fleet, "worker").update.purge_data,
        "keep-data, default"
    );
}

#[test]
fn the_quadlet_contract_lists_the_apps_own_named_volumes_and_no_host_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let m = generate(&out, &["--target", "quadlet"]);
    // Podman 5.4: the `.volume` units set VolumeName=, so the Podman
    // volume is the declared name. Not the bind mount `/srv/db/conf`, not
    // the host-path secret; `pgdata` (mounted twice) once.
    assert_eq!(purge(&m, "db"), db_volumes(""));
    for v in ["pgwal", "pgdata"] {
        let unit = std::fs::read_to_string(out.join(format!("quadlet/{v}.volume"))).unwrap();
        assert!(unit.contains(&format!("\nVolumeName={v}\n")), "{unit}");
    }
    // Data kept: no field at all, shared volume or not.
    assert!(purge(&m, "web").is_empty());
    assert!(purge(&m, "worker").is_empty());
    let json = std::fs::read_to_string(out.join(windlass_contract::MANIFEST)).unwrap();
    assert_eq!(json.matches("\"purge_on_remove\"").count(), 1, "{json}");
    assert!(!json.contains("/srv/db/conf"), "{json}");
}

#[test]
fn before_podman_4_7_quadlet_purges_the_systemd_dash_volumes_it_created() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let m = generate(&out, &["--podman-version", "4.6", "--target", "quadlet"]);
    assert_eq!(purge(&m, "db"), db_volumes("systemd-"));
    // Quadlet names the volume `systemd-<name>` because the unit has no
    // VolumeName=.
    let unit = std::fs::read_to_string(out.join("quadlet/pgdata.volume")).unwrap();
    assert!(!unit.contains("VolumeName="), "{unit}");
    assert!(purge(&m, "web").is_empty());
}

#[test]
fn nixos_and_guix_contracts_purge_the_volumes_under_their_own_names() {
    let fleet = load(&purge_fleet());
    let db = app(&fleet, "db");
    let (new, old) = (PodmanVersion::new(5, 4), PodmanVersion::new(4, 6));
    // oci-containers' oneshots and Guix create volumes under their
    // declared names, whatever the Podman.
    for v in [new, old] {
        assert_eq!(
            nixos::app_contract(db, NixosBackend::OciContainers, v).purge_on_remove,
            db_volumes("")
        );
    }
    assert_eq!(guix::app_contract(db).purge_on_remove, db_volumes(""));
    // NixOS's Quadlet backend runs Quadlet's units: Quadlet's names.
    for (v, prefix) in [(new, ""), (old, "systemd-")] {
        let c = nixos::app_contract(db, NixosBackend::Quadlet, v);
        assert_eq!(c.purge_on_remove, db_volumes(prefix));
        assert_eq!(
            c.purge_on_remove,
            quadlet::app_contract(db, v).purge_on_remove
        );
    }
    // Data kept: nothing, on every target.
    for name in ["web", "worker"] {
        let a = app(&fleet, name);
        for v in [new, old] {
            assert!(quadlet::app_contract(a, v).purge_on_remove.is_empty());
            for backend in [NixosBackend::Quadlet, NixosBackend::OciContainers] {
                assert!(
                    nixos::app_contract(a, backend, v)
                        .purge_on_remove
                        .is_empty()
                );
            }
        }
        assert!(guix::app_contract(a).purge_on_remove.is_empty());
    }
}

#[test]
fn the_generated_nixos_and_guix_files_carry_the_volumes_to_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate(
        &out,
        &[
            "--podman-version",
            "4.6",
            "--target",
            "nixos,guix",
            "--nixos-backend",
            "oci-containers",
        ],
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let nix = read("nixos/apps/db.nix");
    assert!(
        nix.contains("purge_on_remove = [\n") && nix.contains("\"pgwal\"\n"),
        "{nix}"
    );
    assert!(!nix.contains("systemd-pgwal"), "{nix}");
    for app in ["web", "worker"] {
        let nix = read(&format!("nixos/apps/{app}.nix"));
        assert!(!nix.contains("purge_on_remove"), "{nix}");
    }
    let scm = read("guix/windlass-apps.scm");
    assert_eq!(scm.matches("purge_on_remove").count(), 1, "{scm}");
    assert!(scm.contains("\\\"pgwal\\\""), "{scm}");
    assert!(!scm.contains("systemd-pgwal"), "{scm}");
}

/// A manifest of one app `web` with `[update] on_remove = VALUE`, mounting
/// `volumes`, plus `others` (name, volumes).
fn fleet_of(dir: &Path, on_remove: &str, volumes: &[&str], others: &[(&str, &[&str])]) {
    let apps = dir.join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::write(
        apps.join("web.toml"),
        format!(
            "[container]\nimage = \"docker.io/library/nginx:1.27\"\nvolumes = [{}]\n\n[update]\non_remove = {on_remove}\n",
            list(volumes)
        ),
    )
    .unwrap();
    for (name, v) in others {
        std::fs::write(
            apps.join(format!("{name}.toml")),
            format!(
                "[container]\nimage = \"docker.io/library/busybox:1.36\"\nvolumes = [{}]\n",
                list(v)
            ),
        )
        .unwrap();
    }
}

fn errors_of(dir: &Path) -> Vec<String> {
    let loaded = load_fleet(dir).unwrap();
    let errors: Vec<String> = loaded.errors().map(|d| d.render()).collect();
    assert_eq!(loaded.fleet.is_none(), !errors.is_empty(), "{errors:?}");
    errors
}

#[test]
fn a_volume_another_app_mounts_is_never_purged() {
    let tmp = tempfile::tempdir().unwrap();
    fleet_of(
        tmp.path(),
        "\"purge-data\"",
        &["/srv/web:/srv", "cache:/cache", "shared:/shared"],
        &[
            ("backup", &["shared:/from-web:ro"]),
            ("other", &["mine:/x"]),
        ],
    );
    let errors = errors_of(tmp.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.contains("`update.on_remove`"), "{e}");
    assert!(e.contains("volume `shared`"), "{e}");
    assert!(e.contains("app `backup` also mounts it"), "{e}");
    assert!(
        e.contains("backup.toml:3:12"),
        "where backup mounts it: {e}"
    );
    assert!(e.contains("web.toml:6:13"), "at the value: {e}");
    assert!(!e.contains("`cache`"), "{e}");

    // The same sharing with the data kept is fine; so is a host path two
    // apps bind-mount while one purges its data.
    let tmp = tempfile::tempdir().unwrap();
    fleet_of(
        tmp.path(),
        "\"keep-data\"",
        &["shared:/shared"],
        &[("backup", &["shared:/from-web:ro"])],
    );
    assert_eq!(errors_of(tmp.path()), Vec::<String>::new());
    let tmp = tempfile::tempdir().unwrap();
    fleet_of(
        tmp.path(),
        "\"purge-data\"",
        &["/srv/shared:/shared", "cache:/cache"],
        &[("backup", &["/srv/shared:/from-web:ro"])],
    );
    assert_eq!(errors_of(tmp.path()), Vec::<String>::new());
    let fleet = load(tmp.path());
    assert_eq!(
        quadlet::app_contract(app(&fleet, "web"), fleet.podman).purge_on_remove,
        ["cache"]
    );
}

#[test]
fn a_bad_value_is_refused_where_it_is_listing_the_allowed_ones() {
    for (value, found) in [("\"purge\"", "found \"purge\""), ("true", "")] {
        let tmp = tempfile::tempdir().unwrap();
        fleet_of(tmp.path(), value, &["data:/data"], &[]);
        let errors = errors_of(tmp.path());
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert!(e.contains("`update.on_remove`"), "{e}");
        assert!(e.contains("web.toml:6:13"), "{e}");
        assert!(e.contains(found), "{e}");
        if !found.is_empty() {
            assert!(e.contains("\"keep-data\", \"purge-data\""), "{e}");
        }
    }
}

#[test]
fn the_schema_describes_on_remove() {
    let o = windlass(&["schema"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let u = &v["properties"]["update"];
    assert_eq!(u["additionalProperties"], false);
    assert_eq!(
        u["properties"]["on_remove"]["enum"],
        serde_json::json!(["keep-data", "purge-data"])
    );
}
