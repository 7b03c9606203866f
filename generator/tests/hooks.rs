//! Lifecycle hooks: `[hooks]` in an app manifest becomes, for each target,
//! the whole `podman run` line of a one-shot container in the generation
//! contract, naming the app's volumes and networks as that target names
//! them. The fixture is `tests/fleets/hooks` (which `generate.rs` also
//! checks for determinism and for secret values leaking).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use windlass::emit::{NixosBackend, guix, nixos, quadlet};
use windlass::model::{App, Fleet, HookKind, PodmanVersion, load_fleet, values::is_object_name};
use windlass_contract::{Hook, Manifest};

fn hooks_fleet() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/hooks")
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
    common::generate_contract(&hooks_fleet(), out, extra)
}

fn hook(m: &Manifest, app: &str, kind: HookKind) -> Hook {
    m.app(app)
        .unwrap_or_else(|| panic!("no app {app}"))
        .hooks
        .get(kind)
        .unwrap_or_else(|| panic!("{app} has no {} hook", kind.as_str()))
        .clone()
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The db app's pre-commit hook as a target with `volume`/`network`
/// prefixes and container name `container` runs it.
fn db_pre_commit(container: &str, prefix: &str) -> Vec<String> {
    let mut argv = strings(&[
        "podman",
        "run",
        "--rm",
        "--replace",
        &format!("--name={container}-hook-pre-commit"),
        "--label=io.windlass.app=db",
        "--label=io.windlass.hook=pre-commit",
        "--env=PGDATA=/var/lib/postgresql/data/pg",
        "--env=TZ=UTC",
        "--env-file=/etc/windlass/db.env",
        "--secret=db_password,type=env,target=POSTGRES_PASSWORD",
        "--secret=db_tls,type=mount,target=/run/secrets/tls.pem,mode=0400",
    ]);
    argv.extend(strings(&[
        &format!("--volume={prefix}pgdata:/var/lib/postgresql/data:z"),
        "--volume=/srv/db/conf:/etc/db:ro",
        "--volume=/etc/windlass/db-ca.pem:/run/ca.pem:ro",
        &format!("--network={prefix}back"),
        "--user=999:999",
        "docker.io/library/postgres:16.4",
        "migrate",
        "up",
    ]));
    argv
}

#[test]
fn every_hook_key_is_read_and_defaults_fill_in_the_rest() {
    let fleet = load(&hooks_fleet());
    let db = app(&fleet, "db");
    let kinds: Vec<HookKind> = db.hooks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HookKind::PreCommit, HookKind::Down]);
    let pre = &db.hooks[0];
    assert_eq!(pre.command, ["migrate", "up"]);
    assert_eq!(pre.entrypoint, None);
    assert!(pre.image.is_none(), "the container's image by default");
    assert_eq!(pre.timeout, 300_000_000, "5m by default");
    assert_eq!(pre.retries, 0);
    let down = &db.hooks[1];
    assert_eq!(down.command, ["migrate", "down", "1"]);
    assert_eq!((down.timeout, down.retries), (90_000_000, 2));

    let web = app(&fleet, "web");
    let kinds: Vec<HookKind> = web.hooks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [HookKind::PreActivate, HookKind::PostCommit]);
    let pre = &web.hooks[0];
    assert_eq!(pre.command, ["-c", "test -d /srv || exit 75"]);
    assert_eq!(pre.entrypoint.as_deref(), Some(&strings(&["/bin/sh"])[..]));
    assert_eq!(
        pre.image.as_ref().map(|i| i.full.as_str()),
        Some("docker.io/library/busybox:1.36")
    );
    assert_eq!((pre.timeout, pre.retries), (90_500_000, 3));
}

