//! The manifest `windlass generate examples -o OUT` writes (committed in
//! `fixtures/examples/`), held against the contract types: it must read,
//! and write back byte for byte. Regenerate the fixture when the generator's
//! output changes on purpose.

use windlass_contract::{Manifest, Rollback, Track, UpdateOrder};

const EXAMPLES: &str = include_str!("fixtures/examples/windlass-generation.json");

fn examples() -> Manifest {
    Manifest::from_slice(EXAMPLES.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_examples_manifest_reads_into_the_contract_types() {
    let m = examples();
    assert_eq!(m.format, 1);
    assert_eq!(m.generator.as_ref().unwrap().name, "windlass");
    assert_eq!(m.podman.as_deref(), Some("5.4"));
    assert_eq!(m.targets, ["quadlet", "systemd", "nixos", "guix"]);
    assert!(m.inputs.iter().any(|i| i.path == "apps/lnd.toml"));
    let names: Vec<&str> = m.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bitcoind",
            "caddy",
            "lnd",
            "nextcloud",
            "postgres",
            "redis",
            "uptime"
        ]
    );
    for app in &m.apps {
        assert!(
            app.other.is_empty(),
            "{}: unknown keys {:?}",
            app.name,
            app.other
        );
    }
    assert!(m.other.is_empty(), "unknown keys {:?}", m.other);

    let lnd = m.app("lnd").unwrap();
    assert_eq!(lnd.unit, "lnd.service");
    assert_eq!(lnd.image, "docker.io/lightninglabs/lnd:v0.18.3-beta");
    assert_eq!(lnd.requires, ["bitcoind"]);
    assert_eq!(lnd.jobs, ["lnd-backup"]);
    assert_eq!(lnd.release.track, Track::Semver);
    assert_eq!(lnd.release.constraint.as_deref(), Some("^0.18"));
    assert_eq!(lnd.update.health_deadline_sec, Some(300));
    assert_eq!(lnd.update.order, UpdateOrder::StopFirst);

    let caddy = m.app("caddy").unwrap();
    assert_eq!(caddy.update.order, UpdateOrder::StartFirst);
    assert_eq!(
        caddy.health.as_ref().unwrap().http.as_deref(),
        Some("http://127.0.0.1:2019/config/")
    );
    assert_eq!(m.app("postgres").unwrap().update.rollback, Rollback::Manual);
    assert_eq!(m.app("uptime").unwrap().release.track, Track::None);
}

#[test]
fn the_examples_manifest_writes_back_byte_for_byte() {
    let m = examples();
    assert_eq!(m.to_json(), EXAMPLES);
    // Declared field order is the written order too (no sorting needed).
    let mut direct = serde_json::to_string_pretty(&m).unwrap();
    direct.push('\n');
    assert_eq!(direct, EXAMPLES);
}

#[test]
fn every_quadlet_and_systemd_file_of_the_examples_is_a_unit() {
    let m = examples();
    let units = m.units();
    for unit in [
        "lnd.service",
        "lnd-backup.service",
        "lnd-backup.timer",
        "archy-network.service",
    ] {
        assert!(units.contains_key(unit), "{unit} missing from {units:?}");
    }
    assert!(
        units
            .keys()
            .all(|u| u.ends_with(".service") || u.ends_with(".timer"))
    );
    let changed = ["lnd.service".to_string(), "bitcoind.service".to_string()];
    assert_eq!(m.deadline_for(&changed), 900);
}
