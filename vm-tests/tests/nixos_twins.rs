//! The NixOS VM tests (`nixos/*.nix`) cannot run here (no Nix binary
//! cache); CI evaluates them and compiles their Python
//! (generator/tests/oracle_nix.rs). This keeps each one tied to its Debian
//! twin: a NixOS scenario names the Debian test whose assertions it
//! mirrors, and that test exists; and both forms switch between the same
//! generations.

use std::fs;
use std::process::Command;

use windlass::model::VolumeSource;
use windlass_vm_tests::{repo_root, standins, web_toml};

#[test]
fn every_nixos_scenario_names_an_existing_debian_twin() {
    let dir = repo_root().join("vm-tests/nixos");
    let debian = fs::read_to_string(repo_root().join("vm-tests/tests/debian.rs")).unwrap();
    let mut twins = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.extension().is_none_or(|x| x != "nix") || stem == "default" || stem == "common" {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let Some(at) = text.find("Debian twin:") else {
            // Only a scenario with no Debian form yet may lack a twin, and
            // it says so.
            assert!(
                text.contains("no Debian twin"),
                "{stem}.nix names neither its Debian twin nor its absence"
            );
            continue;
        };
        let rest = &text[at..];
        let name = rest
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("{stem}.nix: `Debian twin: `test_name`` expected"));
        assert!(
            debian.contains(&format!("fn {name}()")),
            "{stem}.nix names Debian twin {name}, which is not a test in debian.rs"
        );
        twins += 1;
    }
    assert!(twins >= 8, "{twins} NixOS scenarios with a Debian twin");
}

/// `attr` of `nixos/common.nix`, evaluated by the real nix-instantiate
/// (packages are never forced on the way to it); `None` when oracles are
/// disabled outside CI.
fn common_nix(attr: &str) -> Option<serde_json::Value> {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if !ci && std::env::var("WINDLASS_SKIP_ORACLES").as_deref() == Ok("1") {
        eprintln!("WARNING: nix-instantiate oracle disabled by WINDLASS_SKIP_ORACLES=1");
        return None;
    }
    let root = repo_root();
    let out = Command::new(root.join("tools/oracle"))
        .arg("--bind")
        .arg(format!("{}:/r", root.display()))
        .args([
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "--expr",
            &format!(
                "(import /r/vm-tests/nixos/common.nix {{ pkgs = {{ }}; self = {{ }}; }}).{attr}"
            ),
        ])
        .output()
        .expect("cannot start tools/oracle");
    assert!(
        out.status.success(),
        "evaluating nixos/common.nix failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn nixos_generations_are_the_debian_ones() {
    let Some(nix) = common_nix("webTomls") else {
        return;
    };
    let root = repo_root();
    let a = fs::read_to_string(root.join("vm-tests/fleets/basic/apps/web.toml")).unwrap();
    for g in ['b', 'c', 'd'] {
        assert_eq!(
            nix[g.to_string()].as_str(),
            Some(web_toml(g, &a).as_str()),
            "generation {g}: NixOS and Debian differ"
        );
    }
}

/// Scenario 1's stand-ins and host inputs in the NixOS twin are what the
/// example fleet needs, as the Debian harness computes them.
#[test]
fn nixos_example_standins_are_the_debian_ones() {
    let Some(nix) = common_nix("examples") else {
        return;
    };
    let fleet = windlass::model::load_fleet(&repo_root().join("examples"))
        .unwrap()
        .fleet
        .expect("the example fleet is valid");
    let mut want = serde_json::Map::new();
    for s in standins(&fleet) {
        want.insert(
            s.app.clone(),
            serde_json::json!({ "image": s.image, "ports": s.ports }),
        );
    }
    assert_eq!(nix["standins"], serde_json::Value::Object(want));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        serde_json::json!(v)
    };
    let c = || fleet.apps.iter().map(|a| &a.container);
    let secrets = c()
        .flat_map(|c| &c.secrets)
        .filter(|s| !s.is_file())
        .map(|s| s.name.clone());
    assert_eq!(nix["secrets"], sorted(secrets.collect()), "secrets");
    let (mut dirs, mut targets) = (Vec::new(), Vec::new());
    for v in c().flat_map(|c| &c.volumes) {
        match &v.source {
            VolumeSource::Host(h) => dirs.push(h.clone()),
            VolumeSource::Named(_) => targets.push(v.target.clone()),
        }
    }
    assert_eq!(nix["dirs"], sorted(dirs), "bind-mount sources");
    assert_eq!(
        nix["volumeTargets"],
        sorted(targets),
        "named volumes' targets"
    );
    let env_files = c().flat_map(|c| c.env_files.clone()).collect();
    assert_eq!(nix["envFiles"], sorted(env_files), "environment files");
}