#[test]
fn the_quadlet_contract_carries_the_whole_podman_run_line_of_each_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let m = generate(&tmp.path().join("out"), &[]);
    // Podman 5.4: the units set VolumeName= and NetworkName=.
    assert_eq!(
        hook(&m, "db", HookKind::PreCommit),
        Hook {
            argv: db_pre_commit("db", ""),
            retries: 0,
            timeout_sec: 300,
            other: Default::default(),
        }
    );
    let down = hook(&m, "db", HookKind::Down);
    assert_eq!((down.timeout_sec, down.retries), (90, 2));
    assert_eq!(down.argv[4], "--name=db-hook-down");
    assert_eq!(down.argv[down.argv.len() - 3..], ["migrate", "down", "1"]);

    // The hook's own entrypoint and image, the container's name; the
    // timeout rounded up to whole seconds.
    let pre = hook(&m, "web", HookKind::PreActivate);
    assert_eq!(
        pre.argv,
        strings(&[
            "podman",
            "run",
            "--rm",
            "--replace",
            "--name=web_front-hook-pre-activate",
            "--label=io.windlass.app=web",
            "--label=io.windlass.hook=pre-activate",
            "--network=back",
            "--entrypoint=[\"/bin/sh\"]",
            "docker.io/library/busybox:1.36",
            "-c",
            "test -d /srv || exit 75",
        ])
    );
    assert_eq!((pre.timeout_sec, pre.retries), (91, 3));
    // Without its own, a hook runs the container's entrypoint and image.
    let post = hook(&m, "web", HookKind::PostCommit);
    let n = post.argv.len();
    assert_eq!(
        post.argv[n - 4..],
        strings(&[
            "--entrypoint=[\"/docker-entrypoint.sh\"]",
            "docker.io/library/nginx:1.27",
            "/usr/local/bin/warm-cache",
            "--all",
        ])
    );
    assert!(m.app("web").unwrap().hooks.down.is_none());
}

#[test]
fn before_podman_4_7_quadlet_hooks_name_volumes_and_networks_systemd_dash() {
    let tmp = tempfile::tempdir().unwrap();
    let m = generate(
        &tmp.path().join("out"),
        &["--podman-version", "4.6", "--target", "quadlet"],
    );
    assert_eq!(
        hook(&m, "db", HookKind::PreCommit).argv,
        db_pre_commit("db", "systemd-")
    );
    let unit = std::fs::read_to_string(tmp.path().join("out/quadlet/pgdata.volume")).unwrap();
    assert!(!unit.contains("VolumeName="), "{unit}");
}

#[test]
fn nixos_and_guix_contracts_carry_their_own_container_volume_and_network_names() {
    let fleet = load(&hooks_fleet());
    let v = PodmanVersion::new(5, 4);
    let db = app(&fleet, "db");
    let argv = |c: windlass_contract::App, kind| c.hooks.get(kind).unwrap().argv.clone();
    // oci-containers and Guix create volumes and networks under their
    // declared names.
    assert_eq!(
        argv(
            nixos::app_contract(db, NixosBackend::OciContainers, v),
            HookKind::PreCommit
        ),
        db_pre_commit("db", "")
    );
    assert_eq!(
        argv(guix::app_contract(db), HookKind::PreCommit),
        db_pre_commit("db", "")
    );
    // NixOS's Quadlet backend runs Quadlet's units, named as Quadlet does.
    let old = PodmanVersion::new(4, 6);
    assert_eq!(
        nixos::app_contract(db, NixosBackend::Quadlet, old).hooks,
        quadlet::app_contract(db, old).hooks
    );
    assert_eq!(
        argv(
            nixos::app_contract(db, NixosBackend::Quadlet, old),
            HookKind::PreCommit
        ),
        db_pre_commit("db", "systemd-")
    );
    // NixOS renames the container (`--name`); Guix cannot, it is the
    // Shepherd service's.
    let web = app(&fleet, "web");
    assert_eq!(
        argv(
            nixos::app_contract(web, NixosBackend::OciContainers, v),
            HookKind::PreActivate
        )[4],
        "--name=web_front-hook-pre-activate"
    );
    assert_eq!(
        argv(guix::app_contract(web), HookKind::PreActivate)[4],
        "--name=web-hook-pre-activate"
    );
}

#[test]
fn the_generated_nixos_and_guix_files_carry_their_targets_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate(
        &out,
        &[
            "--podman-version",
            "4.6",
            "--target",
            "quadlet,nixos,guix",
            "--nixos-backend",
            "oci-containers",
        ],
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let mount = "--volume=pgdata:/var/lib/postgresql/data:z";
    let nix = read("nixos/apps/db.nix");
    assert!(nix.contains(&format!("\"{mount}\"")), "{nix}");
    assert!(nix.contains("\"--name=db-hook-pre-commit\""), "{nix}");
    assert!(!nix.contains("systemd-pgdata"), "{nix}");
    let scm = read("guix/windlass-apps.scm");
    assert!(scm.contains(mount), "{scm}");
    assert!(scm.contains("--name=web-hook-pre-activate"), "{scm}");
    assert!(!scm.contains("systemd-pgdata"), "{scm}");
    // Meanwhile Quadlet's own contract, for Podman 4.6, is prefixed.
    let json = read("windlass-generation.json");
    assert!(json.contains("--volume=systemd-pgdata:"), "{json}");
}

#[test]
fn a_hook_gets_secrets_by_reference_and_nothing_that_is_the_running_apps() {
    let fleet = load(&hooks_fleet());
    let db = app(&fleet, "db");
    let c = quadlet::app_contract(db, fleet.podman);
    for kind in [HookKind::PreCommit, HookKind::Down] {
        let argv = &c.hooks.get(kind).unwrap().argv;
        let secrets: Vec<&str> = argv
            .iter()
            .filter(|a| a.starts_with("--secret=") || a.contains("db-ca.pem"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            secrets,
            [
                "--secret=db_password,type=env,target=POSTGRES_PASSWORD",
                "--secret=db_tls,type=mount,target=/run/secrets/tls.pem,mode=0400",
                "--volume=/etc/windlass/db-ca.pem:/run/ca.pem:ro",
            ],
            "{argv:?}"
        );
        // Not the app's ports, aliases, address, labels, health check,
        // restart policy or host name.
        for a in argv {
            for taken in [
                "5432",
                "database",
                "10.97.0.5",
                "traefik",
                "health",
                "restart",
                "hostname",
                "publish",
            ] {
                assert!(!a.contains(taken), "{a} in {argv:?}");
            }
        }
    }
}

#[test]
fn hook_container_names_are_valid_for_every_kind_and_a_too_long_name_is_refused() {
    for kind in HookKind::ALL {
        for container in ["db", "web_front", "a.b-c"] {
            let name = App::hook_container_name(container, kind);
            assert!(is_object_name(&name), "{name}");
            assert_eq!(name, format!("{container}-hook-{}", kind.as_str()));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let apps = tmp.path().join("apps");
    std::fs::create_dir(&apps).unwrap();
    let long = "x".repeat(240);
    std::fs::write(
        apps.join("web.toml"),
        format!(
            "[container]\nimage = \"docker.io/library/nginx:1.27\"\ncontainer_name = \"{long}\"\n\
             [hooks]\ndown = {{ command = [\"true\"] }}\npre_activate = {{ command = [\"true\"] }}\n"
        ),
    )
    .unwrap();
    let loaded = load_fleet(tmp.path()).unwrap();
    assert!(loaded.fleet.is_none());
    let errors: Vec<String> = loaded.errors().map(|d| d.render()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("container.container_name"),
        "{}",
        errors[0]
    );
    // 240 + `-hook-down` would do; 240 + `-hook-pre-activate` would not.
    assert!(errors[0].contains("`-hook-pre-activate`"), "{}", errors[0]);
    assert!(errors[0].contains("found 258 characters"), "{}", errors[0]);
    assert!(errors[0].contains("web.toml:3:18"), "{}", errors[0]);
}

#[test]
fn the_schema_describes_every_hook_key() {
    let o = windlass(&["schema"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hooks = &v["properties"]["hooks"];
    assert_eq!(hooks["additionalProperties"], false);
    for kind in HookKind::ALL {
        let h = &hooks["properties"][kind.key()];
        assert_eq!(h["additionalProperties"], false, "{}", kind.key());
        assert_eq!(h["required"], serde_json::json!(["command"]));
        for key in ["command", "entrypoint", "image", "timeout", "retries"] {
            assert!(h["properties"][key].is_object(), "{}.{key}", kind.key());
        }
    }
}

/// Every option is one word (`--flag=value`), so the image is the first
/// word after `run` not starting with `-`: where a sweep changes an
/// app's image, it can change it in the hooks that run the app's image.
#[test]
fn the_image_is_the_first_word_after_run_that_is_not_an_option() {
    let fleet = load(&hooks_fleet());
    for app in &fleet.apps {
        let c = quadlet::app_contract(app, fleet.podman);
        for hook in &app.hooks {
            let argv = &c.hooks.get(hook.kind).unwrap().argv;
            assert_eq!(argv[..2], ["podman", "run"]);
            let image = argv[2..].iter().find(|a| !a.starts_with('-')).unwrap();
            let want = hook.image.as_ref().unwrap_or(&app.container.image);
            assert_eq!(*image, want.full, "{argv:?}");
        }
    }
}
